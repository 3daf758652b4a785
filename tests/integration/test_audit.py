"""The audit trail in the warehouse, on a SQLite file and a real PostgreSQL: each action's entry
and its details, written in the transaction of what it tells; an entry changed or deleted named
by ``verify``; an export an auditor checks without this package; one chain whatever the number
of writers (processes appending at once, two processes importing at once, and on PostgreSQL an
append seen waiting for the open one). The command line: test_audit_cli.py."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, String, Text, inspect, select, text

from review_ingest.core.merchants import read_merchants
from review_ingest.pipeline.ingest import Ingest
from review_ingest.privacy import addresses, erasure, retention, suppressions
from review_ingest.settings import EXPECTATIONS_DIR
from review_ingest.store import audit, cancellations, warehouse
from review_ingest.store.models import CancellationRow, ErasureRow
from tests.fixtures.ingest_checks import configure
from tests.kit.event_files import drop_events, event, jsonl, seed_requests
from tests.kit.factories import write_merchants, yesterday
from tests.unit.test_warehouse import brand, import_record, outcome

HEADER = "order_ref;email;lastname;firstname;order_date;delay;language\n"
JANE = "jane.secret@example.org"
BOB = "bob.other@example.org"
PERSONAL = (JANE, BOB, addresses.address_hash(JANE), "secretname", "secretfirst")
DAY = dt.timedelta(days=1)
#: Long enough when waiting on a condition that should be met in well under a second.
PATIENCE_SECONDS = 120


@pytest.fixture
def engine(warehouse_url: str) -> Engine:
    engine = warehouse.engine_for(warehouse_url)
    warehouse.migrate(engine)
    return engine


def order_file(path: Path, rows: list[tuple[str, str, int]]) -> Path:
    """``rows``: (order_ref, email, delay in days); ordered yesterday."""
    lines = [
        f"{ref};{email};Secretname;Secretfirst;{yesterday():%Y-%m-%d};{delay};fr"
        for ref, email, delay in rows
    ]
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def entries(engine: Engine) -> list[dict]:
    return list(audit.export(engine))


def append(engine: Engine, action: str, now: dt.datetime, **details: object) -> int:
    with engine.begin() as connection:
        return audit.append(connection, action, "acme", "cli:test", details, now)


def assert_nothing_personal(engine: Engine) -> None:
    """No text of ``audit_log`` holds an address, its hash or a name."""
    columns = inspect(engine).get_columns("audit_log")
    with engine.connect() as connection:
        for column in columns:
            if not isinstance(column["type"], String | Text):
                continue
            for value in PERSONAL:
                found = connection.scalar(
                    text(f"SELECT count(*) FROM audit_log WHERE lower({column['name']}) LIKE :v"),
                    {"v": f"%{value.lower()}%"},
                )
                assert found == 0, f"audit_log.{column['name']} holds personal data"


# --- what each action records ----------------------------------------------------------------


def test_each_action_appends_its_entry_with_its_details(tmp_path, engine, warehouse_url):
    data = tmp_path / "data"
    merchants = read_merchants(write_merchants(tmp_path / "m.yaml", {"acme": "website"}))
    ingest = Ingest(data, merchants.merchants, warehouse_url, data_docs=False, actor="cli:anna")
    first = order_file(
        tmp_path / "first.csv", [("A-1", JANE, 3), ("A-2", JANE, 0), ("A-3", JANE, 5)]
    )
    overlap = order_file(tmp_path / "overlap.csv", [("A-1", BOB, 3), ("B-1", BOB, 3)])

    loaded = ingest.import_file(first, "acme", "upload").record
    again = ingest.import_file(first, "acme", "upload").record
    rejected = ingest.import_file(overlap, "acme", "sftp").record
    unknown = ingest.import_file(first, "nobody", "upload").record
    now = dt.datetime.now(dt.UTC)  # A-2, due at its import, is due by now
    cancellations.cancel(engine, loaded.import_id, "refunded", ["A-1"], who="admin", now=now)
    cancellations.cancel(engine, loaded.import_id, "wrong_file", who="admin", now=now, dry_run=True)
    suppressions.suppress(engine, JANE, "acme", now, actor="cli:anna")
    suppressions.unsuppress(engine, JANE, None, now, actor="cli:anna")
    erasure.erase(engine, data, JANE, None, now, dry_run=True, actor="cli:anna")
    erasure.erase(engine, data, JANE, None, now, actor="cli:anna")
    retention.purge(engine, data, merchants.merchants, now, 30, dry_run=True, actor="dag:x")
    retention.purge(engine, data, merchants.merchants, now, 30, actor="dag:review_data_retention")

    got = entries(engine)
    assert [(e["action"], e["subject"], e["actor"]) for e in got] == [
        ("import", loaded.import_id, "cli:anna"),
        ("import", again.import_id, "cli:anna"),
        ("import", rejected.import_id, "cli:anna"),
        ("import", unknown.import_id, "cli:anna"),
        ("cancel", loaded.import_id, "admin"),
        ("suppress", "acme", "cli:anna"),
        ("unsuppress", None, "cli:anna"),
        ("erase", None, "cli:anna"),
        ("purge", None, "dag:review_data_retention"),
    ], "one entry per action done, none for a dry run"
    suite = (EXPECTATIONS_DIR / "website.json").read_bytes()
    assert got[0]["details"] == {
        "merchant_id": "acme",
        "source": "upload",
        "sha256": hashlib.sha256(first.read_bytes()).hexdigest(),
        "size_bytes": first.stat().st_size,
        "template": "website",
        "suite": "website",
        "suite_sha256": hashlib.sha256(suite).hexdigest(),
        "great_expectations": importlib.metadata.version("great_expectations"),
        "status": "loaded",
        "rejection_code": None,
        "earlier_import_id": None,
        "total_rows": 3,
        "valid_rows": 3,
        "error_rows": 0,
        "duplicate_rows": 0,
        "suppressed_rows": 0,
        "brand_requests": 3,
        "product_requests": 0,
    }
    assert {k: got[1]["details"][k] for k in ("status", "earlier_import_id", "suite_sha256")} == {
        "status": "already_imported",
        "earlier_import_id": loaded.import_id,
        "suite_sha256": None,  # nothing validated
    }
    assert {k: got[2]["details"][k] for k in ("status", "rejection_code", "source")} == {
        "status": "rejected",
        "rejection_code": "existing_proofs",
        "source": "sftp",
    }
    assert {k: got[3]["details"][k] for k in ("merchant_id", "rejection_code", "template")} == {
        "merchant_id": "nobody",
        "rejection_code": "unknown_merchant",
        "template": None,
    }
    with engine.connect() as connection:
        cancellation_id = connection.scalar(select(CancellationRow.cancellation_id))
        erasure_id = connection.scalar(select(ErasureRow.erasure_id))
    assert got[4]["details"] == {
        "cancellation_id": cancellation_id,
        "merchant_id": "acme",
        "reason": "refunded",
        "order_refs": 1,
        "cancelled": 1,
        "already_due": 0,
        "already_cancelled": 0,
        "not_found": 0,
    }
    assert got[5]["details"] == {"merchant_id": "acme", "added": True, "requests_withdrawn": 1}
    assert got[6]["details"] == {"merchant_id": None, "removed": 1, "still_suppressed": False}
    assert got[7]["details"] == {
        "erasure_id": erasure_id,
        "merchant_id": None,
        "requests_deleted": 2,  # A-1 (cancelled) and A-3, not yet due
        "requests_anonymised": 1,  # A-2, due
        "files_deleted": 0,
    }
    assert (
        got[8]["details"].items()
        >= {
            "retention_days": 30,
            "cutoff": (now - 30 * DAY).isoformat(),
            "requests_anonymised": 0,
            "files_deleted": 0,
            "sftp_files_deleted": {},
            "failures": [],
        }.items()
    ), "the purge's counts (those of ``purge --json``), failures by name"
    assert_nothing_personal(engine)
    assert audit.verify(engine) is None


def test_an_opt_out_from_delivery_events_appends_a_suppress_entry(
    tmp_path, monkeypatch, engine, warehouse_url
):
    from review_ingest.tasks import request_events

    data = configure(monkeypatch, tmp_path, warehouse_url)
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "review_request_events")  # as in its task
    acme = seed_requests(engine, warehouse_url, "acme", ["B-1", "B-2"], JANE)
    drop_events(data, "quiet.jsonl", jsonl([event("q-1", acme["B-2"], "sent")]))
    opting = [event("u-1", acme["B-1"], "sent"), event("u-2", acme["B-1"], "unsubscribed", 9)]
    drop_events(data, "optout.jsonl", jsonl(opting))

    request_events.load_event_files(warehouse_url)

    got = [e for e in entries(engine) if e["action"] != "import"]
    with engine.connect() as connection:
        file_id = connection.scalar(
            text("SELECT file_id FROM event_files WHERE file_name = 'optout.jsonl'")
        )
    assert [(e["action"], e["subject"], e["actor"]) for e in got] == [
        ("suppress", file_id, "dag:review_request_events")
    ], "one entry for the file that opted an address out, none for the other"
    assert got[0]["details"] == {
        "source": "delivery_events",
        "sha256": hashlib.sha256(jsonl(opting)).hexdigest(),
        "added": 1,
    }
    assert_nothing_personal(engine)
    assert audit.verify(engine) is None


def test_an_entry_commits_or_rolls_back_with_what_it_tells(engine):
    first = outcome(import_record("imp-1"), [brand("A")])
    warehouse.save(engine, first, actor="cli:t")

    with pytest.raises(warehouse.AlreadyImported):  # the same bytes: the transaction rolls back
        warehouse.save(engine, outcome(import_record("imp-2"), [brand("B")]), actor="cli:t")
    with pytest.raises(RuntimeError), engine.begin() as connection:
        audit.append(connection, "purge", None, "cli:t", {}, dt.datetime.now(dt.UTC))
        raise RuntimeError("the work it tells failed")

    assert [e["subject"] for e in entries(engine)] == ["imp-1"]
    warehouse.save(engine, outcome(import_record("imp-3", sha256="b" * 64), [brand("C")]))
    assert [e["subject"] for e in entries(engine)] == ["imp-1", "imp-3"]
    assert audit.verify(engine) is None, "a rolled-back entry leaves no gap in the chain"


# --- tampering ---------------------------------------------------------------------------------


def test_a_changed_entry_then_a_deleted_one_are_named(engine):
    now = dt.datetime.now(dt.UTC)
    ids = [append(engine, "erase", now, requests_deleted=n) for n in range(5)]
    with engine.connect() as connection:
        stored = connection.scalar(text(f"SELECT details FROM audit_log WHERE entry_id = {ids[1]}"))

    with engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_log SET details = :d WHERE entry_id = :i"),
            {"d": '{"requests_deleted":0}', "i": ids[1]},
        )
    broken = audit.verify(engine)
    assert broken is not None and broken.entry_id == ids[1]
    assert "does not match its fields" in broken.problem

    with engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_log SET details = :d WHERE entry_id = :i"),
            {"d": stored, "i": ids[1]},
        )
        connection.execute(text("DELETE FROM audit_log WHERE entry_id = :i"), {"i": ids[2]})
    broken = audit.verify(engine)
    assert broken is not None and broken.entry_id == ids[3]
    assert f"entry {ids[1]}" in broken.problem and f"entry_id {ids[2]} missing" in broken.problem


def test_a_deleted_last_entry_shows_against_the_head_noted_before(engine):
    now = dt.datetime.now(dt.UTC)
    for n in range(3):
        append(engine, "purge", now, files_deleted=n)
    head = audit.verification(engine).head
    assert head is not None

    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE entry_id = :i"), {"i": head.entry_id})

    assert audit.verify(engine) is None, "without an anchor the tail cannot be told"
    broken = audit.verify(engine, head)
    assert broken is not None and broken.entry_id == head.entry_id


def test_every_fork_is_refused_by_the_database(engine):
    now = dt.datetime.now(dt.UTC)
    append(engine, "purge", now)
    first = entries(engine)[0]

    with pytest.raises(Exception, match="(?i)unique"), engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_log (recorded_at, action, subject, actor, details, prev_hash, "
                "entry_hash) VALUES (:at, 'purge', NULL, 'cli:x', '{}', :prev, :hash)"
            ),
            {"at": now, "prev": first["prev_hash"], "hash": "f" * 64},
        )


# --- the export ---------------------------------------------------------------------------------


def independent_check(lines: list[str], first_prev: str | None) -> None:
    """What an auditor runs on an export, written from the README alone (no review_ingest)."""
    prev = first_prev
    for line in lines:
        entry = json.loads(line)
        hashed = {key: value for key, value in entry.items() if key != "entry_hash"}
        canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(canonical.encode("utf-8")).hexdigest() == entry["entry_hash"]
        assert prev is None or entry["prev_hash"] == prev, f"entry {entry['entry_id']}"
        prev = entry["entry_hash"]


def test_the_export_round_trips_and_an_auditor_recomputes_every_hash(engine):
    day = dt.datetime(2026, 3, 10, 23, 59, 59, 999999, tzinfo=dt.UTC)
    append(engine, "import", day - DAY, valid_rows=1, merchant="Café du Marché")
    append(engine, "cancel", day - DAY, reason="wrong_file", refs=None)
    append(engine, "suppress", day - dt.timedelta(hours=23), added=True, nested={"b": [1, 2]})
    append(engine, "unsuppress", day, removed=1)
    # Given an earlier time than the previous entry's, an entry takes that time: never back.
    late = append(engine, "erase", day - dt.timedelta(hours=5), requests_deleted=2)
    append(engine, "purge", day + dt.timedelta(microseconds=1), failures=["sftp/x"])

    everything = [json.dumps(e, ensure_ascii=False) for e in audit.export(engine)]
    one_day = list(audit.export(engine, dt.date(2026, 3, 10), dt.date(2026, 3, 10)))

    independent_check(everything, first_prev=audit.GENESIS)
    assert [json.loads(line) for line in everything] == entries(engine), "JSON round trip"
    assert [e["action"] for e in one_day] == ["suppress", "unsuppress", "erase"]
    assert one_day[2]["entry_id"] == late
    assert one_day[2]["recorded_at"] == "2026-03-10T23:59:59.999999Z"
    independent_check([json.dumps(e) for e in one_day], first_prev=None)
    assert one_day[0]["prev_hash"] == json.loads(everything[1])["entry_hash"]
    assert [e["action"] for e in audit.export(engine, since=dt.date(2026, 3, 11))] == ["purge"]
    assert list(audit.export(engine, until=dt.date(2026, 3, 8))) == []


# --- one chain, whatever the number of writers ----------------------------------------------

APPENDER = """
import datetime as dt, pathlib, sys, time
from review_ingest.store import audit, warehouse
go, url, tag, count = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
engine = warehouse.engine_for(url)
pathlib.Path(f"{go}.{tag}").touch()
while not go.exists():
    time.sleep(0.005)
for n in range(count):
    with engine.begin() as connection:
        audit.append(connection, "suppress", tag, f"cli:{tag}", {"n": n}, dt.datetime.now(dt.UTC))
"""

IMPORTER = """
import pathlib, sys, time
from review_ingest.core.merchants import read_merchants
from review_ingest.pipeline.ingest import Ingest
go, url, data, merchants, merchant, *files = sys.argv[1:]
go = pathlib.Path(go)
ingest = Ingest(pathlib.Path(data), read_merchants(pathlib.Path(merchants)).merchants, url,
                data_docs=False, actor=f"cli:{merchant}")
ingest.validation  # Great Expectations loaded before the start
pathlib.Path(f"{go}.{merchant}").touch()
while not go.exists():
    time.sleep(0.005)
for name in files:
    assert ingest.import_file(pathlib.Path(name), merchant, "upload").record.status == "loaded"
"""


def run_together(tmp_path: Path, scripts: dict[str, list[str]]) -> None:
    """Start one process per script (its name: its tag), let them go at once, wait for all."""
    go = tmp_path / "go"
    children = {
        tag: subprocess.Popen(
            [sys.executable, "-c", script, str(go), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag, (script, *args) in scripts.items()
    }
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not all(Path(f"{go}.{tag}").exists() for tag in children):
        for tag, child in children.items():
            assert child.poll() is None, f"{tag} died: {child.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "the processes never got ready"
        time.sleep(0.01)
    go.touch()
    for tag, child in children.items():
        _, stderr = child.communicate(timeout=PATIENCE_SECONDS)
        assert child.returncode == 0, f"{tag}: {stderr[-3000:]}"


def test_processes_appending_at_once_keep_one_chain(tmp_path, engine, warehouse_url):
    count = 150
    run_together(
        tmp_path, {tag: [APPENDER, warehouse_url, tag, str(count)] for tag in ("left", "right")}
    )

    result = audit.verification(engine)
    assert result.broken is None and result.entries == 2 * count
    got = entries(engine)
    for tag in ("left", "right"):
        assert [e["details"]["n"] for e in got if e["subject"] == tag] == list(range(count))
    assert len({e["prev_hash"] for e in got}) == 2 * count, "no fork"
    times = [e["recorded_at"] for e in got]
    assert times == sorted(times), "recorded_at never goes back"


def test_two_processes_importing_at_once_keep_one_chain(tmp_path, engine, warehouse_url):
    merchants = write_merchants(tmp_path / "m.yaml", {"acme": "website", "beta": "website"})
    files: dict[str, list[str]] = {"acme": [], "beta": []}
    for merchant, names in files.items():
        for n in range(4):
            path = order_file(tmp_path / f"{merchant}-{n}.csv", [(f"{merchant}-{n}", BOB, 3)])
            names.append(str(path))
    data = str(tmp_path / "data")
    run_together(
        tmp_path,
        {
            m: [IMPORTER, warehouse_url, data, str(merchants), m, *names]
            for m, names in files.items()
        },
    )

    result = audit.verification(engine)
    assert result.broken is None and result.entries == 8
    got = entries(engine)
    with engine.connect() as connection:
        imports = set(connection.scalars(text("SELECT import_id FROM imports")))
    assert sorted(e["subject"] for e in got) == sorted(imports), "one entry per import"
    assert {e["actor"] for e in got} == {"cli:acme", "cli:beta"}


@pytest.mark.postgres
def test_on_postgresql_an_append_waits_for_the_open_one_then_chains_after_it(pg_url):
    engine = warehouse.engine_for(pg_url)
    warehouse.migrate(engine)
    now = dt.datetime.now(dt.UTC)
    waiting = threading.Thread(target=append, args=(engine, "unsuppress", now))

    with engine.begin() as connection:
        first = audit.append(connection, "suppress", "acme", "cli:first", {}, now)
        waiting.start()
        wait_for_an_advisory_lock_wait(pg_url)
    waiting.join(PATIENCE_SECONDS)

    got = entries(engine)
    assert [e["action"] for e in got] == ["suppress", "unsuppress"]
    assert got[0]["entry_id"] == first and got[1]["prev_hash"] == got[0]["entry_hash"]
    assert audit.verify(engine) is None
    engine.dispose()


def wait_for_an_advisory_lock_wait(pg_url: str) -> None:
    """Until a session of this database waits on an advisory lock (the second append)."""
    probe = warehouse.engine_for(pg_url).execution_options(isolation_level="AUTOCOMMIT")
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
    )
    deadline = time.monotonic() + PATIENCE_SECONDS
    with probe.connect() as connection:
        while not connection.scalar(query):
            assert time.monotonic() < deadline, "the second append never waited"
            time.sleep(0.01)
