"""Batching for mapped tasks, the warehouse connection in Airflow, and task summaries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from review_ingest import errors
from review_ingest.errors import ConfigError
from review_ingest.pipeline import failures
from review_ingest.store.connections import sqlalchemy_url
from review_ingest.tasks import partition, upload_ingest


def test_split_respects_batch_size_and_the_cap_on_mapped_tasks():
    assert partition.split([], [], 25, 10**9, 64) == []
    assert [len(b) for b in partition.split(list(range(60)), [1] * 60, 25, 10**9, 64)] == [
        25,
        25,
        10,
    ]
    batches = partition.split(list(range(10_000)), [1] * 10_000, 25, 10**9, 64)
    assert len(batches) <= 64 and sum(batches, []) == list(range(10_000))


def test_split_fills_a_batch_up_to_its_bytes_and_gives_a_big_file_its_own():
    sizes = [2, 2, 2, 7, 1, 3, 3]
    assert partition.split(list("abcdefg"), sizes, 500, 5, 64) == [
        ["a", "b"],
        ["c"],
        ["d"],
        ["e", "f"],
        ["g"],
    ]
    # 200 small files of 2 KB: one task, not one per 25 files
    assert len(partition.split(list(range(200)), [2048] * 200, 500, 5 * 1024 * 1024, 64)) == 1
    # 200 files of 5 MB: one each, until the cap on mapped tasks doubles the budget
    batches = partition.split(list(range(200)), [5 * 1024 * 1024] * 200, 500, 5 * 1024 * 1024, 64)
    assert len(batches) <= 64 and sum(batches, []) == list(range(200))
    assert max(map(len, batches)) == 4


def test_plan_upload_batches_groups_small_files_by_their_bytes(tmp_path, monkeypatch):
    """Ready files of 1 KB and one of 3 KB under a 4 KB budget: the big one starts a batch."""
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REVIEW_INGEST_MIN_FILE_AGE_SECONDS", "0")
    monkeypatch.setenv("REVIEW_INGEST_BATCH_BYTES", "4096")
    merchants = tmp_path / "merchants.yaml"
    merchants.write_text("merchants:\n  acme:\n    template: website\n", encoding="utf-8")
    monkeypatch.setenv("REVIEW_INGEST_MERCHANTS", str(merchants))
    folder = tmp_path / "uploads" / "acme"
    folder.mkdir(parents=True)
    for number, size in enumerate([1024, 1024, 1024, 3072, 1024]):
        path = folder / f"f{number}.csv"
        path.write_bytes(b"x" * size)
        os.utime(path, (1_000_000 + number, 1_000_000 + number))
    batches = upload_ingest.plan_upload_batches()
    assert [[Path(item["path"]).name for item in batch] for batch in batches] == [
        ["f0.csv", "f1.csv", "f2.csv"],
        ["f3.csv", "f4.csv"],
    ]


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
    assert upload_ingest.summarize_uploads(batches[:1], [[done]])["loaded"] == 1
    with pytest.raises(failures.BatchFailed, match="b/2.csv"):
        upload_ingest.summarize_uploads(batches, [[done]])


def test_database_errors_are_described_without_their_text():
    class Orig(Exception):
        sqlstate = "23505"

    class DBError(Exception):
        orig = Orig("Key (email)=(secret@example.com) already exists")

    text = errors.describe(DBError("secret@example.com"))
    assert "secret" not in text and "23505" in text


def test_one_failed_merchant_fails_the_task_with_its_own_error_noting_the_merchant():
    refused = ConfigError("SFTP connection 'a_sftp': the server refused us")
    with pytest.raises(ConfigError) as raised:
        failures.raise_failures({"acme": refused})
    assert raised.value is refused
    assert raised.value.__notes__ == [
        "merchant acme: its part of the task failed; the others were done"
    ]
    failures.raise_failures({})


def test_several_failed_merchants_are_each_named_and_retried_unless_all_are_permanent():
    refused = ConfigError("the server refused us")
    with pytest.raises(
        ConfigError, match=r"merchant a: ConfigError: the server refused us \| merchant b"
    ):
        failures.raise_failures({"a": refused, "b": ConfigError("unknown connection")})
    lost = TimeoutError("no answer")
    with pytest.raises(
        failures.BatchFailed, match=r"merchant a: .* \| merchant b: TimeoutError: no answer"
    ):
        failures.raise_failures({"a": refused, "b": lost})
    with pytest.raises(KeyError, match="merchant a"):
        failures.raise_failures({"a": refused, "b": lost}, KeyError)
