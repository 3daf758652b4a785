"""Cancelling an import, or some of its orders (contract section 12).

The merchant sent the wrong file, or orders were refunded: every request of the import not yet
due, or only those of the given order references, gets the status ``cancelled``; requests
already due are left as they are. A cancelled request is never sent and no longer proves its
order was imported (``warehouse.proof_conditions``), so a corrected file loads. Single orders
are cancelled only for one of ``ORDER_REASONS``: the platform surveys every customer (NF ISO
20488) and never picks one out for another reason. Each cancellation is counted, done and
recorded in ``cancellations`` in one transaction; a dry run counts and changes nothing.
Cancelling again cancels nothing more, and its counts say so (``already_cancelled``).

A data operation on the warehouse's tables, called by the command line and the review UI alike:
so it lives in ``store``, needing neither the pipeline nor Airflow.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import ColumnElement, Connection, Engine, and_, func, insert, select, update

from review_ingest.errors import UsageError
from review_ingest.store import audit
from review_ingest.store.models import (
    CANCELLED_STATUS,
    WITHDRAWN_STATUS,
    CancellationRow,
    ImportRow,
    ReviewRequestRow,
)
from review_ingest.store.warehouse import IN_CHUNK

log = logging.getLogger(__name__)

#: The only reasons that may cancel single orders.
ORDER_REASONS = ("refunded", "order_cancelled", "test_order", "duplicate_order")
MAX_REASON_LENGTH = 100
MAX_ORDER_REF_LENGTH = 64
#: Statuses a cancellation still stops: scheduled, or withdrawn by an opt-out (sent neither way).
CANCELLABLE_STATUSES = ("scheduled", WITHDRAWN_STATUS)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

Scope = tuple[ColumnElement[bool], ...]


class UnknownImport(UsageError):
    """No import has this id."""


class CancelRefused(UsageError):
    """A reason or order references that may not cancel; ``field`` names which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class CancelResult:
    import_id: str
    merchant_id: str
    reason: str
    #: The order references asked, trimmed, each once; None for the whole import.
    order_refs: list[str] | None
    dry_run: bool
    #: Requests not yet due, now cancelled (in a dry run: that would be).
    cancelled: int
    #: Requests already due, left as they are.
    already_due: int
    #: Requests cancelled before.
    already_cancelled: int
    #: Order references with no request in this import.
    not_found: int

    def as_dict(self) -> dict[str, object]:
        return {"command": "cancel", **asdict(self)}


def cancel(
    engine: Engine,
    import_id: str,
    reason: str,
    order_refs: Sequence[str] | None = None,
    *,
    who: str,
    now: dt.datetime,
    dry_run: bool = False,
) -> CancelResult:
    """Cancel the requests of ``import_id`` not yet due at ``now``, only those of
    ``order_refs`` when given, on behalf of ``who``: see the module's doc.

    Raises CancelRefused or UnknownImport, naming what is wrong; then nothing changes.
    """
    reason = checked_reason(reason, for_orders=order_refs is not None)
    refs = None if order_refs is None else checked_order_refs(order_refs)
    scopes = _scopes(import_id, refs)
    with engine.begin() as connection:
        # Writing first: SQLite takes its write lock before this transaction reads anything.
        done = 0 if dry_run else sum(_cancel(connection, scope, now) for scope in scopes)
        merchant_id = connection.scalar(
            select(ImportRow.merchant_id).where(ImportRow.import_id == import_id)
        )
        if merchant_id is None:
            raise UnknownImport(f"unknown import {import_id!r}")
        total, cancelled, cancellable, found = _tally(connection, scopes, now)
        result = CancelResult(
            import_id,
            merchant_id,
            reason,
            refs,
            dry_run,
            cancelled=cancellable if dry_run else done,
            already_due=total - cancelled - cancellable,
            already_cancelled=cancelled - done,
            not_found=0 if refs is None else len(refs) - found,
        )
        if not dry_run:
            _record(connection, result, who, now)
    log.info(
        "import %s%s: %d request(s) cancelled, %d already due, %d already cancelled",
        import_id,
        " (dry run)" if dry_run else "",
        result.cancelled,
        result.already_due,
        result.already_cancelled,
    )
    return result


def checked_reason(reason: str, *, for_orders: bool) -> str:
    """``reason`` trimmed; CancelRefused when it may not cancel (single orders:
    ``ORDER_REASONS`` only). No e-mail address: the reason is shown on the import's page."""
    reason = reason.strip()
    problem = None
    if not reason:
        problem = "a reason is required"
    elif len(reason) > MAX_REASON_LENGTH:
        problem = f"a reason has at most {MAX_REASON_LENGTH} characters"
    elif _CONTROL.search(reason):
        problem = "a reason holds no control character (a line break, a tab...)"
    elif "@" in reason:
        problem = "a reason holds no e-mail address"
    elif for_orders and reason not in ORDER_REASONS:
        problem = f"this reason is not allowed for single orders: one of {', '.join(ORDER_REASONS)}"
    if problem is not None:
        raise CancelRefused("reason", problem)
    return reason


def checked_order_refs(order_refs: Sequence[str]) -> list[str]:
    """The order references trimmed, each once, in their order; CancelRefused for a bad one."""
    refs = list(dict.fromkeys(ref.strip() for ref in order_refs))
    problem = None
    if not refs:
        problem = "order references, when given, name at least one order"
    elif "" in refs:
        problem = "an order reference is empty"
    elif any(len(ref) > MAX_ORDER_REF_LENGTH for ref in refs):
        problem = f"an order reference has at most {MAX_ORDER_REF_LENGTH} characters"
    elif any(_CONTROL.search(ref) for ref in refs):
        problem = "an order reference holds a control character"
    if problem is not None:
        raise CancelRefused("order_refs", problem)
    return refs


def _scopes(import_id: str, refs: list[str] | None) -> list[Scope]:
    """The requests asked for, as WHERE clauses: the whole import, or its requests of ``refs``
    in chunks under SQLite's limit of bound parameters."""
    of_import = ReviewRequestRow.import_id == import_id
    if refs is None:
        return [(of_import,)]
    return [
        (of_import, ReviewRequestRow.order_ref.in_(refs[start : start + IN_CHUNK]))
        for start in range(0, len(refs), IN_CHUNK)
    ]


def _cancellable(now: dt.datetime) -> ColumnElement[bool]:
    return and_(
        ReviewRequestRow.status.in_(CANCELLABLE_STATUSES), ReviewRequestRow.scheduled_at > now
    )


def _cancel(connection: Connection, scope: Scope, now: dt.datetime) -> int:
    """Cancel the requests of ``scope`` not yet due; how many."""
    query = (
        update(ReviewRequestRow).where(*scope, _cancellable(now)).values(status=CANCELLED_STATUS)
    )
    return connection.execute(query).rowcount


def _tally(
    connection: Connection, scopes: list[Scope], now: dt.datetime
) -> tuple[int, int, int, int]:
    """The requests of ``scopes``: in all, cancelled, still cancellable; and the distinct order
    references among them."""
    rows = [
        connection.execute(
            select(
                func.count(),
                func.count().filter(ReviewRequestRow.status == CANCELLED_STATUS),
                func.count().filter(_cancellable(now)),
                func.count(ReviewRequestRow.order_ref.distinct()),
            ).where(*scope)
        ).one()
        for scope in scopes
    ]
    total, cancelled, cancellable, refs = (sum(column) for column in zip(*rows, strict=True))
    return total, cancelled, cancellable, refs


def _record(connection: Connection, result: CancelResult, who: str, now: dt.datetime) -> None:
    """The ``cancellations`` row and its entry in the audit trail (the number of order
    references only: the row lists them)."""
    order_refs = None if result.order_refs is None else json.dumps(result.order_refs)
    cancellation_id = connection.execute(
        insert(CancellationRow)
        .values(
            cancelled_at=now,
            cancelled_by=who,
            import_id=result.import_id,
            merchant_id=result.merchant_id,
            reason=result.reason,
            order_refs=order_refs,
            cancelled=result.cancelled,
            already_due=result.already_due,
            already_cancelled=result.already_cancelled,
            not_found=result.not_found,
        )
        .returning(CancellationRow.cancellation_id)
    ).scalar_one()
    details = {
        "cancellation_id": cancellation_id,
        "merchant_id": result.merchant_id,
        "reason": result.reason,
        "order_refs": None if result.order_refs is None else len(result.order_refs),
        "cancelled": result.cancelled,
        "already_due": result.already_due,
        "already_cancelled": result.already_cancelled,
        "not_found": result.not_found,
    }
    audit.append(connection, "cancel", result.import_id, who, details, now)
