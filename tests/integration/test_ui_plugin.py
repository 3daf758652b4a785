"""The plugin file loads light, in a fresh interpreter each: Airflow loads plugins in every task
process too."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.kit.paths import REPO


def test_loading_the_plugin_builds_no_app():
    """Loading ``plugins/review_ingest_ui.py`` (as each task process does for macros) imports
    neither the UI's app nor FastAPI nor the warehouse code: the app is built on the first
    request to the API server (review_ingest.web.lazy)."""
    code = (
        "import sys, runpy\n"
        f"sys.path.insert(0, {str(REPO / 'plugins')!r})\n"
        f"plugin = runpy.run_path({str(REPO / 'plugins' / 'review_ingest_ui.py')!r})\n"
        "(app,) = [a['app'] for a in plugin['ReviewIngestUiPlugin'].fastapi_apps]\n"
        "heavy = ('review_ingest.web.app', 'fastapi', 'review_ingest.store.warehouse', 'alembic')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
        "print(callable(app))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:2] == ["", "True"], done.stdout


def test_airflow_loads_the_ui_plugin_and_no_other_file_of_the_folder(tmp_path):
    """Airflow's plugin manager imports every file of the plugins folder that .airflowignore
    does not name: the package and the workers' Celery settings (which import the Celery
    provider) stay out of every component's start-up."""
    code = (
        "import os, sys\n"
        "from airflow import plugins_manager\n"
        "plugins_manager.ensure_plugins_loaded()\n"
        "print(sorted(m for m in sys.modules if m.startswith('review_ingest')))\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    loaded = done.stdout.strip().splitlines()[-1]
    assert (
        loaded == "['review_ingest', 'review_ingest.web', 'review_ingest.web.lazy', "
        "'review_ingest_ui']"
    ), done.stdout
