"""Personal data (contract section 11): retention, a person's erasure, opt-out.

Each command runs as a support engineer runs it (``review-ingest`` in a subprocess) against a
real SQLite file and a real PostgreSQL database; after each one, its output, the whole warehouse
and the whole data folder are searched for the person's address.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, Engine, String, Text, inspect, select, text

from review_ingest.privacy import retention
from review_ingest.store import warehouse
from review_ingest.store.models import ErasureRow, ReviewRequestRow
from tests.kit.factories import write_merchants, yesterday
from tests.kit.warehouse import load_brand_requests, query
from tests.unit.test_personal_data import DAY, JANE

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / ".venv" / "bin" / "review-ingest"
HEADER = "order_ref;email;lastname;firstname;order_date;delay;language\n"
BOB = "bob.other@example.org"


@pytest.fixture
def env(tmp_path: Path, warehouse_url: str) -> dict[str, str]:
    merchants = write_merchants(tmp_path / "merchants.yaml", {"acme": "website", "beta": "website"})
    return dict(
        os.environ,
        REVIEW_INGEST_DATA_DIR=str(tmp_path / "data"),
        REVIEW_INGEST_MERCHANTS=str(merchants),
        REVIEW_INGEST_WAREHOUSE_URL=warehouse_url,
        REVIEW_INGEST_RETENTION_DAYS="30",
    )


@pytest.fixture
def engine(warehouse_url: str) -> Engine:
    engine = warehouse.engine_for(warehouse_url)
    warehouse.migrate(engine)
    return engine


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env, timeout=240)


def run_json(args: list[str], env: dict[str, str]) -> dict:
    done = run([*args, "--json"], env)
    assert done.returncode == 0, done.stderr
    for secret in (JANE, BOB):
        assert secret not in (done.stdout + done.stderr).lower()
    return json.loads(done.stdout)


def order_file(path: Path, rows: list[tuple[str, str, int]]) -> Path:
    """``rows``: (order_ref, email, delay); ordered yesterday, names that are personal data."""
    lines = [
        f"{ref};{email};Secretname;Secretfirst;{yesterday():%Y-%m-%d};{delay};fr"
        for ref, email, delay in rows
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def import_file(path: Path, merchant: str, env: dict[str, str]) -> dict:
    return run_json(["import", str(path), "--merchant", merchant], env)


def stored(path: Path, merchant: str, env: dict[str, str], kind: str = "processed") -> Path:
    """Where the DAGs keep a processed file: ``<data>/<kind>/<merchant>/``."""
    target = Path(env["REVIEW_INGEST_DATA_DIR"]) / kind / merchant / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(path.read_bytes())
    return target


def people(engine: Engine, **where: str) -> list[tuple]:
    query_ = select(
        ReviewRequestRow.order_ref,
        ReviewRequestRow.email,
        ReviewRequestRow.firstname,
        ReviewRequestRow.lastname,
    ).order_by(ReviewRequestRow.order_ref)
    for column, value in where.items():
        query_ = query_.where(getattr(ReviewRequestRow, column) == value)
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query_)]


def assert_nowhere(engine: Engine, data_dir: Path, secret: str) -> None:
    """No text column of any table, and no file of the data folder, holds ``secret``."""
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for column in inspect(connection).get_columns(table):
                if not isinstance(column["type"], String | Text):
                    continue
                found = connection.execute(
                    text(f'SELECT count(*) FROM "{table}" WHERE lower("{column["name"]}") LIKE :s'),
                    {"s": f"%{secret.lower()}%"},
                ).scalar()
                assert found == 0, f"{table}.{column['name']} holds the address"
    assert_not_in_files(data_dir, secret)


def assert_not_in_files(folder: Path, secret: str) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and not path.name.startswith("warehouse.db"):
            assert secret.lower().encode() not in path.read_bytes().lower(), f"{path} holds it"


# --- retention -----------------------------------------------------------------------------


def test_purge_at_the_boundary_keeps_the_proofs_and_is_idempotent(tmp_path, env, engine):
    now = dt.datetime.now(dt.UTC)
    past, within = now - 30 * DAY - DAY, now - 30 * DAY + DAY  # a day each side of the limit
    load_brand_requests(engine, "acme", ["OLD-1", "OLD-2"], past)
    load_brand_requests(engine, "acme", ["NEW-1"], within)

    dry = run_json(["purge", "--dry-run"], env)
    assert (dry["dry_run"], dry["requests_anonymised"], dry["retention_days"]) == (True, 2, 30)
    assert people(engine)[0] == ("NEW-1", JANE, "Secretfirst", "Secretname")
    assert people(engine, order_ref="OLD-1") == [("OLD-1", JANE, "Secretfirst", "Secretname")]

    done = run_json(["purge"], env)
    assert (done["dry_run"], done["requests_anonymised"], done["failures"]) == (False, 2, {})
    assert people(engine) == [
        ("NEW-1", JANE, "Secretfirst", "Secretname"),
        ("OLD-1", None, None, None),
        ("OLD-2", None, None, None),
    ]
    assert run_json(["purge"], env)["requests_anonymised"] == 0, "a second purge finds nothing"

    # The row and its order_ref stay: a file repeating a purged order is still refused.
    again = order_file(tmp_path / "again.csv", [("OLD-2", BOB, 0), ("FRESH-1", BOB, 0)])
    done = run(["import", str(again), "--merchant", "acme", "--json"], env)
    report = json.loads(done.stdout)
    assert (done.returncode, report["rejection"]["code"]) == (1, "existing_proofs")
    assert report["existing_proofs"] == [{"order_ref": "OLD-2", "line": 2}]


def test_purge_deletes_stored_files_past_retention_and_keeps_the_reports(tmp_path, env, engine):
    data = Path(env["REVIEW_INGEST_DATA_DIR"])
    old = time.time() - 31 * 86400
    recent = time.time() - 29 * 86400
    files = {
        "processed/acme/orders.csv": old,
        "processed/acme/20261101T000000Z-1a2b3c4d/orders.csv": old,  # a second orders.csv
        "rejected/ghost/orders.csv": old,  # an unknown merchant's folder
        "processed/beta/orders.csv": recent,
        "reports/acme/20261101T000000Z-1a2b3c4d/report.json": old,
        "uploads/acme/waiting.csv": old,  # not processed yet
    }
    for name, mtime in files.items():
        path = data / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("order_ref\n")
        os.utime(path, (mtime, mtime))

    dry = run_json(["purge", "--dry-run"], env)
    assert dry["files_deleted"] == 3
    assert all((data / name).exists() for name in files)

    assert run_json(["purge"], env)["files_deleted"] == 3
    left = {str(p.relative_to(data)) for p in data.rglob("*") if p.is_file()}
    assert left & set(files) == {
        "processed/beta/orders.csv",
        "reports/acme/20261101T000000Z-1a2b3c4d/report.json",
        "uploads/acme/waiting.csv",
    }
    assert run_json(["purge"], env)["files_deleted"] == 0


KILL_AFTER_TWO_BATCHES = """
import datetime as dt, os, signal, sys
from review_ingest.privacy import retention
from review_ingest.tasks import data_retention
from review_ingest.store import warehouse

real = retention._anonymise_batch
calls = 0

def batch_then_die(*args, **kwargs):
    global calls
    ids = real(*args, **kwargs)
    calls += 1
    if calls == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # a real kill, after the second commit
    return ids

retention._anonymise_batch = batch_then_die
engine = warehouse.engine_for(sys.argv[1])
retention.purge_requests(engine, dt.datetime.fromisoformat(sys.argv[2]), batch_rows=10)
"""


def test_a_purge_killed_half_way_is_run_again(env, engine, warehouse_url):
    now = dt.datetime.now(dt.UTC)
    load_brand_requests(engine, "acme", [f"OLD-{n:03}" for n in range(45)], now - 40 * DAY)
    before = (now - 30 * DAY).isoformat()

    killed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_TWO_BATCHES, warehouse_url, before],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    rows = people(engine)
    assert sum(email is None for _, email, _, _ in rows) == 20, "two batches of 10 committed"

    assert run_json(["purge"], env)["requests_anonymised"] == 25
    assert all(row[1:] == (None, None, None) for row in people(engine))


# --- erasure -------------------------------------------------------------------------------


def test_erasure_of_an_address_in_several_merchants_files(tmp_path, env, engine):
    data = Path(env["REVIEW_INGEST_DATA_DIR"])
    acme_file = order_file(
        tmp_path / "in" / "acme.csv",
        [("A-1", "Jane.Secret@Example.org", 0), ("A-2", JANE, 30), ("A-3", BOB, 30)],
    )
    acme_bob = order_file(tmp_path / "in" / "acme-bob.csv", [("A-9", BOB, 0)])
    beta_file = order_file(tmp_path / "in" / "beta.csv", [("B-1", JANE, 30), ("B-2", BOB, 0)])
    for path, merchant in ((acme_file, "acme"), (acme_bob, "acme"), (beta_file, "beta")):
        assert import_file(path, merchant, env)["status"] == "loaded"
        stored(path, merchant, env)
    stored(beta_file, "beta", env, kind="rejected")

    dry = run_json(
        ["erase", "--email", " JANE.secret@example.ORG ", "--merchant", "acme", "--dry-run"], env
    )
    assert (dry["requests_deleted"], dry["requests_anonymised"], dry["files_deleted"]) == (1, 1, 1)
    assert len(people(engine, merchant_id="acme")) == 4
    assert (data / "processed" / "acme" / "acme.csv").exists()

    done = run_json(["erase", "--email", "Jane.Secret@example.org", "--merchant", "acme"], env)
    assert done == {
        "command": "erase",
        "merchant_id": "acme",
        "dry_run": False,
        "requests_deleted": 1,  # A-2, due in 29 days: nothing will be sent
        "requests_anonymised": 1,  # A-1, due at once: its row and order_ref stay
        "files_deleted": 1,
    }
    assert people(engine, merchant_id="acme") == [
        ("A-1", None, None, None),
        ("A-3", BOB, "Secretfirst", "Secretname"),
        ("A-9", BOB, "Secretfirst", "Secretname"),
    ]
    assert people(engine, merchant_id="beta")[0] == ("B-1", JANE, "Secretfirst", "Secretname")
    assert not (data / "processed" / "acme" / "acme.csv").exists()
    assert (data / "processed" / "acme" / "acme-bob.csv").exists()
    assert (data / "processed" / "beta" / "beta.csv").exists()

    done = run_json(["erase", "--email", JANE], env)
    assert (done["merchant_id"], done["requests_deleted"], done["files_deleted"]) == (None, 1, 2)
    assert [row[0] for row in people(engine, merchant_id="beta")] == ["B-2"]
    assert_nowhere(engine, data, JANE)
    assert (data / "processed" / "acme" / "acme-bob.csv").exists()

    with engine.connect() as connection:
        erasures = connection.execute(
            select(
                ErasureRow.merchant_id,
                ErasureRow.requests_deleted,
                ErasureRow.requests_anonymised,
                ErasureRow.files_deleted,
            ).order_by(ErasureRow.erasure_id)
        ).all()
    assert [tuple(row) for row in erasures] == [("acme", 1, 1, 1), (None, 1, 0, 2)]
    assert run_json(["erase", "--email", JANE], env)["files_deleted"] == 0


# --- opt-out -------------------------------------------------------------------------------


def test_a_suppressed_address_gets_no_request_from_a_later_file(tmp_path, env, engine):
    data = Path(env["REVIEW_INGEST_DATA_DIR"])
    first = order_file(tmp_path / "first.csv", [("F-1", JANE, 30), ("F-2", BOB, 30)])
    import_file(first, "acme", env)

    done = run_json(["suppress", "--email", "  Jane.SECRET@example.org"], env)
    assert done == {
        "command": "suppress",
        "merchant_id": None,
        "added": True,
        "requests_withdrawn": 1,  # F-1, not yet due: it will not be sent
    }
    assert run_json(["suppress", "--email", JANE], env)["added"] is False
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT email_sha256, merchant_id FROM suppressions")).all()
        statuses = dict(
            connection.execute(select(ReviewRequestRow.order_ref, ReviewRequestRow.status)).all()
        )
    assert [tuple(r) for r in rows] == [(hashlib.sha256(JANE.encode()).hexdigest(), None)]
    assert statuses == {"F-1": "withdrawn", "F-2": "scheduled"}

    later = order_file(
        tmp_path / "later.csv",
        [
            ("L-1", JANE, 0),
            ("L-2", BOB, 0),
            ("L-3", "Jane.Secret@Example.org", 0),
            ("L-4", "bad", 0),
            ("L-2", BOB, 0),
        ],
    )
    report = import_file(later, "acme", env)
    assert (report["status"], report["total_rows"], report["valid_rows"]) == ("loaded", 5, 3)
    assert (report["error_rows"], report["duplicate_rows"], report["suppressed_rows"]) == (1, 1, 2)
    assert (
        report["total_rows"]
        == report["valid_rows"] + report["error_rows"] + report["duplicate_rows"]
    )
    assert report["requests"] == {"brand": 1, "product": 0, "due_now": 1}
    assert [row[0] for row in people(engine) if row[0].startswith("L-")] == ["L-2"]
    imports = query(
        env["REVIEW_INGEST_WAREHOUSE_URL"],
        "SELECT valid_rows, suppressed_rows, brand_requests FROM imports WHERE import_id = :i",
        i=report["import_id"],
    )
    assert imports == [(3, 2, 1)]
    page = (data / "reports" / "acme" / report["import_id"] / "report.html").read_text()
    assert "opted out (no request)</th><td>2</td>" in page
    assert_not_in_files(data, "jane.secret")  # no report, no Data Docs page

    done = run_json(["unsuppress", "--email", JANE], env)
    assert (done["removed"], done["still_suppressed"]) == (1, False)
    again = order_file(tmp_path / "again.csv", [("G-1", JANE, 0)])
    report = import_file(again, "acme", env)
    assert (report["suppressed_rows"], report["requests"]["brand"]) == (0, 1)


def test_an_opt_out_for_one_merchant_leaves_the_others(tmp_path, env, engine):
    done = run_json(["suppress", "--email", JANE, "--merchant", "beta"], env)
    assert (done["merchant_id"], done["added"]) == ("beta", True)

    acme = import_file(order_file(tmp_path / "a.csv", [("A-1", JANE, 0)]), "acme", env)
    beta = import_file(order_file(tmp_path / "b.csv", [("B-1", JANE, 0)]), "beta", env)
    assert (acme["suppressed_rows"], acme["requests"]["brand"]) == (0, 1)
    assert (beta["suppressed_rows"], beta["requests"]["brand"]) == (1, 0)

    run_json(["suppress", "--email", JANE], env)
    done = run_json(["unsuppress", "--email", JANE, "--merchant", "beta"], env)
    assert (done["removed"], done["still_suppressed"]) == (1, True)


def test_check_knows_no_opt_out_and_says_none(tmp_path, env):
    """``check`` uses no warehouse, so no list: the address is suppressed, yet check counts it
    as a row that would get its request (the import, which reads the list, does not)."""
    run_json(["suppress", "--email", JANE], env)
    path = order_file(tmp_path / "orders.csv", [("C-1", JANE, 0)])
    report = run_json(["check", str(path), "--template", "website"], env)
    assert (report["status"], report["suppressed_rows"]) == ("accepted", 0)
    assert report["requests"]["brand"] == 1
    assert import_file(path, "acme", env)["suppressed_rows"] == 1


# --- usage errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["erase", "--email", "jane.secret-at-example.org"],
        ["suppress", "--email", "jane.secret@"],
        ["unsuppress", "--email", "   "],
        ["erase", "--email", JANE, "--merchant", "../acme"],
        ["suppress", "--email", JANE, "--merchant", "Acme Shop"],
        ["erase"],
    ],
)
def test_bad_input_exits_2_and_never_echoes_the_address(env, args):
    done = run(args, env)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "jane.secret" not in done.stderr.lower()
    assert done.stderr.strip()


def test_a_bad_retention_setting_exits_2(env):
    done = run(["purge"], {**env, "REVIEW_INGEST_RETENTION_DAYS": "a year"})
    assert done.returncode == 2
    assert "REVIEW_INGEST_RETENTION_DAYS" in done.stderr


# --- the schema ----------------------------------------------------------------------------


def test_an_existing_warehouse_upgrades_in_place(warehouse_url):
    engine = warehouse.engine_for(warehouse_url)
    config = warehouse._alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
    at = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO imports (import_id, merchant_id, source, file_name, sha256, "
                "size_bytes, status, valid_rows, brand_requests, received_at, processed_at) "
                "VALUES ('imp-0', 'acme', 'upload', 'o.csv', 'a', 1, 'loaded', 1, 1, :at, :at)"
            ),
            {"at": at},
        )
        connection.execute(
            text(
                "INSERT INTO review_requests (import_id, merchant_id, request_type, order_ref, "
                "email, firstname, lastname, order_date, scheduled_at, created_at) VALUES "
                "('imp-0', 'acme', 'brand', 'R-1', :e, 'F', 'L', :d, :at, :at)"
            ),
            {"e": JANE, "d": at.date(), "at": at},
        )

    warehouse.migrate(engine)

    assert query(warehouse_url, "SELECT valid_rows, suppressed_rows FROM imports") == [(1, 0)]
    assert people(engine) == [("R-1", JANE, "F", "L")]
    assert retention.purge_requests(engine, at + DAY) == 1
    assert people(engine) == [("R-1", None, None, None)]
    # The copy SQLite makes to alter a table keeps every index, the expression ones included.
    assert warehouse.known_order_refs(engine, "acme", ["R-1"]) == {"R-1"}
    with engine.connect() as connection:
        names = index_names(connection)
    assert {"uq_review_requests_proof", "ix_review_requests_email_lower"} <= names
    with pytest.raises(warehouse.ProofConflict):
        load_brand_requests(engine, "acme", ["R-1"], at + DAY)


def index_names(connection: Connection) -> set[str]:
    sql = {
        "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index'",
        "postgresql": "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()",
    }[connection.dialect.name]
    return set(connection.scalars(text(sql)))


def test_the_opt_out_lookup_of_a_large_file_finds_each_suppressed_address(engine):
    """Suppressed hashes are looked up like proofs (``warehouse.found``): in one array on
    PostgreSQL, in chunks under SQLite's parameter limit; every one is found, whatever chunk."""
    from review_ingest.privacy import addresses, suppressions

    now = dt.datetime.now(dt.UTC)
    mine = [f"c{n}@example.org" for n in range(0, 3000, 7)]
    for address in mine:
        suppressions.suppress(engine, address, None, now)
    suppressions.suppress(engine, "other@example.org", "beta", now)
    hashes = {addresses.address_hash(f"c{n}@example.org") for n in range(3000)}
    hashes.add(addresses.address_hash("other@example.org"))

    found = suppressions.suppressed_hashes(engine, "acme", hashes)

    assert found == {addresses.address_hash(a) for a in mine}
