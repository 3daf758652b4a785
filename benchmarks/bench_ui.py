"""How fast the review UI answers on a warehouse at platform scale (issue 7, target: 300 ms).

A real ``airflow api-server`` (the UI tests' server, ``tests/kit/api_server.py``:
SimpleAuthManager, the plugin, a migrated SQLite metadata database) serves a PostgreSQL
warehouse holding the real imports of the UI tests (sample files through the real pipeline, with
their reports and Data Docs) plus ``--imports`` imports and ``--requests`` requests generated in
SQL. Every page and API route is then asked ``--repeat`` times over HTTP with a real token,
after one untimed warm-up; the CSV export is timed to its first byte and to its end. Prints a
table and writes JSON.

    .venv/bin/python -m benchmarks.bench_ui                      # 1,000,000 requests: ~3 min
    .venv/bin/python -m benchmarks.bench_ui --requests 100000 --imports 5000 --repeat 5

Run from the repository root. Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust:
scripts/ensure_postgres.sh); the database it creates is dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from benchmarks.measure import OUT_DIR, write_json
from tests.kit import api_server, postgres

PG_SERVER = os.environ.get("BENCH_PG_URL") or postgres.server_url()
TARGET_MS = 300.0
MERCHANTS = 200

#: The generated rows: spread over 200 merchants, 90 days of imports, requests scheduled from
#: 60 days ago to 30 days ahead; one in 25 imports rejected, one in 3 requests a product one.
#: Then VACUUM ANALYZE, as autovacuum leaves a table that grows by inserts: counts over an index
#: range are index-only scans only once the visibility map is set.
FILL_SQL = """
INSERT INTO imports (import_id, merchant_id, source, file_name, sha256, size_bytes, template,
    status, rejection_code, total_rows, valid_rows, error_rows, duplicate_rows,
    brand_requests, product_requests, received_at, processed_at)
SELECT 'bench' || lpad(n::text, 8, '0'),
       'bench-' || lpad((n % {merchants})::text, 3, '0'),
       (ARRAY['upload', 'sftp', 'backfill'])[1 + n % 3],
       'orders-' || n || '.csv',
       md5(n::text) || md5((n + 1)::text),
       1000 + n % 5000,
       'website_products',
       CASE WHEN n % 25 = 0 THEN 'rejected' ELSE 'loaded' END,
       CASE WHEN n % 25 = 0 THEN 'existing_proofs' END,
       30, 27, 2, 1, 14, 6,
       now() - make_interval(secs => (n::float / {imports}) * 90 * 86400 + 60),
       now() - make_interval(secs => (n::float / {imports}) * 90 * 86400)
FROM generate_series(1, {imports}) AS n;

INSERT INTO review_requests (import_id, merchant_id, request_type, order_ref, id_product,
    email, firstname, lastname, language, shop_id, order_date, scheduled_at, status, created_at)
SELECT 'bench' || lpad((1 + n % {imports})::text, 8, '0'),
       'bench-' || lpad(((1 + n % {imports}) % {merchants})::text, 3, '0'),
       CASE WHEN n % 3 = 0 THEN 'product' ELSE 'brand' END,
       'ORD-' || n,
       CASE WHEN n % 3 = 0 THEN 'P' || (n % 977) END,
       'customer' || (n % 400000) || '@example.com',
       'Firstname', 'Lastname', 'fr', NULL,
       (now() - make_interval(days => 60))::date,
       now() + make_interval(secs => ((n::bigint * 7919) % (90 * 86400)) - 60 * 86400),
       'scheduled',
       now()
FROM generate_series(1, {requests}) AS n;
VACUUM ANALYZE imports;
VACUUM ANALYZE review_requests;
"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="bench_ui_"))
    try:
        with postgres.new_database(PG_SERVER, "bench_ui") as warehouse_url:
            server, made = start_server(root, warehouse_url, args)
            try:
                results = measure(server, made, args.repeat)
            finally:
                server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    elapsed = time.monotonic() - started
    print_table(results)
    out = {
        "requests": args.requests,
        "imports": args.imports,
        "repeat": args.repeat,
        "target_ms": TARGET_MS,
        "seconds": round(elapsed, 1),
        "routes": results,
    }
    write_json(args.out, out)
    slow = [r["route"] for r in results if r.get("max_ms", 0) > TARGET_MS and r["timed"]]
    print(f"\n{len(results)} routes in {elapsed:.0f} s; over {TARGET_MS:.0f} ms: {slow or 'none'}")
    print(f"results: {args.out}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--imports", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=10, help="timed calls of each route")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "results_ui.json")
    return parser.parse_args(argv)


def start_server(
    root: Path, warehouse_url: str, args: argparse.Namespace
) -> tuple[api_server.UiServer, dict[str, api_server.ImportMade]]:
    """The UI tests' data, the generated rows, and an api-server over them."""
    data_dir, merchants_file, made = api_server.build_data(root, warehouse_url)
    t = time.monotonic()
    with psycopg.connect(postgres.libpq(warehouse_url), autocommit=True) as conn:
        # Integers of ours, formatted in: several statements cannot take bound parameters.
        sql = FILL_SQL.format(imports=args.imports, requests=args.requests, merchants=MERCHANTS)
        for statement in filter(str.strip, sql.split(";")):
            conn.execute(statement)
    print(
        f"generated {args.imports:,} imports, {args.requests:,} requests in "
        f"{time.monotonic() - t:.0f} s",
        file=sys.stderr,
    )
    server = api_server.new_server(root, "postgres", warehouse_url, data_dir, merchants_file, made)
    server.start()
    return server, made


def routes(made: dict[str, api_server.ImportMade]) -> list[str]:
    """Every page and API route, with the filters people use most."""
    loaded = made["row-errors"].import_id
    rejected = made["existing-proofs"].import_id
    docs = made["row-errors"].report["validation"]["data_docs"]
    r = "/review-ingest"
    return [
        f"{r}/api/imports",
        f"{r}/api/imports?merchant_id=bench-042",
        f"{r}/api/imports?status=rejected",
        f"{r}/api/imports?source=sftp&since=2026-10-01&until=2026-10-31",
        f"{r}/api/imports?limit=500&offset=9500",
        f"{r}/api/imports/{loaded}",
        f"{r}/api/imports/{rejected}/errors.csv",
        f"{r}/api/requests",
        f"{r}/api/requests?merchant_id=bench-042",
        f"{r}/api/requests?status=due",
        f"{r}/api/requests?status=scheduled&request_type=product",
        f"{r}/api/requests?merchant_id=bench-042&status=scheduled&request_type=brand",
        f"{r}/api/requests?order_ref=ORD-123456",
        f"{r}/api/requests?email=Customer4242@Example.com",
        f"{r}/api/requests?scheduled_from=2026-11-01&scheduled_to=2026-11-15",
        f"{r}/api/requests?limit=500&offset=10000",
        f"{r}/imports",
        f"{r}/imports?merchant_id=bench-042&status=loaded",
        f"{r}/imports/{loaded}",
        f"{r}/imports/{rejected}",
        f"{r}/requests",
        f"{r}/requests?merchant_id=bench-042&status=scheduled",
        f"{r}/requests?email=customer4242@example.com",
        f"{r}/overview",
        f"{r}/overview?merchant_id=bench-042",
        f"{r}/data-docs/index.html",
        f"{r}/data-docs/{docs}",
    ]


def measure(
    server: api_server.UiServer, made: dict[str, api_server.ImportMade], repeat: int
) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {server.token(api_server.ADMIN)}"}
    results: list[dict[str, Any]] = []
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as client:
        for route in routes(made):
            check(client.get(route), route)  # warm-up: connections, caches, first migration
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                response = client.get(route)
                times.append((time.perf_counter() - t) * 1000)
                check(response, route)
            results.append(summary(route, times, len(response.content)))
        results.append(export(client, "/review-ingest/api/requests.csv?merchant_id=bench-042"))
        results.append(export(client, "/review-ingest/api/requests.csv?status=scheduled"))
    return results


def export(client: httpx.Client, route: str) -> dict[str, Any]:
    """A CSV export streams every row: its first byte, its end, and its rows."""
    t = time.perf_counter()
    rows = 0
    first_byte_ms = None
    with client.stream("GET", route) as response:
        check(response, route)
        for chunk in response.iter_bytes():
            if first_byte_ms is None:
                first_byte_ms = (time.perf_counter() - t) * 1000
            rows += chunk.count(b"\n")
    total_ms = (time.perf_counter() - t) * 1000
    return {
        "route": route,
        "timed": False,
        "first_byte_ms": round(first_byte_ms or total_ms, 1),
        "total_ms": round(total_ms, 1),
        "rows": rows - 1,
    }


def check(response: httpx.Response, route: str) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"{route}: HTTP {response.status_code}: {response.text[:300]}")


def summary(route: str, times: list[float], size: int) -> dict[str, Any]:
    return {
        "route": route,
        "timed": True,
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
        "bytes": size,
    }


def print_table(results: list[dict[str, Any]]) -> None:
    print("\n| route | median ms | max ms | bytes |\n|---|---|---|---|")
    for r in results:
        if r["timed"]:
            print(f"| `{r['route']}` | {r['median_ms']} | {r['max_ms']} | {r['bytes']:,} |")
        else:
            print(
                f"| `{r['route']}` (streamed) | first byte {r['first_byte_ms']} | "
                f"all {r['total_ms']} | {r['rows']:,} rows |"
            )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
