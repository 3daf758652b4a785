"""Retention (contract section 11): personal data is kept ``$REVIEW_INGEST_RETENTION_DAYS``.

Past that, measured from a request's ``scheduled_at`` or a stored file's modification time:

- ``review_requests`` rows lose ``email`` (and its hash), ``firstname`` and ``lastname``; the
  row stays, so its ``order_ref`` still proves the order was imported. This runs in batches of
  ``PURGE_BATCH_ROWS``, one transaction each: a large table is never locked by one giant
  transaction, and a purge interrupted half way is simply run again;
- stored order files under ``<data>/processed/`` and ``<data>/rejected/`` are deleted;
- on each SFTP merchant's server, the order files in ``orders/processed/`` and
  ``orders/rejected/`` are deleted (their ``.report.json`` and ``.errors.csv`` stay: like the
  local reports, ``imports`` and ``import_errors``, they hold no e-mail or name).

Uploads from the browser (contract section 12) wait in ``<data>/staging/`` for a shorter time,
``$REVIEW_INGEST_STAGING_HOURS``: ``purge_staging`` deletes them past it. Validation results and
their Data Docs pages are kept ``$REVIEW_INGEST_DOCS_RETENTION_DAYS``: ``purge_data_docs``
(``quality.docs_retention``).

One merchant's failure never stops the others: each is tried, then the failures are named.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Engine, func, or_, select, update

from review_ingest.core.merchants import Merchant
from review_ingest.errors import describe
from review_ingest.sources import folders
from review_ingest.store import audit
from review_ingest.store.models import ReviewRequestRow

if TYPE_CHECKING:
    from paramiko import SFTPAttributes, SFTPClient

    from review_ingest.quality.docs_retention import DocsPurged


log = logging.getLogger(__name__)


#: Requests anonymised per transaction.
PURGE_BATCH_ROWS = 5000


class PurgeFailed(RuntimeError):
    """Part of a purge failed (named in the message); everything else was purged."""


@dataclass
class FilesPurged:
    """Files deleted (or, in a dry run, that would be), by merchant, and who failed."""

    deleted: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def cutoff(now: dt.datetime, days: int) -> dt.datetime:
    """Personal data older than this goes."""
    return now - dt.timedelta(days=days)


def purge_requests(
    engine: Engine,
    before: dt.datetime,
    *,
    dry_run: bool = False,
    batch_rows: int = PURGE_BATCH_ROWS,
) -> int:
    """Null the person's fields of every request scheduled before ``before``; return how many
    rows changed (or would). Each batch commits on its own, walking the table by request_id."""
    if dry_run:
        with engine.connect() as connection:
            query = select(func.count()).select_from(ReviewRequestRow)
            return connection.scalar(query.where(*_personal_before(before))) or 0
    done, last = 0, -1
    while ids := _anonymise_batch(engine, before, last, batch_rows):
        done, last = done + len(ids), ids[-1]
        log.info("retention: %d request(s) anonymised so far", done)
    return done


def _anonymise_batch(engine: Engine, before: dt.datetime, after_id: int, rows: int) -> list[int]:
    """One transaction: the next ``rows`` requests to anonymise after ``after_id``; their ids."""
    with engine.begin() as connection:
        ids = list(
            connection.scalars(
                select(ReviewRequestRow.request_id)
                .where(*_personal_before(before), ReviewRequestRow.request_id > after_id)
                .order_by(ReviewRequestRow.request_id)
                .limit(rows)
            )
        )
        if ids:
            connection.execute(
                update(ReviewRequestRow)
                .where(ReviewRequestRow.request_id.in_(ids))
                .values(email=None, email_sha256=None, firstname=None, lastname=None)
            )
    return ids


def _personal_before(before: dt.datetime) -> tuple[ColumnElement[bool], ...]:
    """Requests scheduled before ``before`` that still hold some of the person's data."""
    return ReviewRequestRow.scheduled_at < before, or_(
        ReviewRequestRow.email.is_not(None),
        ReviewRequestRow.email_sha256.is_not(None),
        ReviewRequestRow.firstname.is_not(None),
        ReviewRequestRow.lastname.is_not(None),
    )


def purge_local_files(data_dir: Path, before: dt.datetime, *, dry_run: bool = False) -> FilesPurged:
    """Delete the stored order files last modified before ``before``, merchant by merchant."""
    result = FilesPurged()
    limit = before.timestamp()
    for merchant_id, path in folders.stored_files(data_dir):
        if merchant_id in result.failures:
            continue
        result.deleted.setdefault(merchant_id, 0)
        try:
            if path.stat().st_mtime >= limit:
                continue
            if not dry_run:
                path.unlink(missing_ok=True)
        except OSError as exc:
            result.failures[merchant_id] = f"{path.relative_to(data_dir)}: {exc.strerror or exc}"
            continue
        result.deleted[merchant_id] += 1
    return result


def purge_staging(data_dir: Path, before: dt.datetime, *, dry_run: bool = False) -> int:
    """Delete the uploads from the browser waiting in ``<data>/staging/`` untouched since before
    ``before``: each upload folder (``<merchant_id>/<upload_id>/``, judged by its newest entry,
    so a queued import counts from its queuing) and each file a request left half received
    (``.incoming/``); return how many. SFTP downloads there (``sftp/<merchant_id>/``) are not
    uploads: left alone."""
    root = folders.staging_root(data_dir)
    if not root.is_dir():
        return 0
    deleted = 0
    for parent in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        for entry in sorted(parent.iterdir()):
            if not _is_staged_upload(entry):
                continue
            try:
                if _last_touched(entry) >= before.timestamp():
                    continue
            except FileNotFoundError:  # imported or deleted meanwhile
                continue
            if not dry_run:
                _delete(entry)
            deleted += 1
    log.info("retention: %d staged upload(s) %s", deleted, "would go" if dry_run else "deleted")
    return deleted


def _is_staged_upload(entry: Path) -> bool:
    if entry.parent.name == ".incoming":
        return entry.name.endswith(".part")
    return folders.UPLOAD_ID.fullmatch(entry.name) is not None


def _last_touched(path: Path) -> float:
    """The newest modification time of ``path`` and, for a folder, of what it holds."""
    times = [path.lstat().st_mtime]
    if path.is_dir() and not path.is_symlink():
        times += [child.lstat().st_mtime for child in path.rglob("*")]
    return max(times)


def _delete(path: Path) -> None:
    """A file, a symbolic link (never followed) or a folder and what it holds."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def purge_sftp(merchant: Merchant, before: dt.datetime, *, dry_run: bool = False) -> int:
    """Delete the merchant's order files in ``orders/processed/`` and ``orders/rejected/`` on its
    SFTP server last modified before ``before``; return how many (or would be)."""
    from review_ingest.sources import sftp

    if merchant.sftp is None:
        return 0
    inbox = merchant.sftp.inbox
    deleted = 0
    with sftp.connect(merchant.sftp.conn_id) as client:
        for outcome in sftp.OUTCOMES:
            folder = f"{inbox.rstrip('/')}/{outcome}"
            for entry in _remote_files(client, folder):
                if not _is_order_copy(entry) or entry.st_mtime >= before.timestamp():
                    continue
                if not dry_run:
                    _remove(client, folder, entry.filename)
                deleted += 1
    log.info(
        "retention: merchant %s: %d file(s) %s on its SFTP server",
        merchant.merchant_id,
        deleted,
        "would be deleted" if dry_run else "deleted",
    )
    return deleted


def _remote_files(client: SFTPClient, folder: str) -> list[SFTPAttributes]:
    """The regular files of ``folder``; none when the folder does not exist (yet)."""
    from review_ingest.sources.sftp import TransportError

    try:
        entries = client.listdir_attr(folder)
    except FileNotFoundError:
        return []
    except Exception as exc:
        raise TransportError(f"SFTP folder {folder}: cannot list: {exc}") from exc
    return [e for e in entries if e.st_mode is not None and stat.S_ISREG(e.st_mode)]


def _is_order_copy(entry: SFTPAttributes) -> bool:
    """An order file, not one of its reports nor a report being written (hidden name)."""
    from review_ingest.sources.sftp import ERRORS_SUFFIX, REPORT_SUFFIX

    name = entry.filename
    return (
        entry.st_mtime is not None
        and not name.startswith(".")
        and not name.endswith((REPORT_SUFFIX, ERRORS_SUFFIX))
    )


def _remove(client: SFTPClient, folder: str, name: str) -> None:
    from review_ingest.sources.sftp import TransportError

    try:
        client.remove(f"{folder}/{name}")
    except FileNotFoundError:
        return  # gone already: another purge got there first
    except Exception as exc:
        raise TransportError(f"SFTP folder {folder}: cannot delete {name!r}: {exc}") from exc


def purge_data_docs(
    data_dir: Path, now: dt.datetime, days: int, *, dry_run: bool = False
) -> DocsPurged:
    """Validation results and Data Docs pages older than ``days``, and the reports' links to
    them (``quality.docs_retention``); then the Data Docs index without them."""
    from review_ingest.quality import docs_retention

    done = docs_retention.purge_docs(data_dir, cutoff(now, days), days, dry_run=dry_run)
    if done.data_docs_pages and not dry_run:
        from review_ingest.quality.validation import Validation

        docs, results = data_dir / docs_retention.DOCS, data_dir / docs_retention.RESULTS
        Validation(docs_dir=docs, results_dir=results).build_index()
    return done


@dataclass
class Purge:
    """What one purge did (or, in a dry run, would do): counts only, never a person's data."""

    dry_run: bool
    retention_days: int
    cutoff: str
    requests_anonymised: int = 0
    files_deleted: int = 0
    sftp_files_deleted: dict[str, int] = field(default_factory=dict)
    #: ``$REVIEW_INGEST_DOCS_RETENTION_DAYS``, and what went past it (None: not purged).
    docs_retention_days: int | None = None
    validation_results_deleted: int = 0
    data_docs_pages_deleted: int = 0
    #: What failed, by part (``warehouse``, ``files/<merchant>``, ``data_docs``,
    #: ``sftp/<merchant>``).
    failures: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"command": "purge", **asdict(self)}


def purge(
    engine: Engine,
    data_dir: Path,
    merchants: dict[str, Merchant],
    now: dt.datetime,
    days: int,
    *,
    dry_run: bool = False,
    actor: str | None = None,
    docs_days: int | None = None,
) -> Purge:
    """``review-ingest purge``: the warehouse, the data folder (with ``docs_days``, the
    validation results and Data Docs too), then each SFTP merchant; a part that fails is named
    in ``failures`` and the others still run. Then its entry in the audit
    trail, on behalf of ``actor`` (a part too: ``audit``)."""
    before = cutoff(now, days)
    result = Purge(dry_run, days, before.isoformat())
    try:
        result.requests_anonymised = purge_requests(engine, before, dry_run=dry_run)
    except Exception as exc:  # the files and the other servers are still worth purging
        result.failures["warehouse"] = describe(exc)
    files = purge_local_files(data_dir, before, dry_run=dry_run)
    result.files_deleted = files.total
    result.failures.update({f"files/{m}": why for m, why in files.failures.items()})
    if docs_days is not None:  # validation results and Data Docs pages past their own days
        result.docs_retention_days = docs_days
        try:
            docs = purge_data_docs(data_dir, now, docs_days, dry_run=dry_run)
            result.validation_results_deleted = docs.validation_results
            result.data_docs_pages_deleted = docs.data_docs_pages
        except Exception as exc:
            result.failures["data_docs"] = describe(exc)
    for merchant_id, merchant in sorted(merchants.items()):
        if merchant.sftp is None:
            continue
        try:
            result.sftp_files_deleted[merchant_id] = purge_sftp(merchant, before, dry_run=dry_run)
        except Exception as exc:
            result.failures[f"sftp/{merchant_id}"] = describe(exc)
    if not dry_run:
        totals = {k: v for k, v in result.as_dict().items() if k not in ("command", "dry_run")}
        totals["failures"] = sorted(result.failures)  # their names: a reason may name a file
        try:
            record_purge(engine, totals, actor, now)
        except Exception as exc:  # the purge is done: say that its record is missing
            result.failures["audit"] = describe(exc)
    return result


def record_purge(
    engine: Engine, details: dict[str, Any], actor: str | None, now: dt.datetime
) -> None:
    """A purge's entry in the audit trail, on behalf of ``actor`` (None:
    ``audit.process_actor()``): its counts, the failed parts named."""
    with engine.begin() as connection:
        audit.append(connection, "purge", None, actor or audit.process_actor(), details, now)
