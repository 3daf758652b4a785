"""The warehouse as it grows (issue 9, target 6): proofs lookup and load at 0, 1M and 10M rows.

A throw-away PostgreSQL database, migrated by the pipeline, is filled step by step to each
``--sizes`` count of generated ``review_requests`` rows (SQL ``generate_series``, 100 merchants,
then ``VACUUM ANALYZE``). At each size:

- ``warehouse.known_order_refs`` for 40,000 order refs of one merchant, refs it never sent (the
  ordinary new file) and refs it already has (a file sent again); with the ``EXPLAIN (ANALYZE,
  BUFFERS)`` of one of its chunks, to show which index it uses;
- the load of a valid 5 MB file by the real pipeline (``Ingest.import_file``, in this process,
  after an untimed warm-up import: no interpreter start, no library import), ``--loads`` files;
  each followed by the load of another one with the trigger that counts the new requests into
  the rollup ``request_counts`` (migration 0007) disabled, to show what that trigger costs.

    .venv/bin/python -m benchmarks.bench_warehouse                      # ~12 min, ~5 GB of disk
    .venv/bin/python -m benchmarks.bench_warehouse --sizes 0,100000,1000000 --loads 1

Run from the repository root. Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust); its
database is dropped at the end.
"""

from __future__ import annotations

import argparse
import functools
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from benchmarks.measure import OUT_DIR, Ratio, print_verdicts, write_json
from tests.kit import postgres
from tests.kit.factories import (
    BIG_FILE_BYTES,
    MB,
    TEMPLATE,
    paris_today,
    valid_rows,
    write_merchants,
    write_rows,
)

FILL_MERCHANTS = 100
MERCHANT = "bench-000"  # one of the generated merchants: the lookups search its rows
LOOKUP_REFS = 40_000
LOOKUP_TARGET_S = 0.5
#: "No slower than on an empty table", read with the noise of 2 shared cores.
LOAD_TOLERANCE = 1.10
ROWS_PER_IMPORT = 10_000
FILL_STEP = 1_000_000

#: Rows ``{start}``..``{end}`` of the generated data: imports first (the requests' foreign key),
#: one per ROWS_PER_IMPORT requests; request ``n`` is order ``ORD-n`` of merchant n mod 100,
#: one in three a product request.
FILL_SQL = f"""
INSERT INTO imports (import_id, merchant_id, source, file_name, sha256, size_bytes, template,
    status, total_rows, valid_rows, brand_requests, product_requests, received_at, processed_at)
SELECT 'fill' || lpad(k::text, 8, '0'), 'bench-fill', 'upload', 'fill-' || k || '.csv',
       md5(k::text) || md5((k + 1)::text), 1000, 'website_products', 'loaded',
       {ROWS_PER_IMPORT}, {ROWS_PER_IMPORT}, 0, 0, now(), now()
FROM generate_series({{start}} / {ROWS_PER_IMPORT}, {{end}} / {ROWS_PER_IMPORT}) AS k
ON CONFLICT DO NOTHING;

INSERT INTO review_requests (import_id, merchant_id, request_type, order_ref, id_product,
    email, firstname, lastname, language, order_date, scheduled_at, status, created_at)
SELECT 'fill' || lpad((n / {ROWS_PER_IMPORT})::text, 8, '0'),
       'bench-' || lpad(mod(n, {FILL_MERCHANTS})::text, 3, '0'),
       CASE WHEN mod(n, 3) = 0 THEN 'product' ELSE 'brand' END,
       'ORD-' || n,
       CASE WHEN mod(n, 3) = 0 THEN 'P' || mod(n, 977) END,
       'customer' || mod(n, 400000) || '@example.com', 'Firstname', 'Lastname', 'fr',
       (now() - interval '60 days')::date,
       now() + make_interval(secs => mod(n::bigint * 7919, 90 * 86400) - 60 * 86400),
       'scheduled', now()
FROM generate_series({{start}}, {{end}}) AS n;
"""


@dataclass
class Size:
    """What was measured at one size of the table."""

    rows: int
    fill_s: float
    table_mb: float
    lookup_new_s: list[float] = field(default_factory=list)
    lookup_known_s: list[float] = field(default_factory=list)
    known_found: int = 0
    load_s: list[float] = field(default_factory=list)
    load_without_trigger_s: list[float] = field(default_factory=list)
    plan: str = ""

    @property
    def plan_uses_index(self) -> bool:
        return "Index" in self.plan and "Seq Scan on review_requests" not in self.plan

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "fill_s": round(self.fill_s, 1),
            "table_and_indexes_mb": round(self.table_mb),
            "lookup_new_median_s": _median(self.lookup_new_s),
            "lookup_known_median_s": _median(self.lookup_known_s),
            "lookup_runs_s": {
                "new": _rounded(self.lookup_new_s),
                "known": _rounded(self.lookup_known_s),
            },
            "known_found": self.known_found,
            "load_median_s": _median(self.load_s),
            "load_runs_s": _rounded(self.load_s),
            "load_without_trigger_median_s": _median(self.load_without_trigger_s),
            "load_without_trigger_runs_s": _rounded(self.load_without_trigger_s),
            "plan_uses_index": self.plan_uses_index,
            "plan": self.plan,
        }


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


def fill_to(engine: Engine, have: int, rows: int) -> float:
    """Add generated rows ``have + 1``..``rows`` (steps of a million), then VACUUM ANALYZE."""
    start = time.perf_counter()
    for first in range(have + 1, rows + 1, FILL_STEP):
        last = min(first + FILL_STEP - 1, rows)
        with engine.begin() as connection:
            connection.exec_driver_sql(FILL_SQL.format(start=first, end=last))
        print(f"  filled to {last:,} rows ({time.perf_counter() - start:.0f} s)", flush=True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE imports")
        connection.exec_driver_sql("VACUUM ANALYZE review_requests")
    return time.perf_counter() - start


def table_mb(engine: Engine) -> float:
    with engine.connect() as connection:
        size = connection.scalar(text("SELECT pg_total_relation_size('review_requests')"))
    return size / MB


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def explain(engine: Engine, refs: list[str]) -> str:
    """The plan of one query of ``known_order_refs``, sent with bound parameters as the
    pipeline sends it (literal values can get another plan)."""
    from review_ingest.store import warehouse
    from review_ingest.store.models import ReviewRequestRow

    chunk = refs if engine.dialect.name == "postgresql" else refs[: warehouse.IN_CHUNK]
    query = warehouse.found_query(
        engine, ReviewRequestRow.order_ref, chunk, *warehouse.proof_conditions(MERCHANT)
    )
    compiled = query.compile(engine, compile_kwargs={"render_postcompile": True})
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            f"EXPLAIN (ANALYZE, BUFFERS) {compiled}", compiled.params
        ).all()
    return "\n".join(_shorter(row[0]) for row in rows)


def _shorter(line: str, width: int = 160) -> str:
    """A plan line without most of the 40,000 refs of its array."""
    return line if len(line) <= width else f"{line[:width]}..."


def measure_lookups(engine: Engine, size: Size, repeat: int) -> None:
    """``known_order_refs`` for refs the merchant never sent, then for refs it has."""
    from review_ingest.store import warehouse

    new = [f"NEW-{size.rows}-{n}" for n in range(LOOKUP_REFS)]
    known = [f"ORD-{FILL_MERCHANTS * k}" for k in range(1, LOOKUP_REFS + 1)]
    for _ in range(repeat):
        seconds, found = timed(lambda: warehouse.known_order_refs(engine, MERCHANT, new))
        assert not found, "refs never sent were found"
        size.lookup_new_s.append(seconds)
        seconds, found = timed(lambda: warehouse.known_order_refs(engine, MERCHANT, known))
        size.lookup_known_s.append(seconds)
        size.known_found = len(found)
    size.plan = explain(engine, known)


def measure_loads(ingest: Any, tmp: Path, size: Size, loads: int) -> None:
    """Import ``loads`` new valid 5 MB files (orders the merchant never sent) in this process,
    each followed by one with the rollup's insert trigger disabled."""
    for number in range(loads):
        size.load_s.append(load_one(ingest, tmp, size.rows, f"{number}"))
        with rollup_trigger_disabled(ingest.engine):
            size.load_without_trigger_s.append(load_one(ingest, tmp, size.rows, f"{number}n"))


def load_one(ingest: Any, tmp: Path, rows_now: int, label: str) -> float:
    """The seconds of one new valid 5 MB file's import."""
    path = tmp / f"load_{rows_now}_{label}.csv"
    rows = valid_rows(f"L{rows_now}x{label}-", paris_today(), random.Random(f"{rows_now}-{label}"))
    write_rows(path, rows, BIG_FILE_BYTES, None)
    seconds, outcome = timed(functools.partial(ingest.import_file, path, MERCHANT, "upload"))
    if outcome.record.status != "loaded" or outcome.record.error_rows:
        raise SystemExit(f"benchmark: load at {rows_now:,} rows: {outcome.record.status}")
    path.unlink()
    return seconds


@contextmanager
def rollup_trigger_disabled(engine: Engine) -> Iterator[None]:
    """The trigger that counts new requests into ``request_counts`` off, then on again (the
    rollup misses those loads: this database is thrown away)."""
    statement = "ALTER TABLE review_requests {} TRIGGER request_counts_insert"
    with engine.begin() as connection:
        connection.exec_driver_sql(statement.format("DISABLE"))
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(statement.format("ENABLE"))


def warm_up(ingest: Any, tmp: Path) -> None:
    """One small import, untimed: GX's context, the suites, the engine's first connections."""
    path = tmp / "warm_up.csv"
    write_rows(path, valid_rows("WARM-", paris_today(), random.Random(1)), None, 200)
    ingest.import_file(path, MERCHANT, "upload")


def run(sizes: list[int], repeat: int, loads: int) -> list[Size]:
    """Every size, smallest first, in one database that grows."""
    from review_ingest.core.merchants import read_merchants
    from review_ingest.pipeline.ingest import Ingest

    tmp = Path(tempfile.mkdtemp(prefix="bench_warehouse_"))
    results: list[Size] = []
    try:
        merchants_file = write_merchants(tmp / "merchants.yaml", {MERCHANT: TEMPLATE})
        merchants = read_merchants(merchants_file).merchants
        with postgres.new_database(postgres.server_url(), prefix="bench_warehouse") as url:
            ingest = Ingest(tmp / "data", merchants, url, data_docs=False)
            engine = ingest.engine  # migrated
            warm_up(ingest, tmp)
            have = 0
            for rows in sorted(sizes):
                print(f"size {rows:,}", flush=True)
                size = Size(rows, fill_to(engine, have, rows), 0.0)
                have = rows
                size.table_mb = table_mb(engine)
                measure_lookups(engine, size, repeat)
                measure_loads(ingest, tmp, size, loads)
                print(
                    f"  lookup {_median(size.lookup_new_s):.3f} s (new refs), "
                    f"{_median(size.lookup_known_s):.3f} s ({size.known_found:,} known); "
                    f"load {_median(size.load_s):.2f} s, "
                    f"{_median(size.load_without_trigger_s):.2f} s without the rollup's trigger",
                    flush=True,
                )
                results.append(size)
            engine.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def verdicts(results: list[Size]) -> list[Ratio]:
    """Target 6: the lookup at the largest size under 0.5 s with an index; each size's load
    no slower than the empty table's."""
    empty, largest = results[0], results[-1]
    lookup = max(_median(largest.lookup_new_s), _median(largest.lookup_known_s))
    found = [
        Ratio(
            f"proofs lookup 40k refs at {largest.rows:,} rows (s)",
            lookup,
            LOOKUP_TARGET_S,
            " s",
            True,
        ),
        Ratio(
            f"lookup plan uses an index at {largest.rows:,} rows (1 = yes)",
            float(largest.plan_uses_index),
            1,
            "",
        ),
    ]
    for size in results[1:]:
        found.append(
            Ratio(
                f"load at {size.rows:,} rows / load at {empty.rows:,}",
                _median(size.load_s) / _median(empty.load_s),
                LOAD_TOLERANCE,
            )
        )
    for size in results:
        found.append(
            Ratio(
                f"load at {size.rows:,} rows, with / without the rollup's trigger",
                _median(size.load_s) / _median(size.load_without_trigger_s),
                LOAD_TOLERANCE,
            )
        )
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,1000000,10000000", help="rows, comma-separated")
    parser.add_argument("--repeat", type=int, default=5, help="lookups per size (median)")
    parser.add_argument("--loads", type=int, default=3, help="file loads per size (median)")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "results_warehouse.json")
    return parser.parse_args(argv)


def report(results: list[Size], found: list[Ratio], out: Path) -> None:
    print(
        f"\n{'rows':>12} {'fill s':>8} {'MB':>7} {'lookup new s':>13} {'known s':>8} {'load s':>8}"
        f" {'no trigger s':>12}"
    )
    for size in results:
        d = size.as_dict()
        print(
            f"{size.rows:>12,} {d['fill_s']:>8} {d['table_and_indexes_mb']:>7} "
            f"{d['lookup_new_median_s']:>13} {d['lookup_known_median_s']:>8} "
            f"{d['load_median_s']:>8} {d['load_without_trigger_median_s']:>12}"
        )
    print(f"\nplan at {results[-1].rows:,} rows:\n{results[-1].plan}")
    print_verdicts(found)
    body = {"sizes": [s.as_dict() for s in results], "ratios": {r.name: r.as_dict() for r in found}}
    write_json(out, body)
    print(f"\nresults: {out}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    results = run([int(s) for s in args.sizes.split(",")], args.repeat, args.loads)
    report(results, verdicts(results), args.out)
    print(f"bench_warehouse took {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
