"""``review-ingest audit verify`` and ``audit export`` as an auditor runs them, in a subprocess, on
a SQLite file and a real PostgreSQL database, after the commands that write the trail: exit 0
and one line when intact, 1 naming the entry changed or deleted, 2 for a usage error; an export
whose hashes recompute from the README's formula alone."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.kit.factories import write_merchants, yesterday

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / ".venv" / "bin" / "review-ingest"
HEADER = "order_ref;email;lastname;firstname;order_date;delay;language\n"
JANE = "jane.secret@example.org"
OS_USER = "auditor-anna"
HEAD = re.compile(r"^audit trail intact: (\d+) entries, head (\d+:[0-9a-f]{64})$")


@pytest.fixture
def env(tmp_path: Path, warehouse_url: str) -> dict[str, str]:
    merchants = write_merchants(tmp_path / "merchants.yaml", {"acme": "website"})
    return dict(
        os.environ,
        REVIEW_INGEST_DATA_DIR=str(tmp_path / "data"),
        REVIEW_INGEST_MERCHANTS=str(merchants),
        REVIEW_INGEST_WAREHOUSE_URL=warehouse_url,
        LOGNAME=OS_USER,
        USER=OS_USER,
        AIRFLOW_CTX_DAG_ID="",  # the command line, even after a dag.test() in this session
    )


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env, timeout=240)
    assert JANE not in done.stdout + done.stderr
    return done


def ok(args: list[str], env: dict[str, str]) -> str:
    done = run(args, env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def tamper(warehouse_url: str, sql: str, **params: object) -> None:
    engine = create_engine(warehouse_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(sql), params)
    finally:
        engine.dispose()


def opt_outs(env: dict[str, str], times: int) -> None:
    """``times`` suppress/unsuppress pairs: two entries each, no Great Expectations to load."""
    for _ in range(times):
        ok(["suppress", "--email", JANE, "--merchant", "acme"], env)
        ok(["unsuppress", "--email", JANE], env)


def test_the_commands_write_the_trail_that_verify_and_export_show(tmp_path, env):
    orders = tmp_path / "orders.csv"
    orders.write_text(
        HEADER + f"A-1;{JANE};Secretname;Secretfirst;{yesterday():%Y-%m-%d};3;fr\n",
        encoding="utf-8",
    )
    import_id = json.loads(ok(["import", str(orders), "--merchant", "acme", "--json"], env))[
        "import_id"
    ]
    ok(["cancel", "--import", import_id, "--reason", "wrong_file"], env)
    opt_outs(env, 1)
    ok(["erase", "--email", JANE], env)
    ok(["purge"], env)

    line = ok(["audit", "verify"], env).strip()
    verified = ok(["audit", "verify", "--json"], env)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    output = tmp_path / "export" / "audit.jsonl"
    output.parent.mkdir()
    said = ok(["audit", "export", "--since", today, "--until", today, "--output", str(output)], env)
    lines = output.read_text(encoding="utf-8").splitlines()

    match = HEAD.match(line)
    assert match is not None, line
    assert json.loads(verified) == {
        "command": "audit verify",
        "intact": True,
        "entries": 6,
        "head": match[2],
        "broken": None,
    }
    assert said.strip() == f"6 audit entries written to {output}"
    assert ok(["audit", "export"], env).splitlines() == lines, "stdout: the same lines"
    exported = [json.loads(entry) for entry in lines]
    assert [(e["action"], e["actor"]) for e in exported] == [
        ("import", f"cli:{OS_USER}"),
        ("cancel", f"cli:{OS_USER}"),
        ("suppress", f"cli:{OS_USER}"),
        ("unsuppress", f"cli:{OS_USER}"),
        ("erase", f"cli:{OS_USER}"),
        ("purge", f"cli:{OS_USER}"),
    ]
    assert exported[0]["subject"] == exported[1]["subject"] == import_id
    assert set(exported[0]) == {
        "entry_id",
        "recorded_at",
        "action",
        "subject",
        "actor",
        "details",
        "prev_hash",
        "entry_hash",
    }
    prev = "0" * 64  # the genesis: this export starts at the first entry
    for entry in exported:  # the README's formula, without review_ingest
        body = {key: value for key, value in entry.items() if key != "entry_hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(canonical.encode("utf-8")).hexdigest() == entry["entry_hash"]
        assert entry["prev_hash"] == prev
        prev = entry["entry_hash"]
    assert f"{exported[-1]['entry_id']}:{prev}" == match[2], "the head is the last entry"
    tomorrow = (dt.date.fromisoformat(today) + dt.timedelta(days=1)).isoformat()
    assert ok(["audit", "export", "--since", tomorrow], env) == ""


def test_verify_names_a_changed_entry_then_a_deleted_one_then_a_lost_tail(env, warehouse_url):
    opt_outs(env, 3)
    head = HEAD.match(ok(["audit", "verify"], env).strip())
    assert head is not None and head[1] == "6"

    tamper(warehouse_url, "UPDATE audit_log SET actor = 'cli:nobody' WHERE entry_id = 2")
    changed = run(["audit", "verify"], env)
    assert changed.returncode == 1
    assert changed.stdout.startswith("audit trail broken at entry 2: its entry_hash does not")
    assert changed.stderr.startswith("review-ingest: audit verify: entry 2: ")

    tamper(warehouse_url, f"UPDATE audit_log SET actor = 'cli:{OS_USER}' WHERE entry_id = 2")
    assert run(["audit", "verify"], env).returncode == 0, "put back as it was: intact again"
    tamper(warehouse_url, "DELETE FROM audit_log WHERE entry_id = 3")
    deleted = run(["audit", "verify", "--json"], env)
    assert deleted.returncode == 1
    assert json.loads(deleted.stdout)["broken"]["entry_id"] == 4
    assert "entry_id 3 missing" in json.loads(deleted.stdout)["broken"]["problem"]

    tamper(warehouse_url, "DELETE FROM audit_log WHERE entry_id >= 3")  # the tail: 3 to 6
    assert run(["audit", "verify"], env).returncode == 0, "nothing left after it to tell"
    anchored = run(["audit", "verify", "--anchor", head[2]], env)
    assert anchored.returncode == 1
    assert "entry 6" in anchored.stdout and "the log ends at entry 2" in anchored.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["audit", "export", "--since", "2026-02-30"], "--since must be a date YYYY-MM-DD"),
        (["audit", "export", "--since", "2026-03-02", "--until", "2026-03-01"], "is after"),
        (["audit", "export", "--output", "/nonexistent-folder/audit.jsonl"], "--output"),
        (["audit", "verify", "--anchor", "12:abc"], "ENTRY_ID:ENTRY_HASH"),
        (["audit"], "audit_command"),
        (["audit", "verify", "--since", "2026-03-01"], "unrecognized arguments"),
    ],
)
def test_usage_errors_exit_2_naming_what_is_wrong(tmp_path, args, says):
    env = dict(os.environ, REVIEW_INGEST_WAREHOUSE_URL=f"sqlite:///{tmp_path / 'w.db'}")

    done = run(args, env)

    assert done.returncode == 2 and done.stdout == ""
    assert says in done.stderr.splitlines()[-1]
