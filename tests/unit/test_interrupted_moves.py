"""Issue 8.7, the move itself: a move cut between its link and its unlink (built by hand, no
process killed) is finished without a second copy. Runs killed between their commit and the
move: tests/e2e/test_interrupted_moves.py."""

from __future__ import annotations

import os

from tests.kit.factories import drop


def test_a_move_killed_between_its_link_and_its_unlink_leaves_one_copy(tmp_path):
    """``move_after`` links the file into processed/, then unlinks it: killed in between, the
    file is in both places, and finishing the move must not make a second copy."""
    from review_ingest.sources import folders

    source = drop(tmp_path / "claims" / "acme" / "c1", "orders.csv", b"bytes")
    (tmp_path / "processed" / "acme").mkdir(parents=True)
    os.link(source, tmp_path / "processed" / "acme" / "orders.csv")

    moved = folders.move_after(source, tmp_path, "acme", "loaded", "imp-1")

    assert moved == tmp_path / "processed" / "acme" / "orders.csv"
    assert not source.exists()
    assert [p.name for p in (tmp_path / "processed").rglob("*") if p.is_file()] == ["orders.csv"]
