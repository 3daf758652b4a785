"""Issue 8.5: two runs never process the same upload file, and neither fails because of the
other. A run claims a file by renaming it into a claim folder of its own; the loser of the race
skips the file; a claim left by a run that died is taken over by the next run. Real processes
racing: tests/e2e/test_claims.py."""

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
from tests.fixtures.ingest_checks import claim_entries, configure, leftovers, orders_file
from tests.kit.factories import drop
from tests.kit.warehouse import query


@pytest.fixture
def data(tmp_path, monkeypatch, warehouse_url):
    return configure(monkeypatch, tmp_path, warehouse_url)


def uploads(data: Path) -> Path:
    return data / "uploads" / "acme"


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
