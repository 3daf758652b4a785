"""Would another Great Expectations engine meet issue 9's target 2? pandas against SQL.

The pipeline validates rows with GX's pandas engine (``Validation.check_files``). Target 2 asks
for the whole in-process import of the valid 5 MB file within 5x the parse+COPY floor, and
the validation alone is 8-10x that floor. The other candidate, GX's SQL engine, runs the same
saved suite as SQL queries (the regex checks in PostgreSQL's C code) on a table: this measures
it on a staging table of the same frame, for the valid and the all-bad 5 MB files of
``bench_ingest`` (``tests.kit.factories.write_big_files``), alternating the two engines, in one
process after a warm-up of each:

- pandas: ``check_files`` as the pipeline calls it (``build_frame``, the validation, the errors);
- SQL: ``build_frame`` (the derived columns: e-mail syntax, dates), a staging table filled by
  COPY, the validation of the same suite (its column set plus the staging key ``line``), the
  errors made from its failing lines as ``check_files`` makes them.

Both must find the same errors (line, column, code): the run stops otherwise.

    .venv/bin/python -m benchmarks.bench_gx_engines               # about 2 min
    .venv/bin/python -m benchmarks.bench_gx_engines --repeat 5

Run from the repository root. Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust); its
database is dropped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from benchmarks.measure import OUT_DIR, git_state, write_json
from review_ingest.core.merchants import Merchant, default_merchant
from review_ingest.core.outcomes import RowError
from review_ingest.core.reading import read_file
from review_ingest.core.template_columns import TEMPLATES, Template
from review_ingest.quality import gx_compat, validation
from review_ingest.quality.suites import suite_path
from tests.kit import postgres
from tests.kit.factories import TEMPLATE, paris_today, write_big_files

STAGING = "staging"
#: GX's SQL engine lists at most ``partial_unexpected_count`` failing rows of an expectation,
#: even in the COMPLETE format: every one of them is needed.
SQL_RESULT_FORMAT = {
    **validation.RESULT_FORMAT,
    "unexpected_index_column_names": [validation.LINE],
    "partial_unexpected_count": 10**9,
}
#: The columns ``build_frame`` derives, with their SQL types.
DERIVED = {"email__valid": "bool", "order_date__valid": "bool", "order_date__day": "bigint"}
Errors = set[tuple[int, str | None, str]]


class SqlEngine:
    """The template's saved suite on a PostgreSQL table, by GX's SQL engine."""

    def __init__(self, context: Any, url: str, template: Template):
        """In ``context``, the pipeline's own (``Validation.context``), beside its pandas source."""
        gx = gx_compat.load()
        self.libpq = postgres.libpq(url)
        saved = json.loads(suite_path(template.id).read_text("utf-8"))
        saved["name"] = f"{template.id}_on_sql"  # the pandas engine's suite keeps the id
        for expectation in saved["expectations"]:
            if expectation["type"] == "expect_table_columns_to_match_set":
                expectation["kwargs"]["column_set"].append(validation.LINE)
        self.suite = context.suites.add(gx.ExpectationSuite(**saved))
        #: Seconds of each check spent building the frame and filling the staging table.
        self.staging_s: list[float] = []
        self._create_staging(template)
        source = context.data_sources.add_postgres("warehouse", connection_string=url)
        asset = source.add_table_asset(STAGING, table_name=STAGING)
        self.batch_definition = asset.add_batch_definition_whole_table("whole_table")

    def check(
        self,
        files: list[validation.FileRows],
        template: Template,
        merchant: Merchant,
        as_of: dt.date,
    ) -> list[RowError]:
        start = time.perf_counter()
        self._stage(validation.build_frame(files, template, merchant))
        self.staging_s.append(time.perf_counter() - start)
        result = self.batch_definition.get_batch().validate(
            self.suite,
            result_format=SQL_RESULT_FORMAT,
            expectation_parameters=validation.expectation_parameters(merchant, as_of),
        )
        # As check_files makes them.
        failing = list(validation._failing(_as_lists(result), files))
        return validation._row_errors(failing, files).get(files[0].label, [])

    def _create_staging(self, template: Template) -> None:
        """The staging table: the frame's index as ``line``, its text, booleans and day."""
        columns = [validation.LINE, *template.columns, *DERIVED]
        ddl = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(DERIVED.get(c, "text")))
            for c in columns
        )
        with psycopg.connect(self.libpq, autocommit=True) as connection:
            connection.execute(
                sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY ({}))").format(
                    sql.Identifier(STAGING), ddl, sql.Identifier(validation.LINE)
                )
            )

    def _stage(self, frame: Any) -> None:
        """The frame in the staging table, alone."""
        columns = [validation.LINE, *frame.columns]
        values = [frame.index.tolist(), *(_nulls(frame[c].tolist()) for c in frame.columns)]
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        with psycopg.connect(self.libpq, autocommit=True) as connection:
            connection.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(STAGING)))
            copy = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(STAGING), names)
            with connection.cursor().copy(copy) as writer:
                for row in zip(*values, strict=True):
                    writer.write_row(row)
            connection.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(STAGING)))


def _nulls(values: list[Any]) -> list[Any]:
    """pandas' missing values (NaN, NA) as None, for COPY."""
    return [
        None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v
        for v in values
    ]


def _as_lists(result: Any) -> Any:
    """The SQL engine lists failing rows as ``[{"line": n}, ...]``; ``validation._failing``
    reads the pandas engine's ``[{"line": [n, ...]}]``."""
    for outcome in result.results:
        found = outcome.result.get("unexpected_index_list")
        if found and isinstance(found[0].get(validation.LINE), int):
            outcome.result["unexpected_index_list"] = [
                {validation.LINE: [row[validation.LINE] for row in found]}
            ]
    return result


def _key(errors: list[RowError]) -> Errors:
    return {(e.line, e.column, e.code) for e in errors}


def timed(work: Callable[[], list[RowError]]) -> tuple[float, Errors]:
    start = time.perf_counter()
    errors = work()
    return time.perf_counter() - start, _key(errors)


def measure(
    name: str,
    path: Path,
    pandas_engine: validation.Validation,
    sql_engine: SqlEngine,
    repeat: int,
) -> dict[str, Any]:
    template = TEMPLATES[TEMPLATE]
    merchant = default_merchant(template.id)
    as_of = paris_today()
    parsed = read_file(path.read_bytes(), template)
    files = [validation.FileRows("bench", path.name, parsed.records)]
    engines: dict[str, Callable[[], list[RowError]]] = {
        "pandas": lambda: (
            pandas_engine.check_files(files, template, merchant, as_of, name)["bench"].errors
        ),
        "sql": lambda: sql_engine.check(files, template, merchant, as_of),
    }
    found = {engine: timed(work)[1] for engine, work in engines.items()}  # warm-up, untimed
    if found["pandas"] != found["sql"]:
        only = {e: len(found[e] - found[o]) for e, o in (("pandas", "sql"), ("sql", "pandas"))}
        raise SystemExit(f"benchmark: {name}: the engines disagree, errors found only by {only}")
    sql_engine.staging_s.clear()
    seconds: dict[str, list[float]] = {engine: [] for engine in engines}
    for _ in range(repeat):
        for engine, work in engines.items():
            seconds[engine].append(timed(work)[0])
    medians = {engine: statistics.median(runs) for engine, runs in seconds.items()}
    staging = statistics.median(sql_engine.staging_s)
    print(
        f"{name:<8} {len(parsed.records):>6,} rows, {len(found['pandas']):>7,} errors: "
        f"pandas {medians['pandas']:.2f} s, SQL {medians['sql']:.2f} s "
        f"(frame and staging {staging:.2f} s) "
        f"({medians['sql'] / medians['pandas']:.2f}x)",
        flush=True,
    )
    return {
        "rows": len(parsed.records),
        "errors": len(found["pandas"]),
        "runs_s": {engine: [round(s, 3) for s in runs] for engine, runs in seconds.items()},
        "median_s": {engine: round(s, 3) for engine, s in medians.items()},
        "sql_frame_and_staging_median_s": round(staging, 3),
        "sql_over_pandas": round(medians["sql"] / medians["pandas"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT_DIR / "results_gx_engines.json")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"git": git_state(), "repeat": args.repeat}
    with tempfile.TemporaryDirectory(prefix="bench_gx_engines_") as tmp:
        sizes = write_big_files(Path(tmp))
        with postgres.new_database(postgres.server_url(), prefix="bench_gx_engines") as url:
            pandas_engine = validation.Validation(None, None)
            sql_engine = SqlEngine(pandas_engine.context, url, TEMPLATES[TEMPLATE])
            for name in ("valid", "all_bad"):
                path = Path(sizes[name]["path"])
                results[name] = measure(name, path, pandas_engine, sql_engine, args.repeat)
    write_json(args.out, results)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
