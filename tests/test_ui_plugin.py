"""The plugin file loads light: Airflow loads plugins in every task process too."""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures.airflow import REPO


def test_loading_the_plugin_builds_no_app():
    """Loading ``plugins/review_ingest_ui.py`` (as each task process does for macros) imports
    neither the UI's app nor FastAPI nor the warehouse code: the app is built on the first
    request to the API server (review_ingest.web.lazy)."""
    code = (
        "import sys, runpy\n"
        f"sys.path.insert(0, {str(REPO / 'plugins')!r})\n"
        f"plugin = runpy.run_path({str(REPO / 'plugins' / 'review_ingest_ui.py')!r})\n"
        "(app,) = [a['app'] for a in plugin['ReviewIngestUiPlugin'].fastapi_apps]\n"
        "heavy = ('review_ingest.web.app', 'fastapi', 'review_ingest.warehouse', 'alembic')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
        "print(callable(app))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:2] == ["", "True"], done.stdout


def test_the_app_is_built_once_on_first_use():
    from review_ingest.web.lazy import BuiltOnFirstUse

    lazy = BuiltOnFirstUse("review_ingest.web.app:create_app")
    first = lazy.build()
    assert lazy.build() is first
    assert [r.path for r in first.routes if getattr(r, "path", "") == "/api/imports"]
