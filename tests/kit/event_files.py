"""Delivery event files as the mailer leaves them (contract section 13), the requests they are
about, and what the tests read back: for the event tests, the fault tests and the benchmark."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from tests.kit.factories import drop
from tests.kit.warehouse import load_brand_requests, query

#: When the events of the files happened, with an offset as the contract wants.
AT = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
MB = 1024 * 1024


def event(
    event_id: str, request_id: int | str, type_: str, minutes: int = 0, **extra: Any
) -> dict[str, Any]:
    """One event, ``minutes`` after ``AT``."""
    at = (AT + dt.timedelta(minutes=minutes)).isoformat()
    return {"event_id": event_id, "request_id": str(request_id), "type": type_, "at": at, **extra}


def jsonl(lines: Iterable[dict[str, Any] | str | bytes]) -> bytes:
    """JSON Lines, each line ended: an event as JSON, a str or bytes as it is (bad lines)."""
    out = bytearray()
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line)
        out += line if isinstance(line, bytes) else line.encode("utf-8")
        out += b"\n"
    return bytes(out)


def drop_events(data: Path, name: str, content: bytes, age_seconds: float = 600) -> Path:
    """An event file in ``<data>/events/incoming/``, older than the minimum age unless told."""
    return drop(data / "events" / "incoming", name, content, age_seconds=age_seconds)


def seed_requests(
    engine: Engine, url: str, merchant_id: str, refs: list[str], email: str
) -> dict[str, int]:
    """Scheduled brand requests (due in ten days) for ``refs``; their ids by order ref."""
    scheduled = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=10)
    load_brand_requests(engine, merchant_id, refs, scheduled, email=email)
    rows = query(
        url,
        "SELECT order_ref, request_id FROM review_requests WHERE merchant_id = :m",
        m=merchant_id,
    )
    return {ref: request_id for ref, request_id in rows if ref in refs}


def statuses(url: str, request_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(request_ids)
    rows = query(url, "SELECT request_id, status FROM review_requests")
    return {request_id: status for request_id, status in rows if request_id in ids}


def events_loaded(url: str) -> list[str]:
    """Every loaded event id, sorted (a repeated one would show twice)."""
    return sorted(r[0] for r in query(url, "SELECT event_id FROM delivery_events"))


def read_report(data: Path, name: str) -> dict[str, Any]:
    return json.loads((data / "events" / "reports" / f"{name}.json").read_text(encoding="utf-8"))


def write_garbage(path: Path, size: int = 100 * MB, long_line: int = 2 * MB, seed: int = 26) -> int:
    """``size`` random bytes, written a megabyte at a time: first a ``long_line`` without a
    newline (over any line cap), then bytes whose lines are neither UTF-8 nor JSON. Returns the
    number of lines."""
    rng = random.Random(seed)
    lines, written, block = 0, 0, b""
    with path.open("wb") as out:
        while written < size:
            block = rng.randbytes(min(MB, size - written))
            if written < long_line:
                block = block.replace(b"\n", b"x")
            lines += block.count(b"\n")
            out.write(block)
            written += len(block)
    return lines + (0 if block.endswith(b"\n") else 1)
