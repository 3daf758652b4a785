"""Uploads staged longer than ``REVIEW_INGEST_STAGING_HOURS`` go with ``review_data_retention``
(contract sections 11 and 12): the purge of the staging folder and its task, without Airflow."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest

from review_ingest import settings
from review_ingest.errors import ConfigError
from review_ingest.privacy import retention
from review_ingest.tasks import data_retention

HOUR = 3600


def staged(
    data: Path, relative: str, age_hours: float, files: tuple[str, ...] = ("a.csv",)
) -> Path:
    """An upload folder (or a file) of the staging folder, last touched ``age_hours`` ago."""
    path = data / "staging" / relative
    moment = time.time() - age_hours * HOUR
    if files:
        path.mkdir(parents=True)
        for name in files:
            (path / name).write_text("x")
            os.utime(path / name, (moment, moment))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    os.utime(path, (moment, moment))
    return path


def test_upload_folders_older_than_the_cutoff_go_the_others_stay(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = staged(data, "acme/20261201T100000Z-aaaaaaaaaaaa", 30, ("a.csv", "upload.json"))
    recent = staged(data, "acme/20261206T090000Z-bbbbbbbbbbbb", 1)
    # Checked long ago but queued an hour ago: its newest entry counts.
    queued = staged(data, "beta/20261201T100000Z-cccccccccccc", 30, ("upload.json",))
    (queued / "queued.json").write_text("{}")
    part = staged(data, ".incoming/20261201T100000Z-dddddddddddd.part", 30, ())
    fresh_part = staged(data, ".incoming/20261206T090000Z-eeeeeeeeeeee.part", 0, ())
    # SFTP downloads share the folder (sftp/<merchant_id>/): not uploads, left alone, while a
    # merchant named sftp has its uploads purged all the same.
    download = staged(data, "sftp/acme", 30, ("orders.csv",))
    sftp_merchants_upload = staged(data, "sftp/20261201T100000Z-ffffffffffff", 30)
    before = dt.datetime.now(dt.UTC) - dt.timedelta(hours=24)

    assert retention.purge_staging(data, before, dry_run=True) == 3
    assert old.exists() and part.exists()
    assert retention.purge_staging(data, before) == 3

    assert not old.exists() and not part.exists() and not sftp_merchants_upload.exists()
    assert recent.exists() and queued.exists() and fresh_part.exists()
    assert (download / "orders.csv").is_file()
    assert retention.purge_staging(data, before) == 0


def test_no_staging_folder_is_nothing_to_purge(tmp_path: Path) -> None:
    assert retention.purge_staging(tmp_path / "data", dt.datetime.now(dt.UTC)) == 0


def test_a_symbolic_link_in_staging_is_removed_never_followed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.csv").write_text("x")
    (data / "staging" / "acme").mkdir(parents=True)
    link = data / "staging" / "acme" / "20261201T100000Z-aaaaaaaaaaaa"
    link.symlink_to(outside)
    os.utime(link, (0, 0), follow_symlinks=False)

    retention.purge_staging(data, dt.datetime.now(dt.UTC))

    assert not link.is_symlink() and (outside / "keep.csv").is_file()


def test_the_task_uses_the_staging_hours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(data))
    monkeypatch.setenv("REVIEW_INGEST_STAGING_HOURS", "2")
    three = staged(data, "acme/20261206T070000Z-aaaaaaaaaaaa", 3)
    one = staged(data, "acme/20261206T090000Z-bbbbbbbbbbbb", 1)

    assert data_retention.staging_task() == 1
    assert not three.exists() and one.exists()


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan"])
def test_a_wrong_staging_setting_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("REVIEW_INGEST_STAGING_HOURS", value)
    with pytest.raises(ConfigError, match="REVIEW_INGEST_STAGING_HOURS"):
        settings.staging_hours()


def test_the_staging_hours_default_to_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REVIEW_INGEST_STAGING_HOURS", raising=False)
    assert settings.staging_hours() == 24
    monkeypatch.setenv("REVIEW_INGEST_STAGING_HOURS", "0.5")
    assert settings.staging_hours() == 0.5


def test_the_summary_counts_the_staging_purge_and_names_it_when_it_failed() -> None:
    done = data_retention.summarize_purge("2026-01-01T00:00:00+00:00", 0, {}, [], [], staging=3)
    assert done["staged_uploads_deleted"] == 3 and done["failed"] == []
    with pytest.raises(retention.PurgeFailed, match="staging"):
        data_retention.summarize_purge("2026-01-01T00:00:00+00:00", 0, {}, [], [], staging=None)
