"""``review-ingest cancel`` (contract section 12) as a support engineer runs it, in a subprocess,
on a SQLite file and a real PostgreSQL database: the counts as JSON, exit statuses 0 and 2, the
record in ``cancellations``, no address or name in any output, and a corrected file that loads
once the wrong one is cancelled."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.kit.factories import write_merchants, yesterday
from tests.kit.warehouse import query

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / ".venv" / "bin" / "review-ingest"
HEADER = "order_ref;email;lastname;firstname;order_date;delay;language\n"
JANE = "jane.secret@example.org"
BOB = "bob.other@example.org"
PERSONAL = ("jane.secret", "bob.other", "secretname", "secretfirst")
OS_USER = "support-anna"


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
    )


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env, timeout=240)
    for value in PERSONAL:
        assert value not in (done.stdout + done.stderr).lower()
    return done


def run_json(args: list[str], env: dict[str, str]) -> dict:
    done = run([*args, "--json"], env)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def order_file(path: Path, rows: list[tuple[str, str, int]]) -> Path:
    """``rows``: (order_ref, email, delay in days); ordered yesterday."""
    lines = [
        f"{ref};{email};Secretname;Secretfirst;{yesterday():%Y-%m-%d};{delay};fr"
        for ref, email, delay in rows
    ]
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def import_file(path: Path, env: dict[str, str]) -> dict:
    return run_json(["import", str(path), "--merchant", "acme"], env)


@pytest.fixture
def wrong(tmp_path: Path, env: dict[str, str]) -> dict:
    """The wrong file, imported: W-1 and W-2 due in 29 days, W-3 due at once."""
    path = order_file(
        tmp_path / "wrong.csv", [("W-1", JANE, 30), ("W-2", BOB, 30), ("W-3", BOB, 0)]
    )
    report = import_file(path, env)
    assert report["status"] == "loaded"
    return report


def statuses(warehouse_url: str) -> list[tuple[str, str, str]]:
    return query(
        warehouse_url,
        "SELECT order_ref, import_id, status FROM review_requests ORDER BY order_ref, request_id",
    )


def test_cancel_the_wrong_file_then_import_the_corrected_one(
    tmp_path, env, warehouse_url, wrong
) -> None:
    wrong_id = wrong["import_id"]
    corrected = order_file(tmp_path / "corrected.csv", [("W-1", JANE, 20), ("W-2", BOB, 20)])
    refused = import_file(corrected, env)
    assert (refused["status"], len(refused["existing_proofs"])) == ("rejected", 2)

    dry = run_json(["cancel", "--import", wrong_id, "--reason", "wrong_file", "--dry-run"], env)
    assert (dry["dry_run"], dry["cancelled"], dry["already_due"]) == (True, 2, 1)
    assert {status for *_, status in statuses(warehouse_url)} == {"scheduled"}

    done = run_json(["cancel", "--import", wrong_id, "--reason", "wrong_file"], env)
    assert done == {
        "command": "cancel",
        "import_id": wrong_id,
        "merchant_id": "acme",
        "reason": "wrong_file",
        "order_refs": None,
        "dry_run": False,
        "cancelled": 2,
        "already_due": 1,
        "already_cancelled": 0,
        "not_found": 0,
    }
    again = run(["cancel", "--import", wrong_id, "--reason", "wrong_file"], env)
    assert again.returncode == 0, again.stderr
    assert "cancelled: 0" in again.stdout and "already_cancelled: 2" in again.stdout

    # W-3 was due: it stays, and stays a proof. W-1 and W-2 are free again.
    with_w3 = order_file(tmp_path / "with-w3.csv", [("W-1", JANE, 20), ("W-3", BOB, 20)])
    refused = import_file(with_w3, env)
    assert refused["existing_proofs"] == [{"order_ref": "W-3", "line": 3}]
    loaded = import_file(corrected, env)
    assert (loaded["status"], loaded["requests"]["brand"]) == ("loaded", 2)
    assert statuses(warehouse_url) == [
        ("W-1", wrong_id, "cancelled"),
        ("W-1", loaded["import_id"], "scheduled"),
        ("W-2", wrong_id, "cancelled"),
        ("W-2", loaded["import_id"], "scheduled"),
        ("W-3", wrong_id, "scheduled"),
    ]

    # The same bytes as the wrong file are still those bytes: already imported, as before.
    resent = tmp_path / "resent.csv"
    resent.write_bytes((tmp_path / "wrong.csv").read_bytes())
    assert import_file(resent, env)["status"] == "already_imported"

    recorded = query(
        warehouse_url,
        "SELECT cancelled_by, import_id, merchant_id, reason, order_refs, cancelled, "
        "already_due, already_cancelled, not_found FROM cancellations ORDER BY cancellation_id",
    )
    assert recorded == [
        (f"cli:{OS_USER}", wrong_id, "acme", "wrong_file", None, 2, 1, 0, 0),
        (f"cli:{OS_USER}", wrong_id, "acme", "wrong_file", None, 0, 1, 2, 0),
    ]


def test_cancel_single_orders_with_an_allowed_reason(tmp_path, env, warehouse_url, wrong) -> None:
    args = ["cancel", "--import", wrong["import_id"], "--reason", "refunded"]
    done = run_json([*args, "--order-ref", "W-1", "--order-ref", "W-3", "--order-ref", "NOPE"], env)

    assert (done["order_refs"], done["cancelled"], done["already_due"], done["not_found"]) == (
        ["W-1", "W-3", "NOPE"],
        1,
        1,
        1,
    )
    assert [s for ref, _, s in statuses(warehouse_url)] == ["cancelled", "scheduled", "scheduled"]
    text = run([*args, "--order-ref", "W-2", "--dry-run"], env)
    assert text.returncode == 0
    assert text.stdout.startswith("command: cancel, import_id: ")
    assert "dry_run: True, cancelled: 1" in text.stdout
    recorded = query(warehouse_url, "SELECT order_refs FROM cancellations")
    assert recorded == [('["W-1", "W-3", "NOPE"]',)], "the dry run is not recorded"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--import", "19990101T000000Z-00000000", "--reason", "wrong_file"], "unknown import"),
        (["--import", "{id}", "--reason", "wrong_file", "--order-ref", "W-1"], "not allowed"),
        (["--import", "{id}", "--reason", "  "], "a reason is required"),
        (["--import", "{id}", "--order-ref", "W-1"], "--reason"),
        (["--reason", "wrong_file"], "--import"),
    ],
)
def test_usage_errors_exit_2_naming_what_is_wrong_and_change_nothing(
    env, warehouse_url, wrong, args, words
) -> None:
    args = [a.format(id=wrong["import_id"]) for a in args]

    done = run(["cancel", *args, "--json"], env)

    assert (done.returncode, done.stdout) == (2, "")
    assert words in done.stderr.splitlines()[-1]
    assert {status for *_, status in statuses(warehouse_url)} == {"scheduled"}
    assert query(warehouse_url, "SELECT count(*) FROM cancellations") == [(0,)]
