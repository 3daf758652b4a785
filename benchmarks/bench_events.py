"""Delivery events (issue 26, point 4): 1,000,000 events in 10 files through the loader,
against COPYing the same bytes into a bare table.

A throw-away PostgreSQL database, migrated by the pipeline, gets a generated warehouse: the
requests the events name, due over 30 days in the order they were loaded, as imports make
them (SQL ``generate_series``). Each
request's life is drawn at random (seeded): sent, then delivered for most (bounced or failed
for a few), opened, clicked, reviewed with a rating for some, unsubscribed or complained for a
few; the events are sorted by time and cut into ``--files`` JSON Lines files, as the mailer
would send them as days go by. Then, ``--repeat`` rounds:

- the floor: each file's bytes COPYed into a table of one text column, one transaction each;
- the loader: each file read and parsed by ``core.events``, loaded by ``store.events
  .load_events`` per chunk of ``--chunk`` events, one transaction per file; the warehouse is
  put back as before the round afterwards (events, suppressions, statuses, step times).

``--chunks 2000,5000,10000`` times the loader at each chunk size instead of one. The parse
alone (no database) is timed too, to show where the time goes.

    .venv/bin/python -m benchmarks.bench_events                    # ~4 min
    .venv/bin/python -m benchmarks.bench_events --repeat 1 --events 100000 --files 2

Run from the repository root. Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust); its
database is dropped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from benchmarks.measure import OUT_DIR, Ratio, print_verdicts, write_json
from tests.kit import postgres

TARGET_RATIO = 5.0
MERCHANTS = 50
#: The requests fall due over these 30 days, in the order they were loaded (request_id).
SPAN_SECONDS = 30 * 86400
#: About 2.6 events per request with the mix below.
EVENTS_PER_REQUEST = 2.6

FILL_SQL = """
INSERT INTO imports (import_id, merchant_id, source, file_name, sha256, size_bytes, template,
    status, received_at, processed_at)
VALUES ('bench-events', 'bench-000', 'upload', 'fill.csv', repeat('0', 64), 1, 'website',
        'loaded', now(), now());

INSERT INTO review_requests (request_id, import_id, merchant_id, request_type, order_ref,
    email, email_sha256, firstname, lastname, language, order_date, scheduled_at, status,
    created_at)
SELECT n, 'bench-events', 'bench-' || lpad(mod(n, {merchants})::text, 3, '0'), 'brand',
       'ORD-' || n, 'customer' || mod(n, {customers}) || '@example.com',
       encode(sha256(convert_to('customer' || mod(n, {customers}) || '@example.com', 'UTF8')),
              'hex'),
       'Firstname', 'Lastname', 'fr', (timestamptz '{start}')::date,
       timestamptz '{start}' + make_interval(secs => n * {spacing}),
       'scheduled', now()
FROM generate_series(1, {requests}) AS n;
"""

RESET_SQL = """
TRUNCATE delivery_events, event_files, suppressions;
UPDATE review_requests SET status = 'scheduled', sent_at = NULL, delivered_at = NULL,
    opened_at = NULL, clicked_at = NULL, reviewed_at = NULL, bounced_at = NULL,
    bounce_reason = NULL, rating = NULL
WHERE status <> 'scheduled' OR sent_at IS NOT NULL OR bounced_at IS NOT NULL;
"""


def fill(engine: Engine, requests: int, start: dt.datetime) -> float:
    """``requests`` brand requests, due between ``start`` and 30 days later."""
    began = time.perf_counter()
    sql = FILL_SQL.format(
        merchants=MERCHANTS,
        customers=max(requests // 3, 1),
        requests=requests,
        spacing=SPAN_SECONDS / requests,
        start=start.isoformat(),
    )
    with engine.begin() as connection:
        connection.exec_driver_sql(sql)
    vacuum(engine)
    return time.perf_counter() - began


def vacuum(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in ("review_requests", "delivery_events", "suppressions"):
            connection.exec_driver_sql(f"VACUUM ANALYZE {table}")


def life(request_id: int, due: dt.datetime, rng: random.Random) -> list[dict[str, Any]]:
    """One request's events (each with its time as ``_at``): the mailer's realistic mix."""
    at = due + dt.timedelta(minutes=rng.uniform(1, 30))
    events = [_event(request_id, "sent", at, rng)]
    fate = rng.random()
    if fate < 0.03:
        reason = f"550 5.1.1 <customer{request_id}@example.com>: Recipient address rejected"
        events.append(_event(request_id, "bounced", at, rng, reason=reason))
        return events
    if fate < 0.04:
        events.append(_event(request_id, "failed", at, rng, reason="421 4.7.0 try again later"))
        return events
    at += dt.timedelta(seconds=rng.uniform(1, 60))
    events.append(_event(request_id, "delivered", at, rng))
    if rng.random() < 0.45:
        at += dt.timedelta(hours=rng.uniform(0, 48))
        events.append(_event(request_id, "opened", at, rng))
        if rng.random() < 0.35:
            at += dt.timedelta(minutes=rng.uniform(0, 30))
            events.append(_event(request_id, "clicked", at, rng))
            if rng.random() < 0.5:
                at += dt.timedelta(minutes=rng.uniform(1, 60))
                events.append(_event(request_id, "reviewed", at, rng, rating=rng.randint(1, 5)))
        elif rng.random() < 0.03:
            at += dt.timedelta(minutes=rng.uniform(0, 10))
            kind = "unsubscribed" if rng.random() < 0.8 else "complained"
            events.append(_event(request_id, kind, at, rng))
    return events


def _event(
    request_id: int,
    kind: str,
    at: dt.datetime,
    rng: random.Random,
    reason: str | None = None,
    rating: int | None = None,
) -> dict[str, Any]:
    offset = dt.timezone(dt.timedelta(hours=1)) if rng.random() < 0.5 else dt.UTC
    event: dict[str, Any] = {
        "_at": at,
        "event_id": f"{rng.getrandbits(128):032x}",
        "request_id": str(request_id),
        "type": kind,
        "at": at.astimezone(offset).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    if reason is not None:
        event["reason"] = reason
    if rating is not None:
        event["rating"] = rating
    return event


def write_files(folder: Path, events: int, files: int, start: dt.datetime) -> tuple[int, int]:
    """About ``events`` events of the generated requests in ``files`` files, in time order;
    the number of requests they cover and of events written."""
    rng = random.Random(26)
    requests = int(events / EVENTS_PER_REQUEST)
    lines: list[tuple[dt.datetime, bytes]] = []
    for request_id in range(1, requests + 1):
        due = start + dt.timedelta(seconds=request_id * SPAN_SECONDS / requests)
        for happened in life(request_id, due, rng):
            at = happened.pop("_at")
            lines.append((at, json.dumps(happened).encode() + b"\n"))
    lines = lines[:events]
    lines.sort(key=lambda item: item[0])
    per_file = -(-len(lines) // files)
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(files):
        part = lines[number * per_file : (number + 1) * per_file]
        (folder / f"events-{number:02}.jsonl").write_bytes(b"".join(line for _, line in part))
    return requests, len(lines)


def copy_floor(engine: Engine, paths: list[Path]) -> float:
    """Each file's bytes COPYed into ``bare_lines`` (one text column), one transaction each."""
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS bare_lines")
        connection.exec_driver_sql("CREATE TABLE bare_lines (line text)")
    began = time.perf_counter()
    for path in paths:
        with engine.begin() as connection:
            driver = connection.connection.driver_connection
            with (
                path.open("rb") as stream,
                driver.cursor() as cursor,
                cursor.copy("COPY bare_lines (line) FROM STDIN") as copy,
            ):
                while block := stream.read(1 << 20):
                    copy.write(block)
    seconds = time.perf_counter() - began
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE bare_lines")
    return seconds


#: The loader's statements, named by what they start with, for the breakdown.
STATEMENTS = {
    "WITH known": "insert new events (delivery_events, new_events, counts)",
    "UPDATE review_requests SET status=CASE": "update requests (steps, status, reason, rating)",
    "INSERT INTO suppressions": "opt-outs",
    "UPDATE review_requests SET status=": "withdraw",
}


@contextmanager
def statement_times(engine: Engine) -> Iterator[dict[str, float]]:
    """Seconds spent in each kind of the loader's statements (``STATEMENTS``; the rest as
    ``other statements``) while the block runs; COPY goes to the driver and is not in it."""
    spent: dict[str, float] = {}

    def before(conn: Any, *_: Any) -> None:
        conn.info["bench_began"] = time.perf_counter()

    def after(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        kind = next((k for k in STATEMENTS if statement.startswith(k)), "other statements")
        name = STATEMENTS.get(kind, kind)
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - conn.info["bench_began"]

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield spent
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def load(engine: Engine, paths: list[Path], chunk: int) -> tuple[float, dict[str, Any]]:
    """Each file read, parsed and loaded ``chunk`` events at a time, one transaction per
    file; the time and the total counts."""
    from review_ingest.core.events import LineError, parse_line, read_lines
    from review_ingest.store import events

    total = events.EventCounts()
    errors = 0
    now = dt.datetime.now(dt.UTC)
    began = time.perf_counter()
    for number, path in enumerate(paths):
        with engine.begin() as connection, path.open("rb") as stream:
            batch: list[Any] = []
            for line, raw in read_lines(stream):
                parsed = parse_line(line, raw)
                if isinstance(parsed, LineError):
                    errors += 1
                    continue
                batch.append(parsed)
                if len(batch) == chunk:
                    total.merge(events.load_events(connection, f"bench-{number}", batch, now))
                    batch = []
            if batch:
                total.merge(events.load_events(connection, f"bench-{number}", batch, now))
    seconds = time.perf_counter() - began
    return seconds, {**total.__dict__, "error_lines": errors}


def parse_only(paths: list[Path]) -> float:
    """Reading and parsing every file, no database: the loader's share in Python."""
    from review_ingest.core.events import parse_line, read_lines

    began = time.perf_counter()
    for path in paths:
        with path.open("rb") as stream:
            for number, raw in read_lines(stream):
                parse_line(number, raw)
    return time.perf_counter() - began


def reset(engine: Engine) -> None:
    """The warehouse as before a round: no event, no opt-out, every request scheduled."""
    with engine.begin() as connection:
        connection.exec_driver_sql(RESET_SQL)
    vacuum(engine)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from review_ingest.store import warehouse

    chunks = [int(c) for c in args.chunks.split(",")] if args.chunks else [args.chunk]
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=32)
    tmp = Path(tempfile.mkdtemp(prefix="bench_events_"))
    result: dict[str, Any] = {"floor_s": [], "load_s": {str(c): [] for c in chunks}}
    try:
        requests, written = write_files(tmp / "events", args.events, args.files, start)
        paths = sorted((tmp / "events").glob("*.jsonl"))
        result |= {
            "events": written,
            "files": len(paths),
            "requests": requests,
            "mb": round(sum(p.stat().st_size for p in paths) / 1e6, 1),
        }
        print(f"{written:,} events of {requests:,} requests, {result['mb']} MB", flush=True)
        result["parse_s"] = round(parse_only(paths), 3)
        print(f"  parse only: {result['parse_s']:.2f} s", flush=True)
        with postgres.new_database(postgres.server_url(), prefix="bench_events") as url:
            engine = warehouse.engine_for(url)
            warehouse.migrate(engine)
            result["fill_s"] = round(fill(engine, requests, start), 1)
            for round_number in range(args.repeat):
                for chunk in chunks:
                    floor = copy_floor(engine, paths)
                    with statement_times(engine) as spent:
                        seconds, counts = load(engine, paths, chunk)
                    reset(engine)
                    spent["the rest: parsing, staging COPY, Python"] = seconds - sum(spent.values())
                    result.setdefault("breakdown_s", {}).setdefault(str(chunk), []).append(
                        {name: round(value, 2) for name, value in spent.items()}
                    )
                    result["floor_s"].append(floor)
                    result["load_s"][str(chunk)].append(seconds)
                    result["counts"] = counts
                    print(
                        f"  round {round_number + 1}, chunk {chunk:,}: COPY {floor:.2f} s, "
                        f"loader {seconds:.2f} s ({seconds / floor:.2f}x)",
                        flush=True,
                    )
            engine.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def verdicts(result: dict[str, Any]) -> list[Ratio]:
    floor = statistics.median(result["floor_s"])
    return [
        Ratio(
            f"loader / COPY floor, chunk {chunk} (x)",
            statistics.median(runs) / floor,
            TARGET_RATIO,
        )
        for chunk, runs in result["load_s"].items()
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2, help="rounds (medians)")
    parser.add_argument("--chunk", type=int, default=None, help="events per load_events call")
    parser.add_argument("--chunks", default="", help="several chunk sizes, comma-separated")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "results_events.json")
    args = parser.parse_args(argv)
    if args.chunk is None:
        from review_ingest.store.events import CHUNK_EVENTS

        args.chunk = CHUNK_EVENTS
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    result = run(args)
    found = verdicts(result)
    print(f"\nfloor (COPY of the bytes) median: {statistics.median(result['floor_s']):.2f} s")
    for chunk, runs in result["load_s"].items():
        print(f"loader, chunk {chunk}: median {statistics.median(runs):.2f} s, runs {runs}")
    print(f"counts: {result['counts']}")
    for chunk, rounds in result["breakdown_s"].items():
        print(f"where the time went, chunk {chunk} (median of the rounds):")
        for name in rounds[0]:
            print(f"  {statistics.median(r.get(name, 0.0) for r in rounds):8.2f} s  {name}")
    print_verdicts(found)
    write_json(args.out, {**result, "ratios": {r.name: r.as_dict() for r in found}})
    print(f"\nresults: {args.out}\nbench_events took {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
