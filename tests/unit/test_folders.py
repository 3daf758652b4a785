"""Which upload files are ready, and moving files without ever overwriting (contract 6)."""

from __future__ import annotations

import os
import time

import pytest

from review_ingest.sources import folders


def touch(path, age: float = 600, data: bytes = b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_only_complete_files_old_enough_are_ready(tmp_path):
    uploads = tmp_path / "uploads"
    touch(uploads / "acme" / "b.csv", age=500)
    touch(uploads / "acme" / "a.csv", age=900)
    for name in (".hidden.csv", "x.tmp", "x.PART", "x.csv.filepart"):
        touch(uploads / "acme" / name)
    touch(uploads / "acme" / "young.csv", age=10)
    (uploads / "acme" / "sub").mkdir()
    touch(uploads / "zeta" / "z.csv", age=700)

    ready = folders.ready_uploads(tmp_path, min_age_seconds=120)

    assert [(p.merchant_id, p.path.name) for p in ready] == [
        ("acme", "a.csv"),
        ("zeta", "z.csv"),
        ("acme", "b.csv"),
    ]


def test_no_upload_folder_means_nothing_ready(tmp_path):
    assert folders.ready_uploads(tmp_path, 0) == []


def test_move_keeps_name_and_bytes_and_never_overwrites(tmp_path):
    first = touch(tmp_path / "uploads" / "acme" / "orders.csv", data=b"first")
    moved = folders.move_after(first, tmp_path, "acme", "loaded", "imp-1")
    second = touch(tmp_path / "uploads" / "acme" / "orders.csv", data=b"second")
    moved_again = folders.move_after(second, tmp_path, "acme", "already_imported", "imp-2")

    assert moved == tmp_path / "processed" / "acme" / "orders.csv"
    assert moved_again == tmp_path / "processed" / "acme" / "imp-2" / "orders.csv"
    assert (moved.read_bytes(), moved_again.read_bytes()) == (b"first", b"second")
    assert not first.exists()


def test_rejected_files_go_to_rejected(tmp_path):
    path = touch(tmp_path / "uploads" / "acme" / "bad.csv")
    assert folders.move_after(path, tmp_path, "acme", "rejected", "i") == (
        tmp_path / "rejected" / "acme" / "bad.csv"
    )


@pytest.mark.parametrize("name", ["", ".", "..", "a/b.csv", "a\\b.csv", "x\x00.csv"])
def test_names_that_could_be_paths_are_refused(name):
    with pytest.raises(ValueError, match="may not hold a path"):
        folders.safe_name(name)
