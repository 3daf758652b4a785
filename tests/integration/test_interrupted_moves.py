"""Issue 8.7, not an interrupted move (contract section 2): the same bytes sent again to an upload
folder, under the same name after the first was moved or under a new name, are new files, each
with its own ``already_imported`` row. Runs killed between their commit and the move:
tests/e2e/test_interrupted_moves.py."""

from __future__ import annotations

import json

from review_ingest.tasks import upload_ingest
from tests.fixtures.ingest_checks import configure, imports_of, leftovers, orders_file
from tests.kit.factories import drop


def test_the_same_bytes_sent_again_later_are_recorded_as_already_imported(
    tmp_path, monkeypatch, warehouse_url
):
    """Not an interrupted move: under the same name after the first was moved, or under a new
    name, the merchant sent a file again, and each one gets its own row (contract section 2)."""
    data = configure(monkeypatch, tmp_path, warehouse_url)
    content = orders_file("S", 3)
    drop(data / "uploads" / "acme", "orders.csv", content)
    (first,) = upload_ingest.ingest_uploads(upload_ingest.plan_upload_batches()[0], warehouse_url)
    drop(data / "uploads" / "acme", "orders.csv", content, age_seconds=500)
    drop(data / "uploads" / "acme", "copy.csv", content, age_seconds=400)

    again = upload_ingest.ingest_uploads(upload_ingest.plan_upload_batches()[0], warehouse_url)

    assert [(r["file_name"], r["status"]) for r in again] == [
        ("orders.csv", "already_imported"),
        ("copy.csv", "already_imported"),
    ]
    rows = imports_of(warehouse_url, "acme")
    assert [s for _, _, s in rows] == ["loaded", "already_imported", "already_imported"]
    for result in again:
        report = json.loads(
            (data / "reports" / "acme" / result["import_id"] / "report.json").read_text()
        )
        assert (report["status"], report["earlier_import_id"]) == (
            "already_imported",
            first["import_id"],
        )
    assert sorted(p.relative_to(data).as_posix() for p in (data / "processed").rglob("*.csv")) == [
        f"processed/acme/{again[0]['import_id']}/orders.csv",
        "processed/acme/copy.csv",
        "processed/acme/orders.csv",
    ]
    assert leftovers(data) == []
