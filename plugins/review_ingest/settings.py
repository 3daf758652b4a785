"""Where things are: every path and URL the pipeline reads from the environment."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from review_ingest.errors import ConfigError

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
INCLUDE_DIR = REPO_ROOT / "include"
EXPECTATIONS_DIR = INCLUDE_DIR / "expectations"

MAX_FILE_BYTES = 5 * 1024 * 1024
DEFAULT_MIN_FILE_AGE_SECONDS = 120
#: At most this many files per mapped task: ``DEFAULT_BATCH_BYTES`` decides first.
DEFAULT_BATCH_SIZE = 500
#: Order files' bytes per mapped task: one full-size file's work, well above what a task costs
#: by itself (a process, a Great Expectations context, a validation and its Data Docs page), so
#: small files share a task and big ones get one each.
DEFAULT_BATCH_BYTES = MAX_FILE_BYTES


def data_dir() -> Path:
    return Path(os.environ.get("REVIEW_INGEST_DATA_DIR") or REPO_ROOT / "data")


def merchants_file() -> Path:
    return Path(os.environ.get("REVIEW_INGEST_MERCHANTS") or INCLUDE_DIR / "merchants.yaml")


def warehouse_url() -> str:
    """The warehouse outside Airflow: ``$REVIEW_INGEST_WAREHOUSE_URL``, else SQLite in data/."""
    return (
        os.environ.get("REVIEW_INGEST_WAREHOUSE_URL") or f"sqlite:///{data_dir() / 'warehouse.db'}"
    )


def min_file_age_seconds() -> float:
    return float(os.environ.get("REVIEW_INGEST_MIN_FILE_AGE_SECONDS", DEFAULT_MIN_FILE_AGE_SECONDS))


def batch_size() -> int:
    """Files per ``ingest_batch`` task at most: fewer means more tasks to spread over workers."""
    return max(1, int(os.environ.get("REVIEW_INGEST_BATCH_SIZE", DEFAULT_BATCH_SIZE)))


def batch_bytes() -> int:
    """Bytes of files per ``ingest_batch`` task at most (a bigger file has a task of its own)."""
    return max(1, int(os.environ.get("REVIEW_INGEST_BATCH_BYTES", DEFAULT_BATCH_BYTES)))


#: SFTP merchants per ``collect_merchants`` task: their small files share one validation, and
#: Airflow's own cost of a task (more on a busy scheduler) is paid once for them.
DEFAULT_SFTP_MERCHANTS_PER_TASK = 10


def sftp_merchants_per_task() -> int:
    """Merchants per ``collect_merchants`` task: 1 gives each merchant a task of its own."""
    text = os.environ.get("REVIEW_INGEST_SFTP_MERCHANTS_PER_TASK")
    return max(1, int(text or DEFAULT_SFTP_MERCHANTS_PER_TASK))


def retry_delay() -> dt.timedelta:
    """Between two tries of a failed task (5 minutes; tests shorten it)."""
    return dt.timedelta(seconds=float(os.environ.get("REVIEW_INGEST_RETRY_DELAY_SECONDS", 300)))


#: How long a claim on a file holds against runs on other machines (``claims``): far longer than
#: any file's processing, so that only a run that died loses its claim.
DEFAULT_CLAIM_LEASE_SECONDS = 1800


def claim_lease_seconds() -> float:
    return float(os.environ.get("REVIEW_INGEST_CLAIM_LEASE_SECONDS", DEFAULT_CLAIM_LEASE_SECONDS))


#: Personal data is kept this many days (contract section 11).
DEFAULT_RETENTION_DAYS = 365


def retention_days() -> int:
    """``$REVIEW_INGEST_RETENTION_DAYS``: a whole number of days, at least 1."""
    return _checked(
        "REVIEW_INGEST_RETENTION_DAYS",
        DEFAULT_RETENTION_DAYS,
        int,
        lambda days: days >= 1,
        "a whole number of days, at least 1",
    )


#: Validation results and their Data Docs pages are kept this many days.
DEFAULT_DOCS_RETENTION_DAYS = 90


def docs_retention_days() -> int:
    """``$REVIEW_INGEST_DOCS_RETENTION_DAYS``: a whole number of days, at least 1."""
    return _checked(
        "REVIEW_INGEST_DOCS_RETENTION_DAYS",
        DEFAULT_DOCS_RETENTION_DAYS,
        int,
        lambda days: days >= 1,
        "a whole number of days, at least 1",
    )


#: An upload from the browser waits this long for "Import data" (contract section 12).
DEFAULT_STAGING_HOURS = 24


def staging_hours() -> float:
    """``$REVIEW_INGEST_STAGING_HOURS``: how long a checked upload is kept, more than 0."""
    return _checked(
        "REVIEW_INGEST_STAGING_HOURS",
        DEFAULT_STAGING_HOURS,
        float,
        lambda hours: hours > 0,
        "a number of hours above 0",
    )


#: A file waiting this long in an upload folder or an SFTP inbox is reported to the data team.
DEFAULT_STUCK_MINUTES = 60


def stuck_minutes() -> int:
    """``$REVIEW_INGEST_STUCK_MINUTES``: a whole number of minutes, at least 1."""
    return _checked(
        "REVIEW_INGEST_STUCK_MINUTES",
        DEFAULT_STUCK_MINUTES,
        int,
        lambda minutes: minutes >= 1,
        "a whole number of minutes, at least 1",
    )


def alert_emails() -> tuple[str, ...]:
    """``$REVIEW_INGEST_ALERT_EMAILS``: the data team's addresses, comma-separated; unset or
    empty, nobody is alerted."""
    text = os.environ.get("REVIEW_INGEST_ALERT_EMAILS") or ""
    addresses = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    for address in addresses:
        local, at, domain = address.partition("@")
        if not (local and at and domain) or any(c.isspace() or c in "<>;" for c in address):
            raise ConfigError(
                "REVIEW_INGEST_ALERT_EMAILS must be e-mail addresses separated by commas, "
                f"not {address!r}"
            )
    return addresses


def _checked(
    name: str, default: T, parse: Callable[[str], T], accept: Callable[[T], bool], wanted: str
) -> T:
    """``$name`` (else ``default``) read with ``parse``; a ConfigError naming the variable and
    what it must be when the value does not parse or is not accepted."""
    text = os.environ.get(name) or str(default)
    try:
        value = parse(text)
    except ValueError:
        raise ConfigError(f"{name} must be {wanted}, not {text!r}") from None
    if not accept(value):
        raise ConfigError(f"{name} must be {wanted}, not {text!r}")
    return value
