"""Batching for mapped tasks, the warehouse connection in Airflow, and task summaries."""

from __future__ import annotations

import pytest

from review_ingest import runs
from review_ingest.connections import sqlalchemy_url


def test_split_respects_batch_size_and_the_cap_on_mapped_tasks():
    assert runs.split([], 25, 64) == []
    assert [len(b) for b in runs.split(list(range(60)), 25, 64)] == [25, 25, 10]
    batches = runs.split(list(range(10_000)), 25, 64)
    assert len(batches) <= 64 and sum(map(len, batches)) == 10_000


def test_warehouse_connection_urls():
    assert sqlalchemy_url("postgres", "db", 5432, "ingest", "p@ss/word", "wh") == (
        "postgresql+psycopg://ingest:p%40ss%2Fword@db:5432/wh"
    )
    assert sqlalchemy_url("sqlite", "/data/w.db", None, None, None, None) == "sqlite:////data/w.db"
    with pytest.raises(ValueError, match="review_warehouse"):
        sqlalchemy_url("mysql", "db", None, None, None, None)


def test_summary_fails_naming_files_of_failed_batches():
    batches = [
        [{"merchant_id": "a", "path": "/u/a/1.csv"}],
        [{"merchant_id": "b", "path": "/u/b/2.csv"}],
    ]
    done = {
        "merchant_id": "a",
        "file_name": "1.csv",
        "status": "loaded",
        "rejection": None,
        "total_rows": 1,
        "valid_rows": 1,
        "error_rows": 0,
        "duplicate_rows": 0,
        "report": "r",
    }
    assert runs.log_summary(batches[:1], [[done]])["loaded"] == 1
    with pytest.raises(runs.BatchFailed, match="b/2.csv"):
        runs.log_summary(batches, [[done]])


def test_database_errors_are_described_without_their_text():
    class Orig(Exception):
        sqlstate = "23505"

    class DBError(Exception):
        orig = Orig("Key (email)=(secret@example.com) already exists")

    text = runs.describe(DBError("secret@example.com"))
    assert "secret" not in text and "23505" in text
