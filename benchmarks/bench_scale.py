"""Issue 9 "Speed at platform scale": every target measured by one command, with its verdict.

Runs, one after the other (they share 2 cores: never at the same time):

1. ``bench_ingest``: targets 1-4 (200-file DAG run against 1 file, the 5 MB import against
   the parse+COPY floor in-process and as a command, ``check`` against ``import
   great_expectations``, peak RSS of the all-bad import);
2. ``bench_sftp``: target 5 (1,000 files of 100 merchants through ``orders_sftp_ingest`` on
   a loopback sshd, logins counted);
3. ``bench_warehouse``: target 6 (proofs lookup and file load at 0, 1M and 10M rows).

Then prints every verdict together, each part's duration and the total, and writes
``benchmarks/out/results_scale.json`` (each part also writes its own JSON). Before and after
each part it times a fixed pure-Python loop (``CPU_REFERENCE``, best of 3): the machines are
shared, and one ran the same code 2-3x slower than another, so the reference says how far a
run's absolute figures (ms per file) can be compared with another's.

    .venv/bin/python -m benchmarks.bench_scale            # 41.5 min measured on 2 busy cores
    .venv/bin/python -m benchmarks.bench_scale --quick    # smaller sizes: 5.8 min measured

Run from the repository root. Needs what each part needs: PostgreSQL at 127.0.0.1:5432
(postgres, trust), root and OpenSSH for the SFTP part, about 5 GB of free disk for 10M rows
(dropped at the end).
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import bench_ingest, bench_sftp, bench_warehouse
from benchmarks.measure import OUT_DIR, Ratio, git_state, print_verdicts, write_json

INGEST_REPEAT = 3
SFTP_MERCHANTS, SFTP_FILES = 100, 10
WAREHOUSE_SIZES = [0, 1_000_000, 10_000_000]
QUICK_WAREHOUSE_SIZES = [0, 100_000, 1_000_000]
#: The machine's speed at one moment: seconds of a fixed loop, in a process of its own.
CPU_REFERENCE = (
    "import time; t = time.perf_counter(); sum(range(10**7)); print(time.perf_counter() - t)"
)


def cpu_reference() -> float:
    """Best of 3 runs of ``CPU_REFERENCE`` (about 0.2-0.3 s each on these machines)."""
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", CPU_REFERENCE], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(3)
    ]
    return min(runs)


def run_ingest(quick: bool, keep: bool) -> list[Ratio]:
    argv = ["--repeat", "1", "--quick"] if quick else ["--repeat", str(INGEST_REPEAT)]
    return bench_ingest.run(bench_ingest.parse_args([*argv, "--keep"] if keep else argv))


def run_sftp(quick: bool, keep: bool) -> list[Ratio]:
    merchants = SFTP_MERCHANTS // 10 if quick else SFTP_MERCHANTS
    result = bench_sftp.run(merchants, SFTP_FILES, keep)
    found = bench_sftp.verdicts(result)
    bench_sftp.report(result, found, OUT_DIR / "results_sftp.json")
    return found


def run_warehouse(quick: bool, keep: bool) -> list[Ratio]:
    sizes = QUICK_WAREHOUSE_SIZES if quick else WAREHOUSE_SIZES
    results = bench_warehouse.run(sizes, repeat=3 if quick else 5, loads=1 if quick else 3)
    found = bench_warehouse.verdicts(results)
    bench_warehouse.report(results, found, OUT_DIR / "results_warehouse.json")
    return found


PARTS: dict[str, Callable[[bool, bool], list[Ratio]]] = {
    "ingest (targets 1-4)": run_ingest,
    "sftp (target 5)": run_sftp,
    "warehouse (target 6)": run_warehouse,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one round")
    parser.add_argument("--only", choices=list(PARTS), action="append", help="run only these")
    parser.add_argument("--keep", action="store_true", help="keep scratch folders and logs")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "results_scale.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    verdicts: dict[str, list[Ratio]] = {}
    durations: dict[str, float] = {}
    references = [cpu_reference()]
    for part in args.only or list(PARTS):
        print(f"\n=== {part} ===", flush=True)
        began = time.perf_counter()
        verdicts[part] = PARTS[part](args.quick, args.keep)
        durations[part] = time.perf_counter() - began
        references.append(cpu_reference())
    total = time.perf_counter() - start

    print("\n=== issue 9: every target ===")
    print_verdicts([r for found in verdicts.values() for r in found])
    for part, seconds in durations.items():
        print(f"{part:<24} {seconds / 60:6.1f} min")
    print(f"{'total':<24} {total / 60:6.1f} min")
    shown = ", ".join(f"{seconds:.3f}" for seconds in references)
    print(f"CPU reference, s (before the first part, then after each): {shown}")
    summary = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "git": git_state(),
        "parts": {
            part: {
                "minutes": round(durations[part] / 60, 1),
                "ratios": {r.name: r.as_dict() for r in found},
            }
            for part, found in verdicts.items()
        },
        "total_minutes": round(total / 60, 1),
        "cpu_reference_s": [round(seconds, 3) for seconds in references],
    }
    write_json(args.out, summary)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
