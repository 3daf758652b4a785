"""Personal data (contract section 11) in-process, no server: the local purge goes on past a
merchant it cannot purge, a file holds an address only as a whole value, the stored files are
listed without following a link, the retention DAG's summary names what did not purge. The
commands themselves: tests/integration/test_personal_data.py.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest

from review_ingest.privacy import erasure, retention
from review_ingest.sources import folders
from review_ingest.tasks import data_retention

JANE = "jane.secret@example.org"
DAY = dt.timedelta(days=1)


def test_local_purge_goes_on_past_a_merchant_it_cannot_purge(tmp_path, monkeypatch):
    data = tmp_path / "data"
    old = time.time() - 40 * 86400
    for merchant in ("acme", "beta", "cafe"):
        path = data / "processed" / merchant / "orders.csv"
        path.parent.mkdir(parents=True)
        path.write_text("order_ref\n")
        os.utime(path, (old, old))
    # A fake fault: the tests run as root, whom no permission stops from deleting a file.
    real_unlink = Path.unlink

    def unlink(path: Path, missing_ok: bool = False) -> None:
        if path.parent.name == "beta":
            raise PermissionError(13, "Permission denied")
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    result = retention.purge_local_files(data, dt.datetime.now(dt.UTC) - 30 * DAY)

    assert result.deleted == {"acme": 1, "beta": 0, "cafe": 1}
    assert result.failures == {"beta": "processed/beta/orders.csv: Permission denied"}
    assert not (data / "processed" / "cafe" / "orders.csv").exists()


@pytest.mark.parametrize(
    ("content", "holds"),
    [
        (f"ref;{JANE};x\n", True),
        (f'ref;"{JANE.upper()}";x\n', True),
        (f"ref,{JANE}\r\n", True),
        (f"{JANE}", True),
        (f"ref;x{JANE};x\n", False),  # another address that ends with it
        (f"ref;{JANE}.fr;x\n", False),  # another address that starts with it
        ("ref;bob@example.org;x\n", False),
    ],
)
def test_a_file_holds_the_address_only_as_a_whole_value(tmp_path, content, holds):
    path = tmp_path / "orders.csv"
    path.write_text(content, encoding="utf-8")
    assert erasure.holds(path, JANE) is holds


def test_a_file_in_a_legacy_encoding_is_found_too(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_bytes("ref;zoë@example.org;Zoë\n".encode("latin-1"))
    assert erasure.holds(path, "zoë@example.org")


def test_stored_files_lists_both_folders_and_never_follows_a_link(tmp_path):
    data = tmp_path / "data"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("x")
    for name in ("processed/acme/a.csv", "processed/acme/imp/a.csv", "rejected/beta/b.csv"):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_text("x")
    (data / "processed" / "acme" / "link").symlink_to(outside)
    (data / "processed" / "evil").symlink_to(outside)

    listed = [(m, str(p.relative_to(data))) for m, p in folders.stored_files(data)]
    assert sorted(listed) == [
        ("acme", "processed/acme/a.csv"),
        ("acme", "processed/acme/imp/a.csv"),
        ("beta", "rejected/beta/b.csv"),
    ]
    assert [m for m, _ in folders.stored_files(data, "beta")] == ["beta"]


def test_the_dag_summary_names_every_part_that_did_not_purge():
    groups = [["s1", "s2"], ["s3"]]
    done = data_retention.summarize_purge(
        "2026-01-01T00:00:00+00:00", 4, {"acme": 2}, groups, [{"s1": 3, "s2": 0}, {"s3": 1}]
    )
    assert done["failed"] == [] and done["files_deleted"] == 2
    assert done["sftp_files_deleted"] == {"s1": 3, "s2": 0, "s3": 1}
    with pytest.raises(retention.PurgeFailed, match=r"warehouse, sftp/s1, sftp/s2 failed"):
        data_retention.summarize_purge("2026-01-01T00:00:00+00:00", None, {}, groups, [{"s3": 1}])
