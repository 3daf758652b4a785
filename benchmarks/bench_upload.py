"""How fast and how lean the uploads API checks a 5 MB file (issue 25 point 6).

A real ``airflow api-server`` with the plugin (the UI tests' server, ``tests/kit/api_server.py``,
over a warehouse holding their real imports) gets ``POST /review-ingest/api/uploads`` (contract
section 12) of valid ``website_products`` files just under 5 MB, with a real Bearer token:

(d) ``--checks`` checks in a row on the fresh server: the RSS of its process tree after the
    first and after the last;
(a, b) ``--repeat`` rounds, after a warm-up, of the in-process work of ``review-ingest check``
    on bench_ingest's valid 5 MB file (``cli.main`` in this process) and of the API check of the
    same file (client-side wall time); ``review-ingest check`` as a command too (bench_ingest's
    ``check_once``), for context;
(c) the other pages and API routes, ``2 x --repeat`` times each, idle and then while a thread
    posts 5 MB checks in a loop (only calls made wholly during a check count).

Prints a table with each target met or missed and writes ``out/results_upload.json``.

    .venv/bin/python -m benchmarks.bench_upload                 # about 2 min
    .venv/bin/python -m benchmarks.bench_upload --quick         # about 1 min
    .venv/bin/python -m benchmarks.bench_upload --repeat 9 --checks 40 --backend sqlite

Run from the repository root. With ``--backend postgres`` (the default) it needs PostgreSQL at
127.0.0.1:5432 (user postgres, trust: scripts/ensure_postgres.sh); its database is dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import itertools
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks.bench_ingest import Bench, check_once
from benchmarks.measure import OUT_DIR, Ratio, git_state, print_verdicts, write_json
from tests.kit import api_server, postgres
from tests.kit.factories import (
    BIG_FILE_BYTES,
    MB,
    TEMPLATE,
    paris_today,
    valid_rows,
    write_big_files,
    write_rows,
)

CHECK_TARGET = 1.5
PAGE_TARGET_MS = 300.0
RSS_TARGET_MB = 150.0
#: A merchant of the UI tests' merchants file whose template is the 5 MB files' one.
MERCHANT = "shop-products"
UPLOADS = "/review-ingest/api/uploads"
ROUTES = (
    "/review-ingest/overview",
    "/review-ingest/imports",
    "/review-ingest/requests",
    "/review-ingest/api/imports",
    "/review-ingest/api/requests",
    "/review-ingest/import",
)
#: Other valid 5 MB files besides bench_ingest's, for the checks in a row and the load.
VARIANTS = 3
#: The longest the pages are asked for while checks run before the benchmark gives up.
LOADED_SECONDS = 600.0
HTTP_TIMEOUT = 600.0


# ---------------------------------------------------------------- files


def write_files(folder: Path) -> tuple[dict[str, Any], list[Path]]:
    """bench_ingest's 5 MB files, and the valid one followed by ``VARIANTS`` other valid ones."""
    files = write_big_files(folder)
    paths = [Path(files["valid"]["path"])]
    for number in range(VARIANTS):
        path = folder / f"orders_variant_{number}.csv"
        rows = valid_rows(f"V{number}-", paris_today(), random.Random(f"upload-{number}"))
        write_rows(path, rows, BIG_FILE_BYTES, None)
        paths.append(path)
    return files, paths


# ---------------------------------------------------------------- the server


@contextlib.contextmanager
def warehouse(root: Path, backend: str) -> Iterator[str]:
    """An empty warehouse: a PostgreSQL database (dropped after) or a SQLite file."""
    if backend == "sqlite":
        folder = root / "warehouse"
        folder.mkdir()
        yield f"sqlite:///{folder / 'warehouse.db'}"
        return
    with postgres.new_database(postgres.server_url(), "bench_upload") as url:
        yield url


def start_server(root: Path, backend: str, warehouse_url: str) -> api_server.UiServer:
    """The UI tests' imports in the warehouse, and a started api-server over them."""
    data_dir, merchants_file, made = api_server.build_data(root, warehouse_url)
    server = api_server.new_server(root, backend, warehouse_url, data_dir, merchants_file, made)
    t = time.monotonic()
    server.start()
    print(f"api-server ready in {time.monotonic() - t:.0f} s", file=sys.stderr, flush=True)
    return server


def server_process() -> psutil.Process:
    """The ``airflow api-server`` this process started: its only child that leads a session
    of its own (its process title is Airflow's, so its command line may not say more)."""
    leaders = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getsid(child.pid) == child.pid and "airflow" in " ".join(child.cmdline()):
                leaders.append(child)
    if len(leaders) != 1:
        raise RuntimeError(f"not one api-server among this process's children: {leaders}")
    return leaders[0]


def tree_rss_mb(root: psutil.Process) -> dict[str, float]:
    """RSS of ``root`` and each of its descendants (pid and name -> MB), and their ``total``."""
    found: dict[str, float] = {}
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            found[f"{proc.pid} {proc.name()}"] = proc.memory_info().rss / MB
    return {**found, "total": sum(found.values())}


def client(server: api_server.UiServer) -> httpx.Client:
    """An HTTP client of the server, as admin with a Bearer token from ``POST /auth/token``."""
    headers = {"Authorization": f"Bearer {server.token(api_server.ADMIN)}"}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=HTTP_TIMEOUT)


def post_check(http: httpx.Client, path: Path, data: bytes) -> float:
    """``POST`` the file to the uploads API; the client-side wall time, once its answer is
    read and found to be an accepted check without errors."""
    form = {"merchant_id": MERCHANT, "send_now": "false"}
    start = time.perf_counter()
    response = http.post(UPLOADS, data=form, files={"file": (path.name, data, "text/csv")})
    seconds = time.perf_counter() - start
    if response.status_code != 201:
        raise RuntimeError(f"{UPLOADS}: HTTP {response.status_code}: {response.text[:300]}")
    report = response.json()["report"]
    if report["status"] != "accepted" or report["error_rows"]:
        raise RuntimeError(f"{path.name}: {report['status']}, {report['error_rows']} errors")
    return seconds


def get_ms(http: httpx.Client, route: str) -> tuple[float, float, float]:
    """``GET route``: its start and end (perf_counter) and its milliseconds; 200 or raise."""
    start = time.perf_counter()
    response = http.get(route)
    end = time.perf_counter()
    if response.status_code != 200:
        raise RuntimeError(f"{route}: HTTP {response.status_code}: {response.text[:300]}")
    return start, end, (end - start) * 1000


# ---------------------------------------------------------------- (a, b) one check


def check_in_process(path: Path) -> float:
    """``review-ingest check --json`` of the file, run by ``cli.main`` in this process (its
    report read and discarded); seconds."""
    from review_ingest import cli

    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = cli.main(check_argv(path))
    seconds = time.perf_counter() - start
    report = json.loads(out.getvalue())
    if code != 0 or report["error_rows"]:
        raise RuntimeError(f"in-process check: exit {code}, {report['error_rows']} error rows")
    return seconds


def check_argv(path: Path) -> list[str]:
    """The command line of ``review-ingest check`` of a 5 MB file, without the program."""
    return ["check", str(path), "--template", TEMPLATE, "--json"]


@dataclass
class Rounds:
    """The check's figures, round by round: in process, through the API, as a command."""

    in_process: list[float] = field(default_factory=list)
    api: list[float] = field(default_factory=list)
    command: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Each kind's median, min, max and runs."""
        return {name: spread(getattr(self, name)) for name in ("in_process", "api", "command")}


def measure_check(http: httpx.Client, bench: Bench, valid: Path, repeat: int) -> Rounds:
    """``repeat`` rounds after a warm-up of each: in process, API, command, close in time."""
    data = valid.read_bytes()
    check_in_process(valid)  # warm-up: this process's first imports, GX's context, the suites
    post_check(http, valid, data)
    rounds = Rounds()
    for number in range(repeat):
        rounds.in_process.append(check_in_process(valid))
        rounds.api.append(post_check(http, valid, data))
        rounds.command.append(check_once(bench, "valid").seconds)
        print(
            f"round {number + 1}: in process {rounds.in_process[-1]:.2f} s, "
            f"API {rounds.api[-1]:.2f} s, command {rounds.command[-1]:.2f} s",
            file=sys.stderr,
            flush=True,
        )
    return rounds


# ---------------------------------------------------------------- (c) pages under a check


@dataclass
class Loader:
    """A thread posting 5 MB checks in a loop until stopped; when each one ran."""

    http: httpx.Client
    files: list[tuple[Path, bytes]]
    stop: threading.Event = field(default_factory=threading.Event)
    spans: list[tuple[float, float]] = field(default_factory=list)
    error: BaseException | None = None

    def run(self) -> None:
        """Post the files in turn; keep the first error and stop."""
        try:
            for number in itertools.count():
                if self.stop.is_set():
                    return
                path, data = self.files[number % len(self.files)]
                start = time.perf_counter()
                post_check(self.http, path, data)
                self.spans.append((start, time.perf_counter()))
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def span_seconds(self) -> list[float]:
        """How long each check took, client side."""
        return [end - start for start, end in self.spans]

    def during(self, start: float, end: float) -> bool:
        """Whether ``[start, end]`` lies wholly within one check."""
        return any(s <= start and end <= e for s, e in self.spans)


@dataclass
class Calls:
    """Each route's calls: (start, end, ms)."""

    by_route: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)

    def add(self, route: str, call: tuple[float, float, float]) -> None:
        self.by_route.setdefault(route, []).append(call)

    def ms(self, route: str, loader: Loader | None = None) -> list[float]:
        """The route's milliseconds; with ``loader``, only of calls made wholly in a check."""
        calls = self.by_route.get(route, [])
        return [ms for s, e, ms in calls if loader is None or loader.during(s, e)]


def ask_idle(http: httpx.Client, samples: int) -> Calls:
    """Every route ``samples`` times, nothing else running (after one untimed call each)."""
    calls = Calls()
    for route in ROUTES:
        get_ms(http, route)
    for _ in range(samples):
        for route in ROUTES:
            calls.add(route, get_ms(http, route))
    return calls


def ask_loaded(http: httpx.Client, loader: Loader, samples: int) -> Calls:
    """Every route in turn while ``loader`` posts checks, until each has ``samples`` calls made
    wholly during a check (the spans of checks still running are known only once done)."""
    calls = Calls()
    deadline = time.monotonic() + LOADED_SECONDS
    while min(len(calls.ms(r, loader)) for r in ROUTES) < samples:
        if loader.error is not None:
            raise RuntimeError("the checks' thread failed") from loader.error
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {samples} calls a route during checks")
        for route in ROUTES:
            calls.add(route, get_ms(http, route))
    return calls


def measure_pages(
    server: api_server.UiServer, http: httpx.Client, paths: list[Path], samples: int
) -> list[dict[str, Any]]:
    """Each route idle, then while a thread posts 5 MB checks in a loop: median and max."""
    idle = ask_idle(http, samples)
    files = [(path, path.read_bytes()) for path in paths]
    with client(server) as loader_http:
        loader = Loader(loader_http, files)
        thread = threading.Thread(target=loader.run, name="checks", daemon=True)
        thread.start()
        try:
            time.sleep(1.0)  # the first check under way
            loaded = ask_loaded(http, loader, samples)
        finally:
            loader.stop.set()
            thread.join()
    return [route_figures(route, idle, loaded, loader) for route in ROUTES] + [
        {"route": UPLOADS, "checks_during": len(loader.spans), **spread(loader.span_seconds())}
    ]


def route_figures(route: str, idle: Calls, loaded: Calls, loader: Loader) -> dict[str, Any]:
    """One route: idle and during a check, median and max in ms, and the calls counted."""
    during = loaded.ms(route, loader)
    return {
        "route": route,
        "idle_median_ms": round(statistics.median(idle.ms(route)), 1),
        "idle_max_ms": round(max(idle.ms(route)), 1),
        "median_ms": round(statistics.median(during), 1),
        "max_ms": round(max(during), 1),
        "calls_during": len(during),
        "calls_outside": len(loaded.ms(route)) - len(during),
    }


# ---------------------------------------------------------------- (d) checks in a row


def measure_memory(
    http: httpx.Client, server: psutil.Process, paths: list[Path], checks: int
) -> dict[str, Any]:
    """``checks`` checks in a row on the fresh server, cycling over the files: the RSS of its
    process tree after each, and the checks' times."""
    before = tree_rss_mb(server)["total"]
    rss: list[dict[str, float]] = []
    seconds: list[float] = []
    for number in range(checks):
        path = paths[number % len(paths)]
        seconds.append(post_check(http, path, path.read_bytes()))
        rss.append(tree_rss_mb(server))
        print(
            f"check {number + 1}/{checks}: {seconds[-1]:.2f} s, RSS {rss[-1]['total']:.0f} MB",
            file=sys.stderr,
            flush=True,
        )
    totals = [r["total"] for r in rss]
    return {
        "checks": checks,
        "before_first_mb": round(before, 1),
        "after_first_mb": round(totals[0], 1),
        "after_last_mb": round(totals[-1], 1),
        "growth_mb": round(totals[-1] - totals[0], 1),
        "peak_mb": round(max(totals), 1),
        "after_each_mb": [round(t, 1) for t in totals],
        "processes_after_first": {k: round(v, 1) for k, v in rss[0].items()},
        "processes_after_last": {k: round(v, 1) for k, v in rss[-1].items()},
        "check_s": spread(seconds),
    }


# ---------------------------------------------------------------- verdicts and output


def spread(values: list[float]) -> dict[str, Any]:
    """Median, min and max of some seconds, and every value."""
    return {
        "median_s": round(statistics.median(values), 3),
        "min_s": round(min(values), 3),
        "max_s": round(max(values), 3),
        "runs_s": [round(v, 3) for v in values],
    }


def verdicts(rounds: Rounds, pages: list[dict[str, Any]], memory: dict[str, Any]) -> list[Ratio]:
    """The three targets: API check / in-process check, each route's median during a check,
    the RSS growth."""
    paired = statistics.median(b / a for a, b in zip(rounds.in_process, rounds.api, strict=True))
    ratio = statistics.median(rounds.api) / statistics.median(rounds.in_process)
    found = [Ratio("b. API check / in-process check", ratio, CHECK_TARGET, paired=paired)]
    for page in pages[:-1]:
        name = f"c. {page['route']} median during a check (ms)"
        found.append(Ratio(name, page["median_ms"], PAGE_TARGET_MS, " ms", below=True))
    name = f"d. RSS growth, check 1 to {memory['checks']} (MB)"
    found.append(Ratio(name, memory["growth_mb"], RSS_TARGET_MB, " MB", below=True))
    return found


def print_tables(rounds: Rounds, pages: list[dict[str, Any]], memory: dict[str, Any]) -> None:
    """The checks' times, the routes idle and during a check, the RSS."""
    print(f"\n{'check of the valid 5 MB file':<36} {'median s':>9} {'min s':>8} {'max s':>8}")
    for name, figures in rounds.as_dict().items():
        times = f"{figures['median_s']:>9.3f} {figures['min_s']:>8.3f} {figures['max_s']:>8.3f}"
        print(f"{name:<36} {times}")
    print("\n| route | idle median ms | idle max ms | during a check: median ms | max ms | n |")
    print("|---|---|---|---|---|---|")
    for p in pages[:-1]:
        print(
            f"| `{p['route']}` | {p['idle_median_ms']} | {p['idle_max_ms']} | "
            f"{p['median_ms']} | {p['max_ms']} | {p['calls_during']} |"
        )
    load = pages[-1]
    print(f"checks posted meanwhile: {load['checks_during']}, median {load['median_s']} s")
    print(
        f"\nRSS of the api-server's processes: {memory['before_first_mb']} MB before any check, "
        f"{memory['after_first_mb']} MB after check 1, "
        f"{memory['after_last_mb']} MB after check {memory['checks']} (peak {memory['peak_mb']}), "
        f"{memory['after_everything_mb']} MB at the end"
    )


def write_results(args: argparse.Namespace, files: dict[str, Any], body: dict[str, Any]) -> None:
    """The run's settings, its files, its figures and verdicts in ``args.out``."""
    meta = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_avg_at_end": os.getloadavg(),
        "python": sys.version.split()[0],
        "repeat": args.repeat,
        "checks": args.checks,
        "quick": args.quick,
        "backend": args.backend,
        "git": git_state(),
    }
    files = {k: {kk: vv for kk, vv in v.items() if kk != "path"} for k, v in files.items()}
    write_json(args.out, {"meta": meta, "files": files, **body})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options; ``--quick`` sets smaller ``--repeat`` and ``--checks``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed checks of each kind (median)")
    parser.add_argument("--checks", type=int, default=20, help="checks in a row for the RSS")
    parser.add_argument("--quick", action="store_true", help="--repeat 2 --checks 5")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "results_upload.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.checks = 2, 5
    return args


def measure(
    args: argparse.Namespace, root: Path, files: dict[str, Any], paths: list[Path]
) -> tuple[Rounds, list[dict[str, Any]], dict[str, Any]]:
    """Start the server; (d) on the fresh server, then (a, b), then (c)."""
    bench = Bench(root / "command", files, args.repeat, dag_repeat=0)
    bench.tmp.mkdir()
    os.environ["REVIEW_INGEST_DATA_DIR"] = str(root / "cli-data")  # the in-process check's
    with warehouse(root, args.backend) as warehouse_url:
        server = start_server(root / "server", args.backend, warehouse_url)
        try:
            with client(server) as http:
                tree = server_process()
                memory = measure_memory(http, tree, paths, args.checks)
                rounds = measure_check(http, bench, paths[0], args.repeat)
                pages = measure_pages(server, http, paths, 2 * args.repeat)
                memory["after_everything_mb"] = round(tree_rss_mb(tree)["total"], 1)
        finally:
            server.stop()
    return rounds, pages, memory


def main(argv: list[str] | None = None) -> int:
    """Write the files, measure, print the tables and verdicts, write the JSON."""
    args = parse_args(argv)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="bench_upload_"))
    try:
        files, paths = write_files(root)
        (root / "server").mkdir()
        rounds, pages, memory = measure(args, root, files, paths)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    found = verdicts(rounds, pages, memory)
    print_tables(rounds, pages, memory)
    print_verdicts(found)
    body = {
        "seconds": round(time.monotonic() - started, 1),
        "check": rounds.as_dict(),
        "routes": pages,
        "rss": memory,
        "ratios": {r.name: r.as_dict() for r in found},
    }
    write_results(args, files, body)
    print(f"\n{body['seconds']:.0f} s; results: {args.out}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
