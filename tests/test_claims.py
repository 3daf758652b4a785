"""Issue 8.5: two runs never process the same upload file, and neither fails because of the
other. A run claims a file by renaming it into a claim folder of its own; the loser of the race
skips the file; a claim left by a run that died is taken over by the next run."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from review_ingest import settings
from review_ingest.errors import UsageError
from review_ingest.pipeline import failures
from review_ingest.sources import claims
from review_ingest.tasks import backfill, upload_ingest
from review_ingest.tasks.backfill import BackfillRequest
from tests.fixtures import pipeline_child
from tests.fixtures.ingest_checks import (
    claim_entries,
    configure,
    imports_of,
    leftovers,
    orders_file,
    requests_of,
)
from tests.helpers import drop, query

FILES = 6
ORDERS = 40


@pytest.fixture
def data(tmp_path, monkeypatch, warehouse_url):
    return configure(monkeypatch, tmp_path, warehouse_url)


def uploads(data: Path) -> Path:
    return data / "uploads" / "acme"


def drop_files(data: Path, count: int = FILES) -> dict[str, bytes]:
    files = {f"orders-{i}.csv": orders_file(f"F{i}", ORDERS) for i in range(count)}
    for i, (name, content) in enumerate(files.items()):
        drop(uploads(data), name, content, age_seconds=600 - i)
    return files


# -- the claim itself ---------------------------------------------------------------------------


def test_a_file_is_claimed_once_and_its_record_names_the_holder(data):
    drop(uploads(data), "orders.csv", b"x")

    first = claims.claim_upload(data, "acme", "orders.csv")
    second = claims.claim_upload(data, "acme", "orders.csv")

    assert first is not None and second is None
    assert first.path == data / "claims" / "acme" / first.claim_id / "orders.csv"
    assert first.path.read_bytes() == b"x" and not (uploads(data) / "orders.csv").exists()
    record = json.loads(first.record.read_text())
    assert record["owner"]["pid"] == os.getpid()
    assert record["import_id"] == first.import_id
    lease = dt.datetime.fromisoformat(record["lease_until"]) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=29) < lease <= dt.timedelta(minutes=30), "the default lease"
    assert not first.is_claimable(), "held by this live process"


def test_a_claim_whose_process_died_is_claimable_at_once(data):
    drop(uploads(data), "orders.csv", b"x")
    script = (
        "import sys; from pathlib import Path; from review_ingest.sources import claims;"
        "c = claims.claim_upload(Path(sys.argv[1]), 'acme', 'orders.csv'); print(c.claim_id)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(data)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(settings.REPO_ROOT / "plugins")},
        check=True,
    )

    (left,) = claims.claimable(data, "acme")
    assert left.claim_id == done.stdout.strip()
    assert claims.claim_upload(data, "acme", "orders.csv").import_id == left.import_id
    assert claims.claimable(data, "acme") == []
    assert len(claims.all_claims(data, "acme")) == 1, "the dead run's claim is gone"


def test_a_claim_from_another_machine_holds_until_its_lease_ends(data):
    """Several machines share the data folder: a process id of another machine proves nothing,
    its lease decides (here a claim written as another worker writes it, its lease then moved
    into the past as time would)."""
    drop(uploads(data), "orders.csv", orders_file("M", 3))
    mine = claims.claim_upload(data, "acme", "orders.csv")
    record = json.loads(mine.record.read_text())
    record["owner"] = {
        "host": "worker-7",
        "machine": "another-boot/pid:[1]",
        "pid": 1,
        "started": 1,
    }
    mine.record.write_text(json.dumps(record))

    assert claims.claimable(data, "acme") == [] and upload_ingest.plan_upload_batches() == []
    retry = [{"merchant_id": "acme", "path": str(uploads(data) / "orders.csv")}]
    assert upload_ingest.ingest_uploads(retry, settings.warehouse_url()) == [], (
        "skipped, not failed"
    )
    assert mine.path.is_file()

    record["lease_until"] = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()
    mine.record.write_text(json.dumps(record))
    (batch,) = upload_ingest.plan_upload_batches()
    (result,) = upload_ingest.ingest_uploads(batch, settings.warehouse_url())

    assert (result["status"], result["import_id"]) == ("loaded", mine.import_id)
    assert leftovers(data) == [] and claim_entries(data) == []


def test_a_released_claim_goes_back_to_uploads_when_nothing_was_committed(data, monkeypatch):
    """A failed try (here the file cannot be read) gives the file back to its folder."""
    from review_ingest.pipeline.ingest import Ingest

    drop(uploads(data), "orders.csv", orders_file("R", 3))

    def unreadable(*args, **kwargs):
        raise OSError("disk read error")

    monkeypatch.setattr(Ingest, "import_file", unreadable)
    with pytest.raises(failures.BatchFailed, match="orders.csv.*disk read error"):
        upload_ingest.ingest_uploads(
            upload_ingest.plan_upload_batches()[0], settings.warehouse_url()
        )

    assert (uploads(data) / "orders.csv").is_file()
    assert claim_entries(data) == []
    assert query(settings.warehouse_url(), "SELECT count(*) FROM imports")[0][0] == 0


# -- real processes racing ----------------------------------------------------------------------


def race(tmp_path: Path, *targets: tuple[str, tuple]) -> list[pipeline_child.Child]:
    """Start every target in its own child; they begin their work at the same moment."""
    barrier = pipeline_child.context().Barrier(len(targets))
    children = [
        pipeline_child.start(target, *args, out=tmp_path / f"child-{i}.json", barrier=barrier)
        for i, (target, args) in enumerate(targets)
    ]
    for child in children:
        assert child.wait() == 0, f"{child.result()}\n{child.log()}"
    return children


@pytest.mark.postgres
def test_two_upload_runs_racing_on_the_same_files_process_each_once(tmp_path, pg_url, monkeypatch):
    data = configure(monkeypatch, tmp_path, pg_url)
    files = drop_files(data)
    (batch,) = upload_ingest.plan_upload_batches()

    children = race(
        tmp_path,
        ("review_ingest.tasks.upload_ingest:ingest_uploads", (batch, pg_url)),
        ("review_ingest.tasks.upload_ingest:ingest_uploads", (batch, pg_url)),
    )

    done = [[r["file_name"] for r in child.result()["result"]] for child in children]
    assert sorted(done[0] + done[1]) == sorted(files), "each file processed by exactly one run"
    rows = imports_of(pg_url, "acme")
    assert sorted((n, s) for _, n, s in rows) == sorted((n, "loaded") for n in files)
    assert requests_of(pg_url, "acme") == FILES * ORDERS
    for name, content in files.items():
        assert (data / "processed" / "acme" / name).read_bytes() == content
    assert leftovers(data) == []


@pytest.mark.postgres
def test_a_backfill_racing_the_upload_run_on_the_same_file_neither_fails(
    tmp_path, pg_url, monkeypatch
):
    data = configure(monkeypatch, tmp_path, pg_url)
    files = drop_files(data, 2)
    (batch,) = upload_ingest.plan_upload_batches()
    first = next(iter(files))
    request = BackfillRequest("acme", first, "upload", dry_run=False)

    upload_run, backfill = race(
        tmp_path,
        ("review_ingest.tasks.upload_ingest:ingest_uploads", (batch, pg_url)),
        ("review_ingest.tasks.backfill:backfill_upload", (request, pg_url)),
    )

    by_upload = {r["file_name"]: r["status"] for r in upload_run.result()["result"]}
    by_backfill = backfill.result()["result"]
    if by_backfill["status"] == "skipped":
        assert by_upload == {name: "loaded" for name in files}
    else:
        assert by_backfill["status"] == "loaded" and first not in by_upload
    rows = imports_of(pg_url, "acme")
    assert sorted((n, s) for _, n, s in rows) == sorted((n, "loaded") for n in files)
    assert leftovers(data) == []


def test_a_backfill_skips_without_failing_a_file_another_run_holds(data):
    drop(uploads(data), "q3.csv", orders_file("Q", 3))
    held = claims.claim_upload(data, "acme", "q3.csv")  # an upload run is working on it

    result = backfill.backfill_upload(
        BackfillRequest("acme", "q3.csv", "upload", dry_run=False), settings.warehouse_url()
    )

    assert (result["status"], result["import_id"]) == ("skipped", held.import_id)
    assert held.path.is_file()
    assert query(settings.warehouse_url(), "SELECT count(*) FROM imports")[0][0] == 0


def test_a_backfill_refuses_a_name_that_is_not_a_regular_file(data):
    (uploads(data) / "q3.csv").mkdir(parents=True)

    with pytest.raises(UsageError, match="not a regular file"):
        backfill.backfill_upload(
            BackfillRequest("acme", "q3.csv", "upload", dry_run=False), settings.warehouse_url()
        )
    assert (uploads(data) / "q3.csv").is_dir() and claims.all_claims(data) == []
