"""A person's erasure (contract section 11): ``review-ingest erase --email ADDRESS``.

Requests to that address not yet due are deleted, so nothing is sent; the others keep their row
(their ``order_ref`` still proves the order was imported) but lose ``email`` and its hash,
``firstname`` and ``lastname``. Stored order files that hold the address (``<data>/processed/``,
``<data>/rejected/``) are deleted. The table ``erasures`` records when, where and how much, with
no address. Running it again finds nothing more to do.

Files still waiting in ``uploads/`` are left alone: they are not processed yet, and deleting one
would lose every other customer's rows of that file.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, Select, delete, func, insert, select, update

from review_ingest.sources import folders
from review_ingest.store import audit
from review_ingest.store.models import ErasureRow, ReviewRequestRow

log = logging.getLogger(__name__)

#: Characters that may touch an address inside a file and still leave it a whole value.
_EDGE = r"[^a-z0-9.!#$%&'*+/=?^_`{|}~@-]"


@dataclass(frozen=True)
class ErasureResult:
    merchant_id: str | None
    dry_run: bool
    requests_deleted: int
    requests_anonymised: int
    files_deleted: int

    def as_dict(self) -> dict[str, object]:
        return {"command": "erase", **asdict(self)}


def erase(
    engine: Engine,
    data_dir: Path,
    address: str,
    merchant_id: str | None,
    now: dt.datetime,
    *,
    dry_run: bool = False,
    actor: str | None = None,
) -> ErasureResult:
    """Erase the person ``address`` (already ``addresses.parse``d) on behalf of ``actor``
    (None: ``audit.process_actor()``): see the module's doc."""
    files = [
        path for _m, path in folders.stored_files(data_dir, merchant_id) if holds(path, address)
    ]
    with engine.begin() as connection:
        due = _requests(address, merchant_id).where(ReviewRequestRow.scheduled_at <= now)
        not_due = _requests(address, merchant_id).where(ReviewRequestRow.scheduled_at > now)
        if dry_run:
            deleted = _count(connection, not_due)
            anonymised = _count(connection, due)
        else:
            deleted = connection.execute(
                delete(ReviewRequestRow).where(ReviewRequestRow.request_id.in_(not_due))
            ).rowcount
            anonymised = connection.execute(
                update(ReviewRequestRow)
                .where(ReviewRequestRow.request_id.in_(due))
                .values(email=None, email_sha256=None, firstname=None, lastname=None)
            ).rowcount
    if not dry_run:
        for path in files:
            path.unlink(missing_ok=True)
    result = ErasureResult(merchant_id, dry_run, deleted, anonymised, len(files))
    if not dry_run:
        _record(engine, result, actor or audit.process_actor(), now)
    log.info(
        "erasure%s (merchant %s): %d request(s) deleted, %d anonymised, %d file(s) deleted",
        " (dry run)" if dry_run else "",
        merchant_id or "all",
        result.requests_deleted,
        result.requests_anonymised,
        result.files_deleted,
    )
    return result


def holds(path: Path, address: str) -> bool:
    """Whether the file holds ``address`` as a whole value, in any letter case.

    Read as bytes and searched whole, so a file refused for its encoding or its layout is found
    too: as UTF-8, and as Latin-1 for files in a legacy encoding.
    """
    data = path.read_bytes().lower()
    pattern = re.compile(f"(?:^|{_EDGE}){re.escape(address)}(?:{_EDGE}|$)", re.MULTILINE)
    for encoding in ("utf-8", "latin-1"):
        text = data.decode(encoding, errors="replace")
        if pattern.search(text):
            return True
    return False


def _requests(address: str, merchant_id: str | None) -> Select[tuple[int]]:
    query = select(ReviewRequestRow.request_id).where(func.lower(ReviewRequestRow.email) == address)
    if merchant_id is not None:
        query = query.where(ReviewRequestRow.merchant_id == merchant_id)
    return query


def _count(connection: Connection, query: Select[tuple[int]]) -> int:
    return connection.scalar(select(func.count()).select_from(query.subquery())) or 0


def _record(engine: Engine, result: ErasureResult, actor: str, now: dt.datetime) -> None:
    """The ``erasures`` row and its audit entry, together: counts and scope, no address."""
    counts = {
        "merchant_id": result.merchant_id,
        "requests_deleted": result.requests_deleted,
        "requests_anonymised": result.requests_anonymised,
        "files_deleted": result.files_deleted,
    }
    with engine.begin() as connection:
        erasure_id = connection.execute(
            insert(ErasureRow).values(erased_at=now, **counts).returning(ErasureRow.erasure_id)
        ).scalar_one()
        details = {"erasure_id": erasure_id, **counts}
        audit.append(connection, "erase", result.merchant_id, actor, details, now)
