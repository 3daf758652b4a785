"""The mailer's work list (contract section 13): what to send now, read from the view
``requests_to_send`` (due, still ``scheduled``, an address that is there and has not opted out).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from review_ingest.store.models import REQUESTS_TO_SEND

#: Requests handed out per call unless asked otherwise.
DEFAULT_LIMIT = 1000


def due_requests(engine: Engine, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
    """Up to ``limit`` requests to send, the longest due first, as dicts of the view's columns
    (the address and names included: the mailer needs them, nothing else should log them)."""
    view = REQUESTS_TO_SEND
    query = select(view).order_by(view.c.scheduled_at, view.c.request_id).limit(limit)
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]
