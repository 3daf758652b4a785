"""Benchmark of review-ingest: 5 MB checks and imports, the parse+COPY floor, a 200-file DAG run.

Run from the repository root::

    .venv/bin/python benchmarks/bench_ingest.py [--repeat 5] [--quick]

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
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
OUT_DIR = REPO / "benchmarks" / "out"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
MAX_FILE_BYTES = 5 * 1024 * 1024  # review_ingest.settings.MAX_FILE_BYTES
BIG_FILE_BYTES = MAX_FILE_BYTES - 16 * 1024  # "just under 5 MB"
TEMPLATE = "website_products"
MERCHANT = "bench"
DAG_ID = "orders_upload_ingest"
DAG_MERCHANTS = ("bench-a", "bench-b", "bench-c", "bench-d")
DAG_FILES, DAG_ROWS = 200, 20
TZ = ZoneInfo("Europe/Paris")
MB = 1024 * 1024

HEADER = (
    "order_ref*;email*;lastname*;firstname*;order_date*;delay;language;id_product*;"
    "name_product*;url_product;url_image_product;gtin_ean;sku;brand_name;delay_product"
)
COLUMNS = [name.rstrip("*") for name in HEADER.split(";")]
FIRST = ("Claire", "Hugo", "Inès", "Paul", "Léa", "Lucas", "Emma", "Jules", "Chloé", "Noah")
LAST = ("Moreau", "Nguyen", "García", "Lefèvre", "Martin", "Bernard", "Dubois", "Petit", "Roux")
DOMAINS = ("example.fr", "example.com", "mail.example.es", "example.de")
PRODUCTS = ("Lampe laiton", "Ampoule LED E27", "Table chêne", "Coussin lin", "Vase grès", "Tapis")
BRANDS = ("Lumio", "Bois & Co", "Maison Lin", "Terra")
LANGUAGES = ("fr", "fr", "en", "es", "de")


# ---------------------------------------------------------------- files


@dataclass(frozen=True)
class Order:
    """The order-level values shared by every row of one order."""

    ref: str
    email: str
    lastname: str
    firstname: str
    order_date: str
    delay: str
    language: str


def _date_text(day: dt.date, rng: random.Random) -> str:
    """A day in one of the accepted formats, sometimes with a time."""
    form = rng.randrange(4)
    if form == 0:
        return f"{day:%d-%m-%Y}"
    if form == 1:
        return f"{day:%d/%m/%Y}"
    if form == 2:
        return f"{day:%Y-%m-%d} {rng.randrange(24):02d}:{rng.randrange(60):02d}"
    return f"{day:%Y-%m-%d}"


def _order(ref: str, today: dt.date, rng: random.Random) -> Order:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    ascii_first = first.encode("ascii", "ignore").decode().lower()
    ascii_last = last.encode("ascii", "ignore").decode().lower()
    day = today - dt.timedelta(days=rng.randint(1, 30))
    return Order(
        ref=ref,
        email=f"{ascii_first}.{ascii_last}{rng.randrange(1000)}@{rng.choice(DOMAINS)}",
        lastname=last,
        firstname=first,
        order_date=_date_text(day, rng),
        delay=rng.choice(("", "0", "2", "7")),
        language=rng.choice(LANGUAGES),
    )


def _product_fields(product: int, rng: random.Random) -> list[str]:
    pid = f"P{product:05d}"
    return [
        pid,
        f"{rng.choice(PRODUCTS)} {product % 90 + 10}",
        f"https://shop.example.com/p/{pid}" if rng.random() < 0.35 else "",
        f"https://cdn.example.com/{pid}.jpg" if rng.random() < 0.1 else "",
        f"{3000000000000 + product * 7919:013d}" if rng.random() < 0.6 else "",
        f"SKU{product:05d}",
        rng.choice(BRANDS),
        rng.choice(("", "7", "14")),
    ]


def valid_rows(prefix: str, today: dt.date, rng: random.Random) -> Iterator[str]:
    """Endless valid rows: 1 to 5 products per order (3 on average), each product once."""
    number = 0
    while True:
        number += 1
        order = _order(f"{prefix}{number:07d}", today, rng)
        head = [order.ref, order.email, order.lastname, order.firstname, order.order_date]
        for product in rng.sample(range(1, 5000), rng.randint(1, 5)):
            tail = _product_fields(product, rng)
            yield ";".join([*head, order.delay, order.language, *tail])


def bad_rows(rng: random.Random) -> Iterator[str]:
    """Endless rows that each break 7 rules: e-mail, date, delay, language, URL, GTIN, delay."""
    number = 0
    while True:
        number += 1
        product = rng.randrange(1, 5000)
        yield ";".join(
            [
                f"BAD{number:07d}",
                f"not-an-email-{number}",
                rng.choice(LAST),
                rng.choice(FIRST),
                f"{rng.randint(32, 39)}-13-2026",
                "99",
                "xx",
                f"P{product:05d}",
                rng.choice(PRODUCTS),
                "ftp://shop/p",
                "",
                "12ab",
                f"SKU{product:05d}",
                rng.choice(BRANDS),
                "-3",
            ]
        )


def write_rows(path: Path, rows: Iterator[str], max_bytes: int | None, count: int | None) -> int:
    """Header then rows until the next one would pass ``max_bytes`` (or ``count`` rows)."""
    parts = [HEADER + "\n"]
    size = len(parts[0].encode())
    written = 0
    for row in rows:
        line = row + "\n"
        length = len(line.encode())
        if (max_bytes is not None and size + length > max_bytes) or written == count:
            break
        parts.append(line)
        size += length
        written += 1
    path.write_text("".join(parts), encoding="utf-8")
    return written


def paris_today() -> dt.date:
    return dt.datetime.now(TZ).date()


def write_big_files(folder: Path) -> dict[str, Any]:
    rng = random.Random(20261127)
    valid, bad = folder / "orders_valid.csv", folder / "orders_all_bad.csv"
    valid_count = write_rows(valid, valid_rows("WP", paris_today(), rng), BIG_FILE_BYTES, None)
    bad_count = write_rows(bad, bad_rows(rng), BIG_FILE_BYTES, None)
    return {
        "valid": {"path": str(valid), "bytes": valid.stat().st_size, "rows": valid_count},
        "all_bad": {"path": str(bad), "bytes": bad.stat().st_size, "rows": bad_count},
    }


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


def write_merchants(path: Path, merchants: tuple[str, ...]) -> Path:
    lines = ["merchants:"] + [f"  {m}:\n    template: {TEMPLATE}" for m in merchants]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- measuring


@dataclass
class Run:
    seconds: float
    max_rss_mb: float
    returncode: int


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


def run_timed(cmd: list[str], env: dict[str, str], log_dir: Path, label: str) -> Run:
    """Run a command to completion; its wall time and its own max RSS (via ``os.wait4``)."""
    out, err = log_dir / f"{label}.out", log_dir / f"{label}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(seconds, usage.ru_maxrss / 1024, proc.returncode)


def expect(ok: bool, what: str, log_dir: Path, label: str) -> None:
    """Stop the benchmark when a command did not do what it is timed for."""
    if not ok:
        tail = (log_dir / f"{label}.err").read_text(errors="replace")[-3000:]
        raise SystemExit(f"benchmark: {what} ({label}); stderr tail:\n{tail}")


# ---------------------------------------------------------------- PostgreSQL


def pg_conninfo(database: str = "postgres") -> str:
    return f"host=127.0.0.1 port=5432 user=postgres dbname={database}"


def pg_admin(statement: str) -> None:
    with psycopg.connect(pg_conninfo(), autocommit=True) as conn:
        conn.execute(statement)


def create_database(name: str) -> str:
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


def copy_rows(database: str, rows: list[tuple[Any, ...]]) -> None:
    """A new text table, then psycopg 3 COPY of every row, in one transaction."""
    with psycopg.connect(pg_conninfo(database)) as conn:
        conn.execute(f"CREATE TABLE floor ({', '.join(f'{c} text' for c in COLUMNS)})")
        statement = f"COPY floor ({', '.join(COLUMNS)}) FROM STDIN"
        with conn.cursor() as cur, cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)


def floor_once(bench: Bench, read: Reader) -> tuple[Run, Run]:
    """Read the valid file, then COPY its rows into a fresh database (CREATE DATABASE untimed).

    In-process: no interpreter start, reader already imported. Returns (parse only, parse+COPY).
    """
    database = create_database(bench.fresh("floor"))
    try:
        start = time.perf_counter()
        rows = read(bench.path("valid"))
        parsed = time.perf_counter() - start
        copy_rows(database, rows)
        total = time.perf_counter() - start
    finally:
        drop_database(database)
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
    database = create_database(bench.fresh("wh"))
    return Warehouse(kind, PG_URL.format(db=database), database)


def import_once(bench: Bench, key: str, kind: str) -> Run:
    """``review-ingest import`` into a fresh warehouse and data folder."""
    label = bench.fresh(f"import_{key}_{kind}")
    data_dir = bench.tmp / label
    warehouse = new_warehouse(bench, kind)
    env = bench.env(data_dir)
    env["REVIEW_INGEST_MERCHANTS"] = str(write_merchants(bench.tmp / "merchants.yaml", (MERCHANT,)))
    env["REVIEW_INGEST_WAREHOUSE_URL"] = warehouse.url
    cmd = [str(VENV_BIN / "review-ingest"), "import", str(bench.path(key))]
    cmd += ["--merchant", MERCHANT, "--json"]
    try:
        run = run_timed(cmd, env, bench.logs, label)
    finally:
        if warehouse.database:
            drop_database(warehouse.database)
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
    env = bench.env(data_dir)
    env["REVIEW_INGEST_MERCHANTS"] = str(write_merchants(bench.tmp / "merchants.yaml", (MERCHANT,)))
    env["REVIEW_INGEST_WAREHOUSE_URL"] = warehouse.url
    cmd = [str(VENV_BIN / "python"), str(IN_PROCESS), str(bench.path("valid")), MERCHANT]
    try:
        run = run_timed(cmd, env, bench.logs, label)
    finally:
        drop_database(warehouse.database or "")
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
    env = bench.env(data_dir)
    env.update(
        AIRFLOW_HOME=str(bench.tmp / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        REVIEW_INGEST_MERCHANTS=str(write_merchants(bench.tmp / "dag.yaml", DAG_MERCHANTS)),
        REVIEW_INGEST_MIN_FILE_AGE_SECONDS="0",
        AIRFLOW_CONN_REVIEW_WAREHOUSE=json.dumps(
            {"conn_type": "sqlite", "host": str(data_dir / "warehouse.db")}
        ),
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


@dataclass(frozen=True)
class Ratio:
    """A figure against its target; ``paired`` is the median of the per-round ratios."""

    name: str
    value: float
    target: float
    unit: str = "x"
    below: bool = False  # strictly below the target (else at most)
    paired: float | None = None

    @property
    def met(self) -> bool:
        return self.value < self.target if self.below else self.value <= self.target

    def as_dict(self) -> dict[str, Any]:
        op = "<" if self.below else "<="
        return {
            "value": round(self.value, 3),
            "paired_median": None if self.paired is None else round(self.paired, 3),
            "target": f"{op} {self.target:g}{self.unit}",
            "met": self.met,
            "value_over_target": round(self.value / self.target, 2),
        }


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


def print_verdicts(verdicts: list[Ratio]) -> None:
    """Each target: the value, the paired median when there is one, the target, the verdict."""
    print(f"\n{'target':<60} {'value':>9} {'paired':>8} {'target':>10}  verdict")
    for r in verdicts:
        d = r.as_dict()
        paired = "-" if r.paired is None else f"{r.paired:.3f}"
        verdict = "met" if r.met else f"MISSED ({d['value_over_target']}x the target)"
        print(f"{r.name:<60} {d['value']:>9.3f} {paired:>8} {d['target']:>10}  {verdict}")


def git_state() -> dict[str, str]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": git("status", "--porcelain", "plugins", "dags"),
    }


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


def write_json(out: Path, body: Any) -> None:
    """``body`` as indented JSON in ``out``, its folder made if need be."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


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
    """Every stage, the table, ``args.out``; the verdicts (bench_scale.py shows them with the
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
