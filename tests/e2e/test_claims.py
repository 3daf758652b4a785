"""Issue 8.5 with real processes racing on real PostgreSQL: two upload runs on the same files,
an upload run and a backfill on the same file, started at the same moment; each file is
processed by exactly one run and neither fails. The claim itself:
tests/integration/test_claims.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from review_ingest.tasks import upload_ingest
from review_ingest.tasks.backfill import BackfillRequest
from tests.fixtures.ingest_checks import configure, imports_of, leftovers, orders_file, requests_of
from tests.integration.test_claims import uploads
from tests.kit import pipeline_child
from tests.kit.factories import drop

FILES = 6
ORDERS = 40


# -- real processes racing ----------------------------------------------------------------------


def drop_files(data: Path, count: int = FILES) -> dict[str, bytes]:
    files = {f"orders-{i}.csv": orders_file(f"F{i}", ORDERS) for i in range(count)}
    for i, (name, content) in enumerate(files.items()):
        drop(uploads(data), name, content, age_seconds=600 - i)
    return files


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
