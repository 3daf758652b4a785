"""The ``outbox`` table: every e-mail is written once per fact (its ``dedupe_key``), in the
transaction of what it tells when there is one, and stays until an SMTP server accepted it.

A sender claims a due message before sending it (``claim``: attempts + 1, and no other sender
takes it for ``CLAIM_SECONDS``), then marks it sent right after the server's answer, or failed
with its error and the time of its next attempt (``retry_delay``: 5 minutes, doubling, at most
an hour; never given up). Every function takes ``now``: the clock is the caller's.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Engine, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from review_ingest.notify.messages import Message
from review_ingest.store.models import OutboxRow

#: A claimed message is not taken by another sender for this long (a send takes seconds).
CLAIM_SECONDS = 600
FIRST_RETRY = dt.timedelta(minutes=5)
LONGEST_RETRY = dt.timedelta(hours=1)
#: Messages one flush takes at most; the next flush takes the others.
FLUSH_LIMIT = 200


@dataclass(frozen=True)
class Pending:
    """A message not sent yet, as read from the outbox."""

    message_id: int
    dedupe_key: str
    kind: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    attachment_name: str | None
    attachment: str | None
    attempts: int


def enqueue(connection: Connection, message: Message, now: dt.datetime) -> bool:
    """Write ``message`` in the caller's transaction unless its fact was told before (same
    ``dedupe_key``); whether it was written."""
    values = {
        "dedupe_key": message.dedupe_key,
        "kind": message.kind,
        "recipients": json.dumps(list(message.recipients)),
        "subject": message.subject,
        "body": message.body,
        "attachment_name": message.attachment_name,
        "attachment": message.attachment,
        "created_at": now,
        "attempts": 0,
        "next_attempt_at": now,
    }
    dialect = connection.dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        statement = (
            dialect_insert(OutboxRow)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(OutboxRow.message_id)
        )
        return connection.execute(statement).first() is not None
    try:
        with connection.begin_nested():
            connection.execute(insert(OutboxRow).values(**values))
    except IntegrityError:
        return False
    return True


def enqueue_one(engine: Engine, message: Message, now: dt.datetime) -> bool:
    """``enqueue`` in a transaction of its own."""
    with engine.begin() as connection:
        return enqueue(connection, message, now)


def pending(engine: Engine, now: dt.datetime, limit: int = FLUSH_LIMIT) -> list[Pending]:
    """The messages not sent whose next attempt is due at ``now``, oldest first."""
    query = (
        select(OutboxRow.__table__)
        .where(OutboxRow.sent_at.is_(None), _due(now))
        .order_by(OutboxRow.message_id)
        .limit(limit)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        Pending(
            row.message_id,
            row.dedupe_key,
            row.kind,
            tuple(json.loads(row.recipients)),
            row.subject,
            row.body,
            row.attachment_name,
            row.attachment,
            row.attempts,
        )
        for row in rows
    ]


def _due(now: dt.datetime) -> ColumnElement[bool]:
    return or_(OutboxRow.next_attempt_at.is_(None), OutboxRow.next_attempt_at <= now)


def claim(engine: Engine, message: Pending, now: dt.datetime) -> bool:
    """Take ``message`` for one attempt, if it is still unsent and due (another sender may
    have taken it since it was read): its attempts + 1, held for ``CLAIM_SECONDS``."""
    statement = (
        update(OutboxRow)
        .where(OutboxRow.message_id == message.message_id, OutboxRow.sent_at.is_(None), _due(now))
        .values(
            attempts=OutboxRow.attempts + 1,
            next_attempt_at=now + dt.timedelta(seconds=CLAIM_SECONDS),
        )
    )
    with engine.begin() as connection:
        return connection.execute(statement).rowcount == 1


def mark_sent(engine: Engine, message: Pending, now: dt.datetime) -> None:
    """The server accepted ``message``: it is never sent again."""
    statement = (
        update(OutboxRow)
        .where(OutboxRow.message_id == message.message_id, OutboxRow.sent_at.is_(None))
        .values(sent_at=now, next_attempt_at=None)
    )
    with engine.begin() as connection:
        connection.execute(statement)


def mark_failed(engine: Engine, message: Pending, error: str, now: dt.datetime) -> dt.datetime:
    """An attempt of ``message`` (claimed: its attempts already counted) failed: its error is
    kept and its next attempt waits ``retry_delay``; that time is returned."""
    attempts = message.attempts + 1
    next_attempt = now + retry_delay(attempts)
    statement = (
        update(OutboxRow)
        .where(OutboxRow.message_id == message.message_id, OutboxRow.sent_at.is_(None))
        .values(last_error=error[:2000], next_attempt_at=next_attempt)
    )
    with engine.begin() as connection:
        connection.execute(statement)
    return next_attempt


def retry_delay(attempts: int) -> dt.timedelta:
    """After the ``attempts``-th failed attempt: 5 minutes, then 10, 20, 40, then every hour."""
    return min(FIRST_RETRY * 2 ** min(max(attempts - 1, 0), 8), LONGEST_RETRY)


def unsent(engine: Engine) -> int:
    """How many messages wait, due or not."""
    query = select(func.count()).select_from(OutboxRow).where(OutboxRow.sent_at.is_(None))
    with engine.connect() as connection:
        return connection.scalar(query) or 0
