"""``/api/requests.csv``: every matching request as CSV, streamed chunk by chunk.

``;`` separator and a header line, like the reports' ``errors.csv``; the columns of
``/api/requests``, e-mails masked, no name. The delivery columns (section 13) come after those
of section 10, so that readers of the first columns by position still work. A value that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage
return) is prefixed with ``'``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from review_ingest.web.views import iso_utc, request_item

HEADER = (
    "request_id",
    "import_id",
    "merchant_id",
    "request_type",
    "order_ref",
    "id_product",
    "email_masked",
    "language",
    "scheduled_at",
    "status",
    "sent_at",
    "delivered_at",
    "opened_at",
    "clicked_at",
    "reviewed_at",
    "bounced_at",
    "bounce_reason",
    "rating",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = iso_utc(value) if isinstance(value, dt.datetime) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def request_lines(chunks: Iterable[Sequence[Mapping[str, Any]]], now: dt.datetime) -> Iterator[str]:
    """The header, then one string per chunk of rows: memory holds one chunk at a time."""
    yield ";".join(HEADER) + "\n"
    for chunk in chunks:
        out = io.StringIO()
        writer = csv.writer(out, delimiter=";", lineterminator="\n")
        for row in chunk:
            item = request_item(row, now).model_dump()
            writer.writerow([_cell(item[column]) for column in HEADER])
        yield out.getvalue()
