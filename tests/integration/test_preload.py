"""Celery workers load the pipeline's libraries once (``review_ingest_celery``,
``review_ingest.tasks.preload``): what a worker does when it starts, in a fresh interpreter, and
what the tasks it forks then find. The real workers of scripts/distributed_run.py are checked by
tests/e2e/test_distributed.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from review_ingest.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def run_python(code: str, **env_vars: str) -> dict:
    """Run ``code`` in a fresh interpreter (the package on its path, ``env_vars`` in its
    environment); the JSON it prints last."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "plugins"), **env_vars}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_worker_starting_with_the_configuration_imports_the_libraries():
    # What a Celery worker does at start-up, before forking its pool: import the default modules.
    found = run_python(
        """
import json, sys
from celery import Celery
from review_ingest_celery import CELERY_CONFIG
app = Celery("review_ingest_test", config_source=CELERY_CONFIG)
wanted = {
    "great_expectations",
    "pandas",
    "review_ingest.pipeline.ingest",
    "airflow.providers.sftp.hooks.sftp",
}
before = sorted(wanted & set(sys.modules))
app.loader.import_default_modules()
after = sorted(wanted & set(sys.modules))
print(json.dumps({"before": before, "after": after}))
"""
    )
    assert found == {
        "before": [],
        "after": [
            "airflow.providers.sftp.hooks.sftp",
            "great_expectations",
            "pandas",
            "review_ingest.pipeline.ingest",
        ],
    }


def test_the_preload_leaves_no_thread_or_open_file_for_the_forks():
    found = run_python(
        """
import json, os, threading
fds = set(os.listdir("/proc/self/fd"))
import review_ingest.tasks.preload
print(json.dumps({
    "threads": threading.active_count(),
    "new_fds": sorted(set(os.listdir("/proc/self/fd")) - fds),
}))
"""
    )
    assert found == {"threads": 1, "new_fds": []}


def test_a_forked_task_finds_great_expectations_loaded_and_says_so():
    found = run_python(
        """
import json, logging, os, sys
records = []
handler = logging.Handler()
handler.emit = lambda record: records.append(record.getMessage())
logging.getLogger("review_ingest.quality.validation").addHandler(handler)
logging.getLogger("review_ingest.quality.validation").setLevel(logging.INFO)

from review_ingest.quality.validation import Validation
Validation(None, None)
alone = [m for m in records if m.startswith("Great Expectations")]
records.clear()

read, write = os.pipe()
if os.fork() == 0:  # as Airflow's supervisor starts a task
    Validation(None, None)
    os.write(write, json.dumps([m for m in records if m.startswith("Great")]).encode())
    os._exit(0)
os.wait()
forked = json.loads(os.read(read, 65536))
print(json.dumps({"alone": alone, "forked": forked}))
"""
    )
    assert len(found["alone"]) == 1
    assert found["alone"][0].startswith("Great Expectations: imported in ")
    assert "review_ingest_celery.CELERY_CONFIG" in found["alone"][0]
    assert found["forked"] == ["Great Expectations: already loaded in this process"]


#: What a task forked from the worker finds in the merchants file (``task``), the file
#: being parsed by then: a parse in the task fails.
FORKED_READ = """
def parsed_again(path, text):
    raise AssertionError("parsed again")

merchants._parse = parsed_again
read, write = os.pipe()
if os.fork() == 0:  # as Airflow's supervisor starts a task
    try:
        found = sorted(merchants.read_merchants(settings.merchants_file()).merchants)
    except Exception as exc:
        found = repr(exc)
    os.write(write, json.dumps(found).encode())
    os._exit(0)
os.wait()
task = json.loads(os.read(read, 65536))
"""
FIND_ACME = (
    """
import json, logging, os
warnings = []
handler = logging.Handler()
handler.emit = lambda record: warnings.append(record.getMessage())
logging.getLogger("review_ingest.tasks.preload").addHandler(handler)
import review_ingest.tasks.preload
from review_ingest.core import merchants
from review_ingest import settings
"""
    + FORKED_READ
    + """print(json.dumps({"task": task, "warnings": warnings}))"""
)


def test_a_forked_task_finds_the_merchants_file_parsed(tmp_path):
    path = tmp_path / "merchants.yaml"
    path.write_text("merchants:\n  acme:\n    template: store\n")
    found = run_python(FIND_ACME, REVIEW_INGEST_MERCHANTS=str(path))
    assert found == {"task": ["acme"], "warnings": []}


def test_a_worker_starts_without_a_merchants_file_and_says_so(tmp_path):
    path = tmp_path / "missing.yaml"
    found = run_python(FIND_ACME, REVIEW_INGEST_MERCHANTS=str(path))
    assert found["warnings"] == [
        f"merchants file not parsed in advance: merchants file not found: {path}"
    ]
    assert found["task"] == repr(ConfigError(f"merchants file not found: {path}"))


def test_the_preload_freezes_what_it_loaded_out_of_the_collectors_sight():
    found = run_python(
        """
import gc, json
before = gc.get_freeze_count()
import review_ingest.tasks.preload
print(json.dumps({"before": before, "after": gc.get_freeze_count()}))
"""
    )
    assert found["before"] == 0
    assert found["after"] > 100_000  # Great Expectations, pandas and the rest


def test_before_each_task_a_changed_merchants_file_is_parsed_for_the_forks(tmp_path):
    path = tmp_path / "merchants.yaml"
    path.write_text("merchants:\n  acme:\n    template: store\n")
    changed = tmp_path / "changed.yaml"
    changed.write_text("merchants:\n  acme:\n    template: store\n  bolt:\n    template: website\n")
    found = run_python(
        f"""
import json, os
from celery.signals import task_prerun
import review_ingest.tasks.preload
from review_ingest.core import merchants
from review_ingest import settings

os.replace({str(changed)!r}, {str(path)!r})  # the file changes after the worker started
task_prerun.send(sender=None, task_id="t1", task=None)  # in the pool process, before the fork
"""
        + FORKED_READ
        + "print(json.dumps(task))",
        REVIEW_INGEST_MERCHANTS=str(path),
    )
    assert found == ["acme", "bolt"]


def test_a_process_that_imports_great_expectations_itself_freezes_it():
    # review-ingest check/import, airflow dags test: no preload, the first Validation imports.
    found = run_python(
        """
import gc, json
from review_ingest.quality.validation import Validation
before = gc.get_freeze_count()
Validation(None, None)
print(json.dumps({"before": before, "after": gc.get_freeze_count()}))
"""
    )
    assert found["before"] == 0
    assert found["after"] > 100_000
