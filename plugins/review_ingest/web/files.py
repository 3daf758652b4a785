"""The files the UI serves: a file's reports and the Data Docs, never anything outside them.

A path from a URL is data: it is refused (None, so a 404) when it is absolute, climbs with
``..``, names a hidden file or folder (such as the Data Docs builders' ``.build.lock``), holds a
backslash or a NUL, or resolves (symbolic links followed) outside its folder.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path, PurePosixPath

from review_ingest import settings
from review_ingest.errors import ConfigError
from review_ingest.quality import docs_retention

REPORT_FILES = ("report.json", "errors.csv")


def report_file(data_dir: Path, merchant_id: str, import_id: str, name: str) -> Path | None:
    """``<data>/reports/<merchant_id>/<import_id>/<name>`` when that file exists.

    ``merchant_id`` and ``import_id`` come from the warehouse's ``imports`` row, not from the
    URL; they are still checked like any path.
    """
    if name not in REPORT_FILES:
        return None
    return _inside(data_dir / "reports", f"{merchant_id}/{import_id}/{name}")


def data_docs_file(data_dir: Path, path: str) -> Path | None:
    """The file of ``<data>/data_docs/`` at ``path`` (``index.html`` for an empty path)."""
    return _inside(data_dir / "data_docs", path or "index.html")


def deleted_docs_note(data_dir: Path, page: str, now: dt.datetime) -> str | None:
    """``Data Docs page deleted after N days (retention)`` when ``page`` of ``<data>/data_docs/``
    is not there and is past ``REVIEW_INGEST_DOCS_RETENTION_DAYS``; else None."""
    if data_docs_file(data_dir, page) is not None:
        return None
    try:
        days = settings.docs_retention_days()
    except ConfigError:  # the retention DAG fails on it; a page still says what it can
        days = settings.DEFAULT_DOCS_RETENTION_DAYS
    return docs_retention.gone_note(page, now, days)


def _inside(root: Path, path: str) -> Path | None:
    if "\\" in path or "\0" in path:
        return None
    relative = PurePosixPath(path)
    if relative.is_absolute() or any(part.startswith(".") for part in path.split("/")):
        return None
    try:
        base = root.resolve()
        candidate = (base / relative).resolve()
        inside = candidate.is_relative_to(base) and candidate.is_file()
    except (OSError, RuntimeError):  # a symbolic link loop, a name too long
        return None
    return candidate if inside else None
