"""Used by scripts/ui.sh: wait (bounded) until Airflow's health shows every component healthy,
with heartbeats of this start, then until every DAG file was parsed once, and unpause the DAGs
a person uses by hand. Names the service at fault and prints the end of its log.

    python scripts/ui_ready.py BASE_URL AIRFLOW_HOME DAGS_FOLDER STARTED BUDGET USER \
        'DAG ...' 'DAG_IF_PRESENT ...' SERVICE=PID ...
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# Each component of the health answer, and the service whose log says why it is not healthy.
COMPONENTS = {
    "metadatabase": "api-server",
    "scheduler": "scheduler",
    "dag_processor": "dag-processor",
    "triggerer": "triggerer",
}


def fail(message: str, service: str | None = None) -> None:
    print(f"ui: {message}", file=sys.stderr)
    if service:
        log = home / f"ui-{service}.log"
        lines = log.read_text(errors="replace").splitlines()[-30:] if log.exists() else []
        print(f"ui: the end of {log}:", *lines, sep="\n", file=sys.stderr)
    sys.exit(1)


def check_alive() -> None:
    for name, pid in pids.items():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            state = "Z"
        if state in ("Z", "X"):
            fail(f"airflow {name} exited while starting", name)


def call(method: str, path: str, body: dict | None = None, token: str = "") -> tuple[int, dict]:
    """(status, JSON answer); status 0 when nothing answers."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {"detail": error.read().decode(errors="replace")[:500]}
    except (OSError, ValueError):
        return 0, {}


def healthy(info: dict) -> bool:
    """Healthy, and by a heartbeat of this start (an earlier run's job may still look alive)."""
    if info.get("status") != "healthy":
        return False
    beats = [value for key, value in info.items() if key.startswith("latest_")]
    return all(dt.datetime.fromisoformat(b).timestamp() >= started - 1 for b in beats if b)


def wait_healthy() -> None:
    seen: set[str] = set()
    health: dict = {}
    while time.time() < deadline:
        check_alive()
        status, answer = call("GET", "/api/v2/monitor/health")
        health = answer if status == 200 else {}
        for name in COMPONENTS:
            if name not in seen and healthy(health.get(name) or {}):
                seen.add(name)
                print(f"ui: {name} healthy after {time.time() - started:.0f} s", flush=True)
        if len(seen) == len(COMPONENTS):
            return
        time.sleep(1)
    missing = [name for name in COMPONENTS if name not in seen]
    answer = json.dumps({name: health.get(name) for name in missing})
    detail = answer if health else "the API server does not answer /api/v2/monitor/health"
    fail(
        f"not healthy after {budget:.0f} s: {', '.join(missing)} ({detail})",
        COMPONENTS[missing[0]],
    )


def token() -> str:
    password = json.loads((home / "simple_auth_manager_passwords.json").read_text())[user]
    status, answer = call("POST", "/auth/token", {"username": user, "password": password})
    if status != 201:
        fail(f"POST /auth/token answered {status}: {answer}", "api-server")
    return answer["access_token"]


def wait_dag_files(auth: str) -> list[str]:
    """Waits until every DAG file was parsed once (a DAG or an import error); the errors."""
    files = {path.name for path in dags_folder.glob("*.py") if not path.name.startswith("_")}
    errors: dict[str, str] = {}
    parsed: set[str] = set()
    while time.time() < deadline:
        check_alive()
        _, dags = call("GET", "/api/v2/dags?limit=1000", token=auth)
        _, failed = call("GET", "/api/v2/importErrors?limit=1000", token=auth)
        errors = {
            Path(item["filename"]).name: item["stack_trace"]
            for item in failed.get("import_errors", [])
        }
        parsed = {Path(dag["fileloc"]).name for dag in dags.get("dags", [])} | set(errors)
        if files <= parsed:
            break
        time.sleep(1)
    else:
        print(f"ui: DAG files not parsed yet: {', '.join(sorted(files - parsed))}", flush=True)
    for name, trace in sorted(errors.items()):
        print(f"ui: {name} does not import: {trace.strip().splitlines()[-1]}", flush=True)
    return sorted(errors)


def unpause(auth: str, broken: list[str]) -> None:
    done, absent = [], []
    for dag_id in required + if_present:
        status, dag = call("GET", f"/api/v2/dags/{dag_id}", token=auth)
        if status == 404 and dag_id in if_present:
            absent.append(dag_id)
            continue
        if status != 200:
            why = f"; import errors in {', '.join(broken)}" if broken else ""
            fail(f"DAG {dag_id} not found (GET answered {status}){why}", "dag-processor")
        if dag["is_paused"]:
            status, answer = call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False}, auth)
            if status != 200:
                fail(f"unpausing {dag_id} answered {status}: {answer}", "api-server")
        done.append(dag_id)
    note = f" ({', '.join(absent)}: no such DAG)" if absent else ""
    print(f"ui: unpaused {', '.join(done)}{note}", flush=True)


if __name__ == "__main__":
    base, home, dags_folder = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    started, budget, user = float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
    required, if_present = sys.argv[7].split(), sys.argv[8].split()
    pids = {name: int(pid) for name, pid in (arg.split("=", 1) for arg in sys.argv[9:])}
    deadline = started + budget
    wait_healthy()
    auth = token()
    unpause(auth, wait_dag_files(auth))
