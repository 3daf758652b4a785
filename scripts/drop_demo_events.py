"""The demo's delivery events: a mailer's event file for some of the requests the demo just
imported (contract section 13), dropped in ``<data>/events/incoming/``; then its report.

``python scripts/drop_demo_events.py`` writes the file and prints its path (the rest goes to
stderr); ``python scripts/drop_demo_events.py --report PATH`` prints what a report says.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from review_ingest import settings
from review_ingest.store import warehouse
from review_ingest.store.models import ImportRow, ReviewRequestRow

DEMO_MERCHANTS = ("demo-website", "demo-store", "demo-products", "demo-store-products")
PARIS = ZoneInfo("Europe/Paris")
#: Each picked request's life, minutes after it was sent. Two delivered, one opened and
#: reviewed, one bounced, one unsubscribed (its address opted out for that merchant).
LIVES: tuple[tuple[tuple[str, int, dict[str, object]], ...], ...] = (
    (("sent", 0, {}), ("delivered", 1, {})),
    (("sent", 0, {}), ("delivered", 2, {})),
    (
        ("sent", 0, {}),
        ("delivered", 1, {}),
        ("opened", 25, {}),
        ("clicked", 26, {}),
        ("reviewed", 31, {"rating": 5}),
    ),
    (("sent", 0, {}), ("bounced", 1, {"reason": "550 5.1.1 mailbox unavailable"})),
    (("sent", 0, {}), ("delivered", 1, {}), ("unsubscribed", 40, {})),
)


def demo_requests(url: str) -> list[int]:
    """The scheduled brand requests of each demo merchant's latest loaded import."""
    engine = warehouse.engine_for(url)
    latest = (
        select(ImportRow.import_id)
        .where(ImportRow.merchant_id == merchant_id, ImportRow.status == "loaded")
        .order_by(ImportRow.processed_at.desc())
        .limit(1)
        .scalar_subquery()
        for merchant_id in DEMO_MERCHANTS
    )
    query = (
        select(ReviewRequestRow.request_id)
        .where(
            ReviewRequestRow.import_id.in_(list(latest)),
            ReviewRequestRow.request_type == "brand",
            ReviewRequestRow.status == "scheduled",
        )
        .order_by(ReviewRequestRow.request_id)
    )
    with engine.connect() as connection:
        return list(connection.scalars(query))


def event_lines(request_ids: list[int], stamp: str, sent: dt.datetime) -> Iterator[str]:
    """One JSON line per event of each request's life, times in Paris (with their offset)."""
    for number, (request_id, life) in enumerate(zip(request_ids, LIVES, strict=False)):
        for step, (event_type, minutes, extra) in enumerate(life):
            at = sent + dt.timedelta(minutes=minutes)
            event = {
                "event_id": f"demo-{stamp}-{number}-{step}",
                "request_id": str(request_id),
                "type": event_type,
                "at": at.astimezone(PARIS).isoformat(timespec="seconds"),
                **extra,
            }
            yield json.dumps(event)


def drop() -> Path:
    """Write the event file as a mailer would (a ``.part`` renamed when complete)."""
    request_ids = demo_requests(settings.warehouse_url())
    if len(request_ids) < len(LIVES):
        raise SystemExit(f"demo: {len(request_ids)} scheduled demo request(s), need {len(LIVES)}")
    now = dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y%m%dT%H%M%S")
    incoming = settings.data_dir() / "events" / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    target = incoming / f"events-{stamp}.jsonl"
    partial = target.with_name(target.name + ".part")
    lines = list(event_lines(request_ids, stamp, now - dt.timedelta(hours=1)))
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.rename(partial, target)
    picked = ", ".join(str(r) for r in request_ids[: len(LIVES)])
    print(f"demo: dropped {target} ({len(lines)} events for requests {picked})", file=sys.stderr)
    return target


def show_report(path: Path) -> None:
    report = json.loads(path.read_text(encoding="utf-8"))
    by_type = ", ".join(f"{n} {t}" for t, n in report["by_type"].items())
    print(
        f"demo: events file {report['file_name']}: {report['status']}, {report['loaded']} "
        f"event(s) loaded ({by_type}), {report['skipped_duplicates']} duplicate(s), "
        f"{report['unknown_request']} unknown request(s), {report['opted_out']} address(es) "
        f"opted out, {report['error_lines']} line(s) in error"
    )
    print(f"demo: events report: {path}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--report"]:
        show_report(Path(sys.argv[2]))
    else:
        print(drop())
