"""How fast the tracking view answers at platform scale (issue 26 point 6, target: 300 ms).

A PostgreSQL warehouse, migrated by the pipeline, gets ``--imports`` imports and ``--requests``
requests generated in SQL (200 merchants, scheduled from 60 days ago to 30 days ahead, one in
three a product request), with the life the mailer reported: statuses, step times, bounce
reasons (a few hundred distinct, some with masked addresses) and ratings; then about
``--events`` rows of ``delivery_events`` that tell it. The rows go in by 1,000,000 through the
rollup's triggers (migration 0007), as loads would; at the end the rollup is compared with a
full count of ``review_requests``. A real ``airflow api-server`` with the plugin then answers
every page and API route of the tracking view ``--repeat`` times after one untimed warm-up
(median and maximum); the CSV export is timed to its first byte and to its end. The queries of
the funnel are run once more under ``EXPLAIN (ANALYZE, BUFFERS)``.

    .venv/bin/python -m benchmarks.bench_tracking --requests 1000000 --events 3000000
    .venv/bin/python -m benchmarks.bench_tracking               # 10M + 30M: 30-60 min
    .venv/bin/python -m benchmarks.bench_tracking --database bench_tracking_10m   # kept

Run from the repository root. Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust), and
about 12 GB of disk at full size. Its database is dropped at the end, unless ``--database``
names one: that one is kept, and filled only when it holds no generated request yet (so that
the timings can be run again without the build).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import Engine, event, text

from benchmarks.bench_ui import check, export, summary
from benchmarks.measure import OUT_DIR, git_state, write_json
from tests.kit import api_server, postgres
from tests.kit.factories import write_merchants

TARGET_MS = 300.0
MERCHANTS = 200
MERCHANT = "bench-042"
IMPORT = "bench00000042"
STEP = 1_000_000
ROLLUP = ("request_counts", "request_count_totals", "request_count_changes")

IMPORTS_SQL = """
INSERT INTO imports (import_id, merchant_id, source, file_name, sha256, size_bytes, template,
    status, total_rows, valid_rows, brand_requests, product_requests, received_at, processed_at)
SELECT 'bench' || lpad(n::text, 8, '0'), 'bench-' || lpad((n % {merchants})::text, 3, '0'),
       'upload', 'orders-' || n || '.csv', md5(n::text) || md5((n + 1)::text), 1000,
       'website_products', 'loaded', 30, 30, 14, 6,
       now() - make_interval(secs => (n::float / {imports}) * 90 * 86400 + 60),
       now() - make_interval(secs => (n::float / {imports}) * 90 * 86400)
FROM generate_series(1, {imports}) AS n
"""

#: Request ``n``: ``off`` seconds from now (the same spread as bench_ui.py's), ``h`` a
#: pseudo-random 0-999 that decides its life. Past requests: 0.5 % cancelled, 0.5 % withdrawn,
#: 4 % not delivered, 1 % only sent, 39 % delivered, 35 % opened, 10 % clicked, 10 % reviewed;
#: those due in the last two hours not yet sent. Future ones: 1 % cancelled, 0.5 % withdrawn.
REQUESTS_SQL = """
INSERT INTO review_requests (import_id, merchant_id, request_type, order_ref, id_product,
    email, firstname, lastname, language, order_date, scheduled_at, status, created_at,
    sent_at, delivered_at, opened_at, clicked_at, reviewed_at, bounced_at, bounce_reason, rating)
SELECT 'bench' || lpad((1 + n % {imports})::text, 8, '0'),
       'bench-' || lpad(((1 + n % {imports}) % {merchants})::text, 3, '0'),
       CASE WHEN n % 3 = 0 THEN 'product' ELSE 'brand' END,
       'ORD-' || n,
       CASE WHEN n % 3 = 0 THEN 'P' || (n % 977) END,
       'customer' || (n % 400000) || '@example.com', 'Firstname', 'Lastname', 'fr',
       (now() - interval '90 days')::date, at, status, now(),
       CASE WHEN sent THEN at + interval '5 minutes' END,
       CASE WHEN step >= 2 THEN at + interval '6 minutes' END,
       CASE WHEN step >= 3 THEN at + interval '2 hours' END,
       CASE WHEN step >= 4 THEN at + interval '125 minutes' END,
       CASE WHEN step = 5 THEN at + interval '1 day' END,
       CASE WHEN status = 'not_delivered' THEN at + interval '6 minutes' END,
       CASE WHEN status = 'not_delivered' THEN (ARRAY[
           '550 5.1.1 <' || chr(97 + (n % 26)::int) || '***@' ||
               (ARRAY['gmail.com', 'yahoo.fr', 'orange.fr', 'outlook.com'])[1 + n % 4] ||
               '>: user unknown',
           '552 5.2.2 mailbox full', '554 5.7.1 message rejected as spam',
           '421 4.7.0 try again later', '550 5.7.26 unauthenticated sender',
           'domain has no MX record', 'connection timed out', '553 5.1.3 invalid address'
       ])[1 + (h * 7 + n) % 8] END,
       CASE WHEN status = 'reviewed' THEN 1 + h % 5 END
FROM (
    SELECT n, at, status, h,
           status IN ('sent', 'not_delivered', 'delivered', 'opened', 'clicked', 'reviewed')
               AS sent,
           CASE status WHEN 'delivered' THEN 2 WHEN 'opened' THEN 3 WHEN 'clicked' THEN 4
               WHEN 'reviewed' THEN 5 ELSE 0 END AS step
    FROM (
        SELECT n, h, now() + make_interval(secs => off) AS at,
               CASE
                   WHEN off > 0 THEN CASE WHEN h < 10 THEN 'cancelled'
                       WHEN h < 15 THEN 'withdrawn' ELSE 'scheduled' END
                   WHEN off > -7200 THEN 'scheduled'
                   WHEN h < 5 THEN 'cancelled' WHEN h < 10 THEN 'withdrawn'
                   WHEN h < 50 THEN 'not_delivered' WHEN h < 60 THEN 'sent'
                   WHEN h < 450 THEN 'delivered' WHEN h < 800 THEN 'opened'
                   WHEN h < 900 THEN 'clicked' ELSE 'reviewed'
               END AS status
        FROM (
            SELECT n, ((n::bigint * 7919) % (90 * 86400)) - 60 * 86400 AS off,
                   (n::bigint * 2654435761) % 1000 AS h
            FROM generate_series({first}, {last}) AS n
        ) AS g
    ) AS s
) AS r
"""

#: The events that tell each request's life: sent, bounced, delivered, ``opens`` opened,
#: clicked, reviewed; ``{opens}`` sets how many opens, so that the total is about --events.
EVENTS_SQL = """
INSERT INTO delivery_events (event_id, request_id, event_type, occurred_at, reason, rating,
    file_id, loaded_at)
SELECT 'ev-' || r.request_id || '-' || e.k, r.request_id, e.kind,
       r.sent_at + make_interval(mins => e.k::int),
       CASE WHEN e.kind = 'bounced' THEN r.bounce_reason END,
       CASE WHEN e.kind = 'reviewed' THEN r.rating END,
       'bench-file-' || r.request_id % 2000, now()
FROM review_requests AS r
CROSS JOIN LATERAL (
    SELECT 'sent' AS kind, 0 AS k
    UNION ALL SELECT 'bounced', 1 WHERE r.status = 'not_delivered'
    UNION ALL SELECT 'delivered', 2 WHERE r.delivered_at IS NOT NULL
    UNION ALL SELECT 'opened', 2 + o FROM generate_series(1, 1 + r.request_id % {opens}) AS o
        WHERE r.opened_at IS NOT NULL
    UNION ALL SELECT 'clicked', 100 WHERE r.clicked_at IS NOT NULL
    UNION ALL SELECT 'reviewed', 101 WHERE r.reviewed_at IS NOT NULL
) AS e
WHERE r.sent_at IS NOT NULL AND r.request_id BETWEEN {first} AND {last}
"""

#: The rollups (with the changes not yet folded) against a full count: rows that differ,
#: both ways, per merchant and for all merchants (0 when both are exact).
DIFFERENCES_SQL = """
WITH counted AS (
    SELECT merchant_id, (scheduled_at AT TIME ZONE 'UTC')::date AS day, request_type, status,
           CASE WHEN status = 'not_delivered' THEN coalesce(bounce_reason, '') ELSE '' END
               AS bounce_reason, count(*) AS requests
    FROM review_requests GROUP BY 1, 2, 3, 4, 5
), rolled AS (
    SELECT merchant_id, day, request_type, status, bounce_reason, sum(requests) AS requests
    FROM (SELECT merchant_id, day, request_type, status, bounce_reason, requests
          FROM request_counts
          UNION ALL SELECT merchant_id, day, request_type, status, bounce_reason, requests
          FROM request_count_changes) AS r
    GROUP BY 1, 2, 3, 4, 5 HAVING sum(requests) <> 0
), counted_totals AS (
    SELECT day, request_type, status, bounce_reason, sum(requests) AS requests
    FROM counted GROUP BY 1, 2, 3, 4
), totals AS (
    SELECT day, request_type, status, bounce_reason, sum(requests) AS requests
    FROM (SELECT day, request_type, status, bounce_reason, requests FROM request_count_totals
          UNION ALL SELECT day, request_type, status, bounce_reason, requests
          FROM request_count_changes) AS t
    GROUP BY 1, 2, 3, 4 HAVING sum(requests) <> 0
)
SELECT (SELECT count(*) FROM (SELECT * FROM counted EXCEPT SELECT * FROM rolled) AS a)
     + (SELECT count(*) FROM (SELECT * FROM rolled EXCEPT SELECT * FROM counted) AS b)
     + (SELECT count(*) FROM (SELECT * FROM counted_totals EXCEPT SELECT * FROM totals) AS c)
     + (SELECT count(*) FROM (SELECT * FROM totals EXCEPT SELECT * FROM counted_totals) AS d)
"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="bench_tracking_"))
    try:
        with warehouse(args.database) as url:
            from review_ingest.store import warehouse as store

            engine = store.engine_for(url)
            store.migrate(engine)
            built = build(engine, url, args)
            plans = explain_funnel(engine)
            server = start_server(root, url)
            try:
                results = measure(server, args.repeat)
            finally:
                server.stop()
            engine.dispose()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    elapsed = time.monotonic() - started
    print_results(results, plans)
    slow = [r["route"] for r in results if r["timed"] and r["median_ms"] > TARGET_MS]
    out = {
        **git_state(),
        "requests": args.requests,
        "events_asked": args.events,
        "repeat": args.repeat,
        "target_ms": TARGET_MS,
        "seconds": round(elapsed, 1),
        "build": built,
        "routes": results,
        "over_target": slow,
        "plans": plans,
    }
    write_json(args.out, out)
    print(f"\n{len(results)} routes in {elapsed:.0f} s; median over {TARGET_MS:.0f} ms: {slow}")
    print(f"results: {args.out}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=30_000_000)
    parser.add_argument("--imports", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=10, help="timed calls of each route")
    parser.add_argument("--database", help="a database to use and keep (filled when empty)")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "results_tracking.json")
    return parser.parse_args(argv)


@contextlib.contextmanager
def warehouse(name: str | None) -> Iterator[str]:
    """A new database dropped at the end; or ``name``, made when missing, kept."""
    server = postgres.server_url()
    if name is None:
        with postgres.new_database(server, "bench_tracking") as url:
            yield url
        return
    with psycopg.connect(postgres.libpq(server), autocommit=True) as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    yield postgres.database_url(server, name) if found else postgres.create_database(server, name)


def build(engine: Engine, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """The generated rows, unless the database holds them; then the rollup checked."""
    built = fill(url, args)
    with engine.connect() as connection:
        started = time.perf_counter()
        differences = connection.scalar(text(DIFFERENCES_SQL))
        built["rollup_check_s"] = round(time.perf_counter() - started, 1)
        built["rollup_differences"] = differences
        tables = ("review_requests", "delivery_events", "request_counts", "request_count_totals")
        for table in tables:
            built[f"{table}_rows"] = connection.scalar(text(f"SELECT count(*) FROM {table}"))
            size = connection.scalar(text(f"SELECT pg_total_relation_size('{table}')"))
            built[f"{table}_mb"] = round(size / 2**20)
    print(f"rollup against a full count: {differences} differing rows", file=sys.stderr)
    if differences:
        raise SystemExit("benchmark: the rollup is not exact")
    return built


def fill(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """The requests when there are none, their events when there are none (by steps of a
    million), then VACUUM ANALYZE; how long each took."""
    timings: dict[str, Any] = {}
    with psycopg.connect(postgres.libpq(url), autocommit=True) as conn:
        if not _count(conn, "review_requests"):
            timings["requests_s"] = fill_requests(conn, args)
        if not _count(conn, "delivery_events"):
            timings["events_s"] = fill_events(conn, args)
        if timings:
            started = time.perf_counter()
            for table in ("imports", "review_requests", "delivery_events", *ROLLUP):
                conn.execute(f"VACUUM ANALYZE {table}")
            timings["vacuum_s"] = round(time.perf_counter() - started, 1)
    return timings


def _count(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]


def fill_requests(conn: psycopg.Connection, args: argparse.Namespace) -> float:
    """The imports and the requests, each million in one statement (and one trigger run)."""
    started = time.perf_counter()
    conn.execute(IMPORTS_SQL.format(imports=args.imports, merchants=MERCHANTS))
    for first in range(1, args.requests + 1, STEP):
        last = min(first + STEP - 1, args.requests)
        conn.execute(
            REQUESTS_SQL.format(first=first, last=last, imports=args.imports, merchants=MERCHANTS)
        )
        print(f"  {last:,} requests ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return round(time.perf_counter() - started, 1)


def fill_events(conn: psycopg.Connection, args: argparse.Namespace) -> float:
    """About ``--events`` events telling the requests' lives, a million requests at a time."""
    started = time.perf_counter()
    opens = opens_for(conn, args.events)
    low, high = conn.execute(
        "SELECT min(request_id), max(request_id) FROM review_requests"
    ).fetchone()  # type: ignore[misc]
    for first in range(low, high + 1, STEP):
        conn.execute(EVENTS_SQL.format(first=first, last=first + STEP - 1, opens=opens))
        done = _count(conn, "delivery_events") if first + STEP > high else None
        print(
            f"  events of requests to {first + STEP - 1:,} ({time.perf_counter() - started:.0f} s)"
            + (f": {done:,} events" if done is not None else ""),
            file=sys.stderr,
        )
    return round(time.perf_counter() - started, 1)


def opens_for(conn: psycopg.Connection, events: int) -> int:
    """How many opens (at most) an opened request gets so that the events are about ``events``:
    the other events are one per step; an opened request gets 1 to ``opens`` opens."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE sent_at IS NOT NULL), "
        "count(*) FILTER (WHERE status = 'not_delivered'), "
        "count(delivered_at), count(opened_at), count(clicked_at), count(reviewed_at) "
        "FROM review_requests"
    ).fetchone()
    fixed = sum(row)  # each step's event, one open included
    opened = row[3]
    extra = max(0, events - fixed)
    # An opened request with request_id % opens = j gets j extra opens: (opens - 1) / 2 on average.
    return max(1, round(2 * extra / opened + 1)) if opened else 1


def explain_funnel(engine: Engine) -> dict[str, str]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of each query the funnel runs, with the parameters it
    sends, for no filter, one merchant and one import."""
    from review_ingest.web import queries

    now = dt.datetime.now(dt.UTC)
    cases = {
        "funnel, no filter": queries.RequestFilters(),
        f"funnel, merchant_id={MERCHANT}": queries.RequestFilters(merchant_id=MERCHANT),
        f"funnel, import_id={IMPORT}": queries.RequestFilters(import_id=IMPORT),
    }
    plans = {}
    for name, filters in cases.items():
        statements: list[tuple[str, Any]] = []

        def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            statements.append((statement, params))  # noqa: B023 (this round's list)

        event.listen(engine, "before_cursor_execute", record)
        try:
            queries.status_counts(engine, filters, now)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        with engine.connect() as connection:
            lines = []
            for statement, params in statements:
                found = connection.exec_driver_sql(
                    f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params
                )
                lines += [statement.replace("\n", " "), *(row[0] for row in found), ""]
        plans[name] = "\n".join(lines)
    return plans


def start_server(root: Path, url: str) -> api_server.UiServer:
    """An api-server with the plugin over the warehouse at ``url``."""
    data_dir = root / "data"
    data_dir.mkdir()
    merchants_file = write_merchants(root / "merchants.yaml", {MERCHANT: "website_products"})
    server = api_server.new_server(root, "postgres", url, data_dir, merchants_file, {})
    server.start()
    return server


def routes() -> list[str]:
    """Every page and API route of the tracking view, with the filters people use."""
    today = dt.datetime.now(dt.UTC).date()
    week = f"scheduled_from={today - dt.timedelta(days=7)}&scheduled_to={today}"
    statuses = ("scheduled", "due", "sent", "delivered", "opened", "clicked", "reviewed",
                "not_delivered", "cancelled", "withdrawn")  # fmt: skip
    r = "/review-ingest"
    return [
        *(f"{r}/api/requests?status={s}" for s in statuses),
        f"{r}/api/requests?merchant_id={MERCHANT}&status=due",
        f"{r}/api/requests?merchant_id={MERCHANT}&status=not_delivered",
        f"{r}/api/requests?status=opened&request_type=product",
        f"{r}/api/requests?status=reviewed&{week}",
        f"{r}/api/requests?import_id={IMPORT}",
        f"{r}/api/requests?status=not_delivered&limit=500&offset=10000",
        f"{r}/api/requests/funnel",
        f"{r}/api/requests/funnel?merchant_id={MERCHANT}",
        f"{r}/api/requests/funnel?merchant_id={MERCHANT}&request_type=product",
        f"{r}/api/requests/funnel?status=due",
        f"{r}/api/requests/funnel?status=not_delivered",
        f"{r}/api/requests/funnel?{week}",
        f"{r}/api/requests/funnel?merchant_id={MERCHANT}&{week}",
        f"{r}/api/requests/funnel?import_id={IMPORT}",
        f"{r}/api/requests/funnel?order_ref=ORD-123456",
        f"{r}/api/requests/funnel?email=Customer4242@Example.com",
        f"{r}/requests",
        f"{r}/requests?status=delivered",
        f"{r}/requests?status=due",
        f"{r}/requests?merchant_id={MERCHANT}",
        f"{r}/requests?merchant_id={MERCHANT}&status=not_delivered",
        f"{r}/requests?{week}",
        f"{r}/requests?import_id={IMPORT}",
        f"{r}/requests?email=customer4242@example.com",
        f"{r}/imports/{IMPORT}",
    ]


def measure(server: api_server.UiServer, repeat: int) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {server.token(api_server.ADMIN)}"}
    results: list[dict[str, Any]] = []
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=300) as client:
        for route in routes():
            check(client.get(route), route)  # warm-up: connections, caches, first migration
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                response = client.get(route)
                times.append((time.perf_counter() - started) * 1000)
                check(response, route)
            results.append(summary(route, times, len(response.content)))
            print(f"  {route}: {statistics.median(times):.0f} ms", file=sys.stderr)
        r = "/review-ingest/api/requests.csv"
        results.append(export(client, f"{r}?merchant_id={MERCHANT}&status=not_delivered"))
        results.append(export(client, f"{r}?import_id={IMPORT}"))
    return results


def print_results(results: list[dict[str, Any]], plans: dict[str, str]) -> None:
    print("\n| route | median ms | max ms | bytes |\n|---|---|---|---|")
    for r in results:
        if r["timed"]:
            print(f"| `{r['route']}` | {r['median_ms']} | {r['max_ms']} | {r['bytes']:,} |")
        else:
            print(
                f"| `{r['route']}` (streamed) | first byte {r['first_byte_ms']} | "
                f"all {r['total_ms']} | {r['rows']:,} rows |"
            )
    for name, plan in plans.items():
        print(f"\n{name}:\n{plan}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
