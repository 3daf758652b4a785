"""Benchmark of review-ingest: 5 MB checks and imports, the parse+COPY floor, a 200-file DAG run.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_ingest [--repeat 5] [--quick]

Every figure is the median wall time of ``--repeat`` runs; whole commands run as subprocesses
and their peak memory is the child's max RSS (``os.wait4``). Results are printed as a table and
written to ``benchmarks/out/results.json`` with each ratio against its target.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.measure import (
    OUT_DIR,
    Ratio,
    Run,
    expect,
    git_state,
    print_verdicts,
    run_timed,
    write_json,
)
from tests.kit import postgres
from tests.kit.airflow_env import airflow_conn_json, airflow_settings
from tests.kit.factories import (
    COLUMNS,
    MB,
    TEMPLATE,
    paris_today,
    valid_rows,
    write_big_files,
    write_merchants,
    write_rows,
)
from tests.kit.paths import REPO, VENV_BIN

MERCHANT = "bench"
DAG_ID = "orders_upload_ingest"
DAG_MERCHANTS = ("bench-a", "bench-b", "bench-c", "bench-d")
DAG_FILES, DAG_ROWS = 200, 20
PG_SERVER = postgres.server_url()


# ---------------------------------------------------------------- files


def write_upload_files(data_dir: Path, files: int) -> None:
    """``files`` small files of ``DAG_ROWS`` rows, round-robin over the merchants, aged 10 min."""
    rng = random.Random(files)
    stamp = time.time() - 600
    for index in range(files):
        merchant = DAG_MERCHANTS[index % len(DAG_MERCHANTS)]
        folder = data_dir / "uploads" / merchant
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"orders_{index:03d}.csv"
        write_rows(path, valid_rows(f"F{index:03d}-", paris_today(), rng), None, DAG_ROWS)
        os.utime(path, (stamp, stamp))


# ---------------------------------------------------------------- measuring


@dataclass
class Figure:
    """One measured stage: every run, and the median."""

    name: str
    runs: list[Run] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def peak_mb(self) -> float:
        return max(r.max_rss_mb for r in self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_s": round(self.median, 4),
            "min_s": round(min(r.seconds for r in self.runs), 4),
            "max_s": round(max(r.seconds for r in self.runs), 4),
            "peak_rss_mb": round(self.peak_mb, 1),
            "runs": [asdict(r) for r in self.runs],
        }


# ---------------------------------------------------------------- stages

Reader = Callable[[Path], list[tuple[Any, ...]]]


@dataclass
class Bench:
    """What every stage shares: the files, a scratch folder, the repetitions, the results."""

    tmp: Path
    files: dict[str, Any]
    repeat: int
    dag_repeat: int
    keep: bool = False
    pycache: Path | None = None
    figures: dict[str, Figure] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    _serial: int = 0

    @property
    def logs(self) -> Path:
        path = self.tmp / "logs"
        path.mkdir(exist_ok=True)
        return path

    def fresh(self, kind: str) -> str:
        """A name not used before in this run: databases, folders, log labels."""
        self._serial += 1
        return f"bench_ingest_{os.getpid()}_{kind}_{self._serial}"

    def record(self, name: str, run: Run) -> None:
        self.figures.setdefault(name, Figure(name)).runs.append(run)

    def path(self, key: str) -> Path:
        return Path(self.files[key]["path"])

    def env(self, data_dir: Path) -> dict[str, str]:
        """The environment of every command: this one, the venv first on PATH, and with
        ``--pycache`` a bytecode cache that Python may write (PYTHONPYCACHEPREFIX)."""
        env = dict(os.environ)
        env.update(
            REVIEW_INGEST_DATA_DIR=str(data_dir),
            PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        )
        if self.pycache is not None:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(self.pycache)
        return env

    def import_env(self, data_dir: Path, warehouse_url: str) -> dict[str, str]:
        """The environment of an import of ``MERCHANT``'s file into ``warehouse_url``."""
        env = self.env(data_dir)
        merchants = write_merchants(self.tmp / "merchants.yaml", {MERCHANT: TEMPLATE})
        env.update(
            REVIEW_INGEST_MERCHANTS=str(merchants), REVIEW_INGEST_WAREHOUSE_URL=warehouse_url
        )
        return env

    def discard(self, *paths: Path) -> None:
        """Delete what a run left (reports, outputs of tens of MB) unless told to keep it."""
        if self.keep:
            return
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


def fastest_reader() -> tuple[str, Reader]:
    """The fastest CSV reader installed in this interpreter: polars, pyarrow, else pandas."""
    try:
        import polars as pl

        return "polars", lambda p: pl.read_csv(p, separator=";", infer_schema=False).rows()
    except ImportError:
        pass
    try:
        from pyarrow import csv as pacsv

        def read_arrow(path: Path) -> list[tuple[Any, ...]]:
            table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=";"))
            return list(zip(*(col.to_pylist() for col in table.columns), strict=True))

        return "pyarrow.csv", read_arrow
    except ImportError:
        pass
    import pandas as pd

    def read_pandas(path: Path) -> list[tuple[Any, ...]]:
        frame = pd.read_csv(path, sep=";", engine="c", keep_default_na=False)
        return list(zip(*(frame[c].tolist() for c in frame.columns), strict=True))

    return "pandas.read_csv(engine='c')", read_pandas


def copy_rows(url: str, rows: list[tuple[Any, ...]]) -> None:
    """A new text table, then psycopg 3 COPY of every row, in one transaction."""
    with psycopg.connect(postgres.libpq(url)) as conn:
        conn.execute(f"CREATE TABLE floor ({', '.join(f'{c} text' for c in COLUMNS)})")
        statement = f"COPY floor ({', '.join(COLUMNS)}) FROM STDIN"
        with conn.cursor() as cur, cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)


def floor_once(bench: Bench, read: Reader) -> tuple[Run, Run]:
    """Read the valid file, then COPY its rows into a fresh database (CREATE DATABASE untimed).

    In-process: no interpreter start, reader already imported. Returns (parse only, parse+COPY).
    """
    database = bench.fresh("floor")
    url = postgres.create_database(PG_SERVER, database)
    try:
        start = time.perf_counter()
        rows = read(bench.path("valid"))
        parsed = time.perf_counter() - start
        copy_rows(url, rows)
        total = time.perf_counter() - start
    finally:
        postgres.drop_database(PG_SERVER, database)
    if len(rows) != bench.files["valid"]["rows"] or len(rows[0]) != len(COLUMNS):
        raise SystemExit(f"benchmark: the floor's reader found {len(rows)} rows")
    return Run(parsed, 0.0, 0), Run(total, 0.0, 0)


def cli_report(bench: Bench, label: str) -> dict[str, Any]:
    return json.loads((bench.logs / f"{label}.out").read_text(encoding="utf-8"))


def check_once(bench: Bench, key: str) -> Run:
    label = bench.fresh(f"check_{key}")
    cmd = [str(VENV_BIN / "review-ingest"), "check", str(bench.path(key))]
    cmd += ["--template", TEMPLATE, "--json"]
    run = run_timed(cmd, bench.env(bench.tmp / label), bench.logs, label)
    expect(run.returncode in (0, 1), f"exit code {run.returncode}", bench.logs, label)
    report = cli_report(bench, label)
    rows = bench.files[key]["rows"]
    wanted = rows if key == "all_bad" else 0
    expect(report["error_rows"] == wanted, f"{report['error_rows']} error rows", bench.logs, label)
    bench.discard(bench.logs / f"{label}.out")
    return run


@dataclass(frozen=True)
class Warehouse:
    kind: str
    url: str
    database: str | None = None


def new_warehouse(bench: Bench, kind: str) -> Warehouse:
    if kind == "sqlite":
        return Warehouse(kind, f"sqlite:///{bench.tmp / bench.fresh('wh')}.db")
    database = bench.fresh("wh")
    return Warehouse(kind, postgres.create_database(PG_SERVER, database), database)


def import_once(bench: Bench, key: str, kind: str) -> Run:
    """``review-ingest import`` into a fresh warehouse and data folder."""
    label = bench.fresh(f"import_{key}_{kind}")
    data_dir = bench.tmp / label
    warehouse = new_warehouse(bench, kind)
    env = bench.import_env(data_dir, warehouse.url)
    cmd = [str(VENV_BIN / "review-ingest"), "import", str(bench.path(key))]
    cmd += ["--merchant", MERCHANT, "--json"]
    try:
        run = run_timed(cmd, env, bench.logs, label)
    finally:
        if warehouse.database:
            postgres.drop_database(PG_SERVER, warehouse.database)
    expect(run.returncode == 0, f"exit code {run.returncode}", bench.logs, label)
    report = cli_report(bench, label)
    rows = bench.files[key]["rows"]
    counts = (report["valid_rows"], report["error_rows"])
    wanted = (rows, 0) if key == "valid" else (0, rows)
    expect(report["status"] == "loaded" and counts == wanted, f"{counts}", bench.logs, label)
    folder = data_dir / "reports" / MERCHANT / report["import_id"]
    bench.facts[f"report_bytes_{key}"] = {p.name: p.stat().st_size for p in folder.iterdir()}
    bench.discard(data_dir, bench.logs / f"{label}.out")
    return run


IN_PROCESS = Path(__file__).with_name("import_in_process.py")


def in_process_import_once(bench: Bench) -> Run:
    """The valid file's import into a fresh PostgreSQL warehouse, timed inside the process after
    its imports (``import_in_process.py``), as the floor is; peak RSS of the whole process."""
    label = bench.fresh("in_process_valid")
    data_dir = bench.tmp / label
    warehouse = new_warehouse(bench, "postgresql")
    env = bench.import_env(data_dir, warehouse.url)
    cmd = [str(VENV_BIN / "python"), str(IN_PROCESS), str(bench.path("valid")), MERCHANT]
    try:
        run = run_timed(cmd, env, bench.logs, label)
    finally:
        postgres.drop_database(PG_SERVER, warehouse.database or "")
    expect(run.returncode == 0, f"exit code {run.returncode}", bench.logs, label)
    result = cli_report(bench, label)
    rows = bench.files["valid"]["rows"]
    ok = result["status"] == "loaded" and result["valid_rows"] == rows
    expect(ok, f"{result}", bench.logs, label)
    bench.discard(data_dir, bench.logs / f"{label}.out")
    return Run(result["seconds"], run.max_rss_mb, run.returncode)


def project_import_once(bench: Bench) -> Run:
    """``python import_in_process.py --imports-only``: the bare import of the libraries that
    ``review-ingest import`` uses (interpreter start included, as for the command)."""
    label = bench.fresh("import_project")
    cmd = [str(VENV_BIN / "python"), str(IN_PROCESS), "--imports-only"]
    run = run_timed(cmd, bench.env(bench.tmp / label), bench.logs, label)
    expect(run.returncode == 0, "import failed", bench.logs, label)
    return run


def gx_import_once(bench: Bench) -> Run:
    label = bench.fresh("import_gx")
    cmd = [str(VENV_BIN / "python"), "-c", "import great_expectations"]
    run = run_timed(cmd, bench.env(bench.tmp / label), bench.logs, label)
    expect(run.returncode == 0, "import failed", bench.logs, label)
    return run


def one_round(bench: Bench, read: Reader) -> None:
    """One run of every single-file figure, close together in time so that ratios compare
    runs under the same load."""
    parsed, floor = floor_once(bench, read)
    bench.record("floor_parse_only", parsed)
    bench.record("floor_parse_copy_pg", floor)
    bench.record("python_import_great_expectations", gx_import_once(bench))
    bench.record("python_import_project", project_import_once(bench))
    bench.record("in_process_import_valid_postgresql", in_process_import_once(bench))
    for key in ("valid", "all_bad"):
        bench.record(f"check_{key}", check_once(bench, key))
    for key in ("valid", "all_bad"):
        for kind in ("sqlite", "postgresql"):
            bench.record(f"import_{key}_{kind}", import_once(bench, key, kind))


def bench_single_files(bench: Bench) -> None:
    name, read = fastest_reader()
    read(bench.path("valid"))  # warm the reader's imports
    bench.facts["floor_reader"] = name
    if bench.pycache is not None:
        check_once(bench, "valid")  # untimed: fills the bytecode cache
        import_once(bench, "valid", "sqlite")
    for number in range(bench.repeat):
        start = time.perf_counter()
        one_round(bench, read)
        print(f"round {number + 1}: {time.perf_counter() - start:.0f} s", flush=True)


def airflow_env(bench: Bench, data_dir: Path) -> dict[str, str]:
    """scripts/airflow_env.sh, with a private AIRFLOW_HOME and a SQLite warehouse."""
    merchants = write_merchants(bench.tmp / "dag.yaml", dict.fromkeys(DAG_MERCHANTS, TEMPLATE))
    env = bench.env(data_dir)
    env.update(airflow_settings(bench.tmp / "airflow"))
    env.update(
        REVIEW_INGEST_MERCHANTS=str(merchants),
        REVIEW_INGEST_MIN_FILE_AGE_SECONDS="0",
        AIRFLOW_CONN_REVIEW_WAREHOUSE=airflow_conn_json(f"sqlite:///{data_dir / 'warehouse.db'}"),
    )
    return env


def migrate_airflow(bench: Bench) -> None:
    label = bench.fresh("airflow_migrate")
    cmd = [str(VENV_BIN / "airflow"), "db", "migrate"]
    run = run_timed(cmd, airflow_env(bench, bench.tmp / label), bench.logs, label)
    expect(run.returncode == 0, "airflow db migrate failed", bench.logs, label)
    bench.facts["airflow_db_migrate_s"] = round(run.seconds, 2)


def dag_once(bench: Bench, files: int) -> Run:
    label = bench.fresh(f"dag_{files}")
    data_dir = bench.tmp / label
    write_upload_files(data_dir, files)
    cmd = [str(VENV_BIN / "airflow"), "dags", "test", DAG_ID]
    run = run_timed(cmd, airflow_env(bench, data_dir), bench.logs, label)
    processed = sum(1 for p in (data_dir / "processed").rglob("*.csv"))
    expect(run.returncode == 0, "airflow dags test failed", bench.logs, label)
    expect(processed == files, f"{processed} of {files} files processed", bench.logs, label)
    bench.discard(data_dir)
    return run


def bench_dag(bench: Bench) -> None:
    migrate_airflow(bench)
    if bench.pycache is not None:
        dag_once(bench, 1)  # untimed: fills the bytecode cache
    for number in range(bench.dag_repeat):
        start = time.perf_counter()
        for files in (1, DAG_FILES):
            bench.record(f"dag_test_{files}_files", dag_once(bench, files))
        print(f"DAG round {number + 1}: {time.perf_counter() - start:.0f} s", flush=True)


# ---------------------------------------------------------------- verdicts


def _share(bench: Bench, name: str, top: str, bottom: str, target: float) -> Ratio:
    """The ratio of two medians, and the median of the ratios of runs of the same round."""
    a, b = bench.figures[top], bench.figures[bottom]
    paired = statistics.median(x.seconds / y.seconds for x, y in zip(a.runs, b.runs, strict=True))
    return Ratio(name, a.median / b.median, target, paired=paired)


def _budget(bench: Bench, name: str, top: str, parts: dict[str, float]) -> Ratio:
    """``top`` over the weighted sum of ``parts`` (figure -> weight), at most 1: medians, and
    the median of the per-round ratios."""
    a = bench.figures[top]

    def budget(index: int | None) -> float:
        if index is None:
            return sum(w * bench.figures[f].median for f, w in parts.items())
        return sum(w * bench.figures[f].runs[index].seconds for f, w in parts.items())

    paired = statistics.median(run.seconds / budget(i) for i, run in enumerate(a.runs))
    return Ratio(name, a.median / budget(None), 1, paired=paired)


def _marginal(bench: Bench) -> Ratio:
    """Seconds per extra file of the 200-file DAG run over the 1-file run, under 50 ms."""
    one, many = bench.figures["dag_test_1_files"], bench.figures[f"dag_test_{DAG_FILES}_files"]
    per_round = [
        (m.seconds - o.seconds) / (DAG_FILES - 1) for m, o in zip(many.runs, one.runs, strict=True)
    ]
    value = (many.median - one.median) / (DAG_FILES - 1)
    name = "1. dag test: s per extra file"
    return Ratio(name, value, 0.05, " s", True, statistics.median(per_round))


def _peak(bench: Bench, name: str, figures: tuple[str, ...], limit: float) -> Ratio:
    """The highest max RSS of these figures' runs, under ``limit`` MB."""
    return Ratio(name, max(bench.figures[f].peak_mb for f in figures), limit, " MB", True)


def ratios(bench: Bench) -> list[Ratio]:
    """Issue 9's targets 1-4 (numbered), then the earlier targets that still hold."""
    gx = "python_import_great_expectations"
    floor = "floor_parse_copy_pg"
    report_mb = bench.facts["report_bytes_all_bad"]["report.json"] / MB
    dag_many = f"dag_test_{DAG_FILES}_files"
    return [
        _share(bench, "1. dag test 200 files / 1 file", dag_many, "dag_test_1_files", 2),
        _marginal(bench),
        _share(
            bench,
            "2. in-process import valid PG / floor",
            "in_process_import_valid_postgresql",
            floor,
            5,
        ),
        _budget(
            bench,
            "2. command import valid PG / (import libs + 5 floor)",
            "import_valid_postgresql",
            {"python_import_project": 1, floor: 5},
        ),
        _share(bench, "3. check valid / import great_expectations", "check_valid", gx, 1.3),
        _share(bench, "3. check all-bad / import great_expectations", "check_all_bad", gx, 1.3),
        _peak(
            bench,
            "4. peak RSS import all-bad (MB)",
            ("import_all_bad_sqlite", "import_all_bad_postgresql"),
            300,
        ),
        _peak(
            bench,
            "peak RSS import valid (MB)",
            ("import_valid_sqlite", "import_valid_postgresql"),
            500,
        ),
        _share(bench, "check all-bad / check valid", "check_all_bad", "check_valid", 1.5),
        Ratio("report.json of all-bad import (MB)", report_mb, 2, " MB", True),
    ]


def _figure_line(name: str, fig: Figure) -> str:
    d = fig.as_dict()
    rss = f"{d['peak_rss_mb']:.0f}" if d["peak_rss_mb"] else "-"
    times = f"{d['median_s']:>9.3f} {d['min_s']:>8.3f} {d['max_s']:>8.3f}"
    return f"{name:<36} {times} {rss:>12} {len(fig.runs):>3}"


def print_table(bench: Bench, verdicts: list[Ratio]) -> None:
    print(f"\n{'stage':<36} {'median s':>9} {'min s':>8} {'max s':>8} {'peak RSS MB':>12} {'n':>3}")
    for name, fig in bench.figures.items():
        print(_figure_line(name, fig))
    for key, value in bench.facts.items():
        print(f"{key:<36} {value}")
    print_verdicts(verdicts)


def write_results(bench: Bench, verdicts: list[Ratio], args: argparse.Namespace) -> Path:
    files = {k: {kk: vv for kk, vv in v.items() if kk != "path"} for k, v in bench.files.items()}
    result = {
        "meta": {
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "load_avg_at_end": os.getloadavg(),
            "python": sys.version.split()[0],
            "repeat": args.repeat,
            "dag_repeat": bench.dag_repeat,
            "quick": args.quick,
            "pycache": args.pycache,
            "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
            "venv_pyc_files": sum(1 for _ in (REPO / ".venv" / "lib").rglob("*.pyc")),
            "git": git_state(),
        },
        "files": files,
        "figures": {name: fig.as_dict() for name, fig in bench.figures.items()},
        "facts": bench.facts,
        "ratios": {r.name: r.as_dict() for r in verdicts},
    }
    write_json(args.out, result)
    return args.out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--quick", action="store_true", help="one DAG run of each kind only")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and logs")
    parser.add_argument(
        "--pycache",
        action="store_true",
        help="let the commands cache bytecode (PYTHONPYCACHEPREFIX in the scratch folder, warmed "
        "by an untimed run) even when PYTHONDONTWRITEBYTECODE is set",
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR / "results.json", help="JSON results")
    return parser.parse_args(argv)


STAGES: tuple[Callable[[Bench], None], ...] = (bench_single_files, bench_dag)


def run(args: argparse.Namespace) -> list[Ratio]:
    """Every stage, the table, ``args.out``; the verdicts (bench_scale shows them with the
    other targets')."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    dag_repeat = 1 if args.quick else args.repeat
    pycache = tmp / "pycache" if args.pycache else None
    bench = Bench(tmp, write_big_files(tmp), args.repeat, dag_repeat, args.keep, pycache)
    for key, info in bench.files.items():
        print(f"{key} file: {info['bytes']:,} bytes, {info['rows']:,} rows", flush=True)
    try:
        for stage in STAGES:
            stage(bench)
    finally:
        if args.keep:
            print(f"scratch folder kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    verdicts = ratios(bench)
    print_table(bench, verdicts)
    print(f"\nresults: {write_results(bench, verdicts, args)}")
    return verdicts


def main(argv: list[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
