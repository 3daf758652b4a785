"""The audit trail: one entry in ``audit_log`` for every import, cancellation, erasure, opt-out
(``suppress``, ``unsuppress``) and purge, chained by SHA-256 so that an entry changed or deleted
shows.

An entry is the object ``{"entry_id", "recorded_at", "action", "subject", "actor", "details",
"prev_hash"}``, and::

    entry_hash = sha256(canonical(entry)).hexdigest()
    canonical(v) = json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                   encoded as UTF-8

``recorded_at`` is ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC, six decimals), ``details`` an object
of strings, integers, booleans, nulls, lists and objects (never a float: the text is then the
same in every language), ``prev_hash`` the ``entry_hash`` of the entry before (by
``entry_id``), ``GENESIS`` for the first. ``export`` gives each entry as that object plus its
``entry_hash``: an auditor recomputes every hash and link from the export alone.

A changed field breaks that entry's hash; a deleted entry breaks the next one's
``prev_hash``. The newest entries have no successor to betray them: only an anchor kept
outside the warehouse (``entry_id:entry_hash`` of the head, printed by ``verify``) shows a
deleted or rewritten tail. Appends are serialised (one chain, never a fork): PostgreSQL's
advisory lock ``AUDIT_LOCK_KEY``, SQLite's single writer, both held to the commit; the unique
``prev_hash`` refuses a fork whatever the database. No entry holds an address or a name, not
even hashed: the log can never be purged without breaking the chain.
"""

from __future__ import annotations

import datetime as dt
import functools
import getpass
import hashlib
import importlib.metadata
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, insert, select, update

from review_ingest.core.outcomes import Outcome
from review_ingest.errors import UsageError
from review_ingest.store.models import AuditEntryRow, to_utc

#: ``prev_hash`` of the first entry.
GENESIS = "0" * 64
ACTIONS = ("import", "cancel", "erase", "suppress", "unsuppress", "purge")
#: Any bigint, the same in every process (the migrations use ...0001).
AUDIT_LOCK_KEY = 0x5265766965770002
ANCHOR = re.compile(r"(\d+):([0-9a-f]{64})")
_ROWS_PER_FETCH = 1000


@dataclass(frozen=True)
class Anchor:
    """An entry as an auditor noted it: the log must still hold it, unchanged."""

    entry_id: int
    entry_hash: str

    def __str__(self) -> str:
        return f"{self.entry_id}:{self.entry_hash}"


@dataclass(frozen=True)
class Broken:
    """Where the chain first breaks: the entry named, and what does not match."""

    entry_id: int
    problem: str


@dataclass(frozen=True)
class Verification:
    """A walk of the whole log: how many entries, the head, the first break (None: intact)."""

    entries: int
    head: Anchor | None
    broken: Broken | None


def canonical(value: Any) -> str:
    """The one JSON text of ``value`` that the hashes are made of (see the module's doc)."""
    _refuse_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _refuse_floats(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("audit details hold no float: its text differs between languages")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit details' keys are strings, not {key!r}")
            _refuse_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item)


def time_text(at: dt.datetime) -> str:
    """``recorded_at`` as hashed and exported: UTC, microseconds, ``Z``."""
    return to_utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(entry: Mapping[str, Any]) -> str:
    """The SHA-256 of an entry (its exported form; an ``entry_hash`` in it is left out)."""
    fields = {key: value for key, value in entry.items() if key != "entry_hash"}
    return hashlib.sha256(canonical(fields).encode("utf-8")).hexdigest()


def append(
    connection: Connection,
    action: str,
    subject: str | None,
    actor: str,
    details: Mapping[str, Any],
    now: dt.datetime,
) -> int:
    """Append an entry in the caller's transaction, so it commits (or not) with what it tells;
    its ``entry_id``. Call it last: it holds the log's lock until the commit.

    The row goes in first with placeholders: on SQLite that write takes the database's write
    lock, so the previous entry read next is the last one committed. ``recorded_at`` never goes
    back (``now``, or the previous entry's time when that is later), so a range of dates is a
    run of consecutive entries.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    text = canonical(dict(details))
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(AUDIT_LOCK_KEY)))
    pending = f"pending:{uuid.uuid4().hex}"
    entry_id: int = connection.execute(
        insert(AuditEntryRow)
        .values(
            recorded_at=now,
            action=action,
            subject=subject,
            actor=actor,
            details=text,
            prev_hash=pending,
            entry_hash=pending,
        )
        .returning(AuditEntryRow.entry_id)
    ).scalar_one()
    previous = connection.execute(
        select(AuditEntryRow.entry_hash, AuditEntryRow.recorded_at)
        .where(AuditEntryRow.entry_id < entry_id)
        .order_by(AuditEntryRow.entry_id.desc())
        .limit(1)
    ).first()
    prev_hash, recorded_at = GENESIS, to_utc(now)
    if previous is not None:
        prev_hash, recorded_at = previous.entry_hash, max(recorded_at, previous.recorded_at)
    entry = {
        "entry_id": entry_id,
        "recorded_at": time_text(recorded_at),
        "action": action,
        "subject": subject,
        "actor": actor,
        "details": json.loads(text),
        "prev_hash": prev_hash,
    }
    connection.execute(
        update(AuditEntryRow)
        .where(AuditEntryRow.entry_id == entry_id)
        .values(recorded_at=recorded_at, prev_hash=prev_hash, entry_hash=entry_hash(entry))
    )
    return entry_id


def check_chain(
    entries: Iterable[Mapping[str, Any]],
    *,
    first_prev: str | None = GENESIS,
    anchor: Anchor | None = None,
) -> Verification:
    """Walk exported entries in ``entry_id`` order: each hash recomputed, each link followed.

    ``first_prev``: what the first entry's ``prev_hash`` must be (None: not checked, for an
    export that starts after the first entry). ``anchor``: an entry that must be there,
    unchanged.
    """
    count, previous, found = 0, None, False
    for entry in entries:
        count += 1
        entry_id = entry["entry_id"]
        broken = _check_entry(entry, previous, first_prev)
        if broken is None and anchor is not None and entry_id == anchor.entry_id:
            found = True
            if entry["entry_hash"] != anchor.entry_hash:
                broken = Broken(
                    entry_id,
                    f"its entry_hash is {entry['entry_hash']}, the anchor's {anchor.entry_hash}: "
                    "this entry and those after it were rewritten",
                )
        if broken is not None:
            return Verification(count, None, broken)
        previous = entry
    head = None if previous is None else Anchor(previous["entry_id"], previous["entry_hash"])
    if anchor is not None and not found:
        return Verification(count, head, _anchor_missing(anchor, head))
    return Verification(count, head, None)


def _anchor_missing(anchor: Anchor, head: Anchor | None) -> Broken:
    if head is None:
        where = " (the log is empty)"
    elif anchor.entry_id > head.entry_id:
        where = f" (the log ends at entry {head.entry_id}: its newest entries were deleted)"
    else:
        where = ""
    return Broken(anchor.entry_id, f"the anchor's entry is missing: it was deleted{where}")


def _check_entry(
    entry: Mapping[str, Any], previous: Mapping[str, Any] | None, first_prev: str | None
) -> Broken | None:
    """What is wrong with one entry, given the one before it (None: it is the first)."""
    entry_id = entry["entry_id"]
    if entry_hash(entry) != entry["entry_hash"]:
        return Broken(entry_id, "its entry_hash does not match its fields: the entry was changed")
    if previous is None:
        if first_prev is not None and entry["prev_hash"] != first_prev:
            return Broken(
                entry_id,
                "it is the first entry left but its prev_hash is not the genesis: the entries "
                "before it were deleted",
            )
        return None
    if entry["prev_hash"] != previous["entry_hash"]:
        before = previous["entry_id"]
        missing = (
            f" (entry_id {before + 1} to {entry_id - 1} missing)"
            if entry_id - before > 2
            else f" (entry_id {before + 1} missing)"
            if entry_id - before == 2
            else ""
        )
        return Broken(
            entry_id,
            f"its prev_hash is not the entry_hash of entry {before}, the one before it: an "
            f"entry between them was deleted{missing}",
        )
    return None


def verification(engine: Engine, anchor: Anchor | None = None) -> Verification:
    """The whole log walked from the database, in one snapshot, streamed."""
    with engine.connect() as connection:
        rows = connection.execution_options(yield_per=_ROWS_PER_FETCH).execute(
            select(AuditEntryRow.__table__).order_by(AuditEntryRow.entry_id)
        )
        return check_chain(map(_exported, rows), anchor=anchor)


def verify(engine: Engine, anchor: Anchor | None = None) -> Broken | None:
    """The first entry changed, or after a deleted one; None when the chain is intact."""
    return verification(engine, anchor).broken


def export(
    engine: Engine, since: dt.date | None = None, until: dt.date | None = None
) -> Iterator[dict[str, Any]]:
    """The entries recorded from ``since`` to ``until`` (UTC days, both included; None: no
    bound), oldest first, each as hashed plus its ``entry_hash`` (see the module's doc)."""
    query = select(AuditEntryRow.__table__).order_by(AuditEntryRow.entry_id)
    if since is not None:
        query = query.where(AuditEntryRow.recorded_at >= _midnight(since))
    if until is not None:
        query = query.where(AuditEntryRow.recorded_at < _midnight(until + dt.timedelta(days=1)))
    with engine.connect() as connection:
        rows = connection.execution_options(yield_per=_ROWS_PER_FETCH).execute(query)
        yield from map(_exported, rows)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _exported(row: Row[Any]) -> dict[str, Any]:
    """A stored entry as exported. Details not stored as their canonical JSON (edited by hand)
    are exported as the stored text, which no longer hashes to the entry's hash."""
    details: Any = row.details
    try:
        parsed = json.loads(row.details)
        if canonical(parsed) == row.details:
            details = parsed
    except (ValueError, TypeError):
        pass
    return {
        "entry_id": row.entry_id,
        "recorded_at": time_text(row.recorded_at),
        "action": row.action,
        "subject": row.subject,
        "actor": row.actor,
        "details": details,
        "prev_hash": row.prev_hash,
        "entry_hash": row.entry_hash,
    }


def parse_anchor(text: str) -> Anchor:
    """``ENTRY_ID:ENTRY_HASH`` as ``verify`` prints the head; UsageError otherwise."""
    match = ANCHOR.fullmatch(text.strip().lower())
    if match is None:
        raise UsageError(
            f"an anchor is ENTRY_ID:ENTRY_HASH (64 hexadecimal digits), not {text.strip()!r}"
        )
    return Anchor(int(match[1]), match[2])


def system_actor() -> str:
    """The command line's actor: ``cli:<system user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name, no entry in the password database
        return f"cli:uid-{os.getuid()}"


def process_actor() -> str:
    """Who acts when the caller names nobody: ``dag:<dag_id>`` in an Airflow task (Airflow
    exports ``AIRFLOW_CTX_DAG_ID`` to a task's environment), else ``system_actor()``."""
    dag_id = os.environ.get("AIRFLOW_CTX_DAG_ID")
    return f"dag:{dag_id}" if dag_id else system_actor()


def import_details(outcome: Outcome) -> dict[str, Any]:
    """What an import's entry says: the file's bytes, the rules that judged it, the counts."""
    record = outcome.record
    return {
        "merchant_id": record.merchant_id,
        "source": record.source,
        "sha256": record.sha256,
        "size_bytes": record.size_bytes,
        "template": record.template,
        "suite": outcome.suite,
        "suite_sha256": outcome.suite_sha256,
        "great_expectations": _gx_version() if outcome.suite_sha256 else None,
        "status": record.status,
        "rejection_code": record.rejection_code,
        "earlier_import_id": outcome.earlier_import_id,
        "total_rows": record.total_rows,
        "valid_rows": record.valid_rows,
        "error_rows": record.error_rows,
        "duplicate_rows": record.duplicate_rows,
        "suppressed_rows": record.suppressed_rows,
        "brand_requests": record.brand_requests,
        "product_requests": record.product_requests,
    }


@functools.cache
def _gx_version() -> str | None:
    """The installed Great Expectations, read from its metadata (importing it costs seconds)."""
    try:
        return importlib.metadata.version("great_expectations")
    except importlib.metadata.PackageNotFoundError:
        return None
