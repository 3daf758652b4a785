"""Opt-out (contract section 11): people who asked not to be contacted, kept as hashes.

``suppress`` adds a person to the list (for one merchant or every merchant) and withdraws that
person's requests that are not yet due, which get the status ``withdrawn``: nothing more will be
sent to them. A later file's valid rows for a suppressed address create no request
(``pipeline``); they are counted in ``suppressed_rows``. ``unsuppress`` removes the entry; requests
withdrawn before stay withdrawn. Only these commands change the list: a file never does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import asdict, dataclass

from sqlalchemy import Connection, Engine, Select, delete, func, or_, select, update

from review_ingest.privacy import addresses
from review_ingest.store import audit, warehouse
from review_ingest.store.models import WITHDRAWN_STATUS, ReviewRequestRow, SuppressionRow


@dataclass(frozen=True)
class SuppressResult:
    merchant_id: str | None
    #: False when the address was already on the list for that scope.
    added: bool
    #: Requests not yet due that were withdrawn (status ``withdrawn``).
    requests_withdrawn: int

    def as_dict(self) -> dict[str, object]:
        return {"command": "suppress", **asdict(self)}


@dataclass(frozen=True)
class UnsuppressResult:
    merchant_id: str | None
    removed: int
    #: Still on the list for every merchant after a per-merchant ``unsuppress``.
    still_suppressed: bool

    def as_dict(self) -> dict[str, object]:
        return {"command": "unsuppress", **asdict(self)}


def suppress(
    engine: Engine,
    address: str,
    merchant_id: str | None,
    now: dt.datetime,
    *,
    actor: str | None = None,
) -> SuppressResult:
    """Put ``address`` (already ``addresses.parse``d) on the list, for one merchant or all, on
    behalf of ``actor`` (None: ``audit.process_actor()``)."""
    digest = addresses.address_hash(address)
    with engine.begin() as connection:
        present = connection.scalar(_entry(digest, merchant_id))
        if present is None:
            connection.execute(
                SuppressionRow.__table__.insert().values(
                    email_sha256=digest, merchant_id=merchant_id, created_at=now
                )
            )
        withdraw = (
            update(ReviewRequestRow)
            .where(
                func.lower(ReviewRequestRow.email) == address,
                ReviewRequestRow.status == "scheduled",
                ReviewRequestRow.scheduled_at > now,
            )
            .values(status=WITHDRAWN_STATUS)
        )
        if merchant_id is not None:
            withdraw = withdraw.where(ReviewRequestRow.merchant_id == merchant_id)
        withdrawn = connection.execute(withdraw).rowcount
        result = SuppressResult(merchant_id, present is None, withdrawn)
        _audit(connection, "suppress", merchant_id, result.as_dict(), actor, now)
    return result


def unsuppress(
    engine: Engine,
    address: str,
    merchant_id: str | None,
    now: dt.datetime | None = None,
    *,
    actor: str | None = None,
) -> UnsuppressResult:
    """Take ``address`` off the list: for one merchant, or everywhere when ``merchant_id`` is
    None (every entry of that address, the per-merchant ones included)."""
    digest = addresses.address_hash(address)
    with engine.begin() as connection:
        query = delete(SuppressionRow).where(SuppressionRow.email_sha256 == digest)
        if merchant_id is not None:
            query = query.where(SuppressionRow.merchant_id == merchant_id)
        removed = connection.execute(query).rowcount
        everywhere = connection.scalar(_entry(digest, None)) is not None
        result = UnsuppressResult(merchant_id, removed, everywhere)
        when = now or dt.datetime.now(dt.UTC)
        _audit(connection, "unsuppress", merchant_id, result.as_dict(), actor, when)
    return result


def _audit(
    connection: Connection,
    action: str,
    merchant_id: str | None,
    counts: dict[str, object],
    actor: str | None,
    now: dt.datetime,
) -> None:
    """The change's audit entry, in its transaction: scope and counts, never the address nor
    its hash (the log is kept for ever; ``suppressions`` holds the hash while it applies)."""
    details = {key: value for key, value in counts.items() if key != "command"}
    who = actor or audit.process_actor()
    audit.append(connection, action, merchant_id, who, details, now)


def suppressed_hashes(engine: Engine, merchant_id: str, hashes: Collection[str]) -> set[str]:
    """Those of ``hashes`` on the list for ``merchant_id`` or for every merchant."""
    scope = or_(SuppressionRow.merchant_id.is_(None), SuppressionRow.merchant_id == merchant_id)
    return warehouse.found(engine, SuppressionRow.email_sha256, hashes, scope)


def _entry(digest: str, merchant_id: str | None) -> Select[tuple[int]]:
    scope = (
        SuppressionRow.merchant_id.is_(None)
        if merchant_id is None
        else SuppressionRow.merchant_id == merchant_id
    )
    return select(SuppressionRow.suppression_id).where(SuppressionRow.email_sha256 == digest, scope)
