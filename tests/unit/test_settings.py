"""Numeric settings: read from the environment, else their default; a wrong value fails naming
the variable and what it must be (contract section 8: a configuration error is not retried)."""

from __future__ import annotations

import pytest

from review_ingest import settings
from review_ingest.errors import ConfigError


def test_unset_settings_take_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REVIEW_INGEST_RETENTION_DAYS", raising=False)
    monkeypatch.delenv("REVIEW_INGEST_STAGING_HOURS", raising=False)
    assert settings.retention_days() == settings.DEFAULT_RETENTION_DAYS == 365
    assert settings.staging_hours() == settings.DEFAULT_STAGING_HOURS == 24


def test_set_values_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVIEW_INGEST_RETENTION_DAYS", "30")
    monkeypatch.setenv("REVIEW_INGEST_STAGING_HOURS", "0.5")
    assert settings.retention_days() == 30
    assert settings.staging_hours() == 0.5


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "a year"])
def test_retention_days_must_be_a_whole_number_at_least_one(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("REVIEW_INGEST_RETENTION_DAYS", value)
    with pytest.raises(ConfigError) as raised:
        settings.retention_days()
    assert str(raised.value) == (
        f"REVIEW_INGEST_RETENTION_DAYS must be a whole number of days, at least 1, not {value!r}"
    )


@pytest.mark.parametrize("value", ["0", "-1", "nan", "a day"])
def test_staging_hours_must_be_above_zero(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("REVIEW_INGEST_STAGING_HOURS", value)
    with pytest.raises(
        ConfigError,
        match=f"REVIEW_INGEST_STAGING_HOURS must be a number of hours above 0, not '{value}'",
    ):
        settings.staging_hours()
