"""The SFTP merchants' grouping into ``collect_merchants`` (and retention) tasks (issue 9):
every merchant in exactly one group, in order, and never more groups than Airflow maps."""

from __future__ import annotations

import pytest

from review_ingest.tasks import sftp_ingest


def test_merchants_are_grouped_ten_to_a_task_in_order(monkeypatch):
    monkeypatch.delenv("REVIEW_INGEST_SFTP_MERCHANTS_PER_TASK", raising=False)
    ids = [f"m{i:02d}" for i in range(25)]
    groups = sftp_ingest.merchant_groups(ids)
    assert [len(g) for g in groups] == [10, 10, 5]
    assert [m for g in groups for m in g] == ids
    assert sftp_ingest.merchant_groups([]) == []


def test_the_group_size_is_a_setting_one_gives_each_merchant_its_own_task(monkeypatch):
    monkeypatch.setenv("REVIEW_INGEST_SFTP_MERCHANTS_PER_TASK", "1")
    assert sftp_ingest.merchant_groups(["a", "b", "c"]) == [["a"], ["b"], ["c"]]
    monkeypatch.setenv("REVIEW_INGEST_SFTP_MERCHANTS_PER_TASK", "4")
    assert sftp_ingest.merchant_groups(list("abcdefghij")) == [
        list("abcd"),
        list("efgh"),
        list("ij"),
    ]


@pytest.mark.parametrize("count", [2_561, 10_000, 50_000])
def test_thousands_of_merchants_make_fewer_tasks_than_airflow_maps(monkeypatch, count):
    """Airflow fails the task that pushes more than ``[core] max_map_length`` (1024) items to
    map over: one task per merchant would collect nobody beyond that."""
    from airflow.configuration import conf

    monkeypatch.setenv("REVIEW_INGEST_SFTP_MERCHANTS_PER_TASK", "1")
    ids = [f"m{i:05d}" for i in range(count)]
    groups = sftp_ingest.merchant_groups(ids)
    assert len(groups) <= sftp_ingest.MAX_SFTP_TASKS < conf.getint("core", "max_map_length")
    assert [m for g in groups for m in g] == ids


def test_a_task_is_labelled_with_its_merchants():
    assert sftp_ingest.task_label(["a", "b"]) == "a, b"
    many = [f"m{i}" for i in range(12)]
    assert sftp_ingest.task_label(many) == "m0, m1, m2, m3, m4 and 7 more"
