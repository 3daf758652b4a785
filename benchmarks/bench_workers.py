"""Celery workers with and without ``review_ingest_celery.CELERY_CONFIG``: what a task pays for
importing Great Expectations, pandas and the pipeline when its worker has not loaded them.

Each round runs ``python -m scripts.distributed_run`` (API server, scheduler, DAG processor and two
Celery workers of two slots each on this machine, PostgreSQL and Redis; ``orders_upload_ingest``
over ``--files`` small files in batches of 10) twice, one after the other: as deployed (the
workers preload the libraries) and with ``--without-preload`` (Airflow's own Celery settings:
each ``ingest_batch`` task imports them). It reports the run's wall time (queued to finished)
and the ``ingest_batch`` tasks' durations, and the ratios, per round and as ratios of medians.

    .venv/bin/python -m benchmarks.bench_workers                 # 2 rounds, ~6 min
    .venv/bin/python -m benchmarks.bench_workers --rounds 3 --files 240

Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks.measure import OUT_DIR, write_json
from tests.kit.paths import REPO

OUT = OUT_DIR / "results_workers.json"
KINDS = {"preload": [], "without preload": ["--without-preload"]}


def one_run(files: int, extra: list[str]) -> dict[str, Any]:
    """One distributed run; its JSON summary (the script's last line)."""
    cmd = [
        sys.executable,
        "-m",
        "scripts.distributed_run",
        "--files",
        str(files),
        "--merchants",
        "10",
    ]
    cmd += extra
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    if proc.returncode != 0 or not summary.get("ok"):
        raise SystemExit(f"distributed_run failed: {summary.get('problems')}\n{proc.stdout}")
    return summary


def figures(summary: dict[str, Any]) -> dict[str, float]:
    return {
        "wall_s": summary["wall_seconds"],
        "task_median_s": summary["task_seconds"]["median"],
        "task_total_s": summary["task_seconds"]["total"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--files", type=int, default=120)
    args = parser.parse_args(argv)
    started = time.monotonic()
    rounds: list[dict[str, dict[str, float]]] = []
    for number in range(1, args.rounds + 1):
        rounds.append({kind: figures(one_run(args.files, extra)) for kind, extra in KINDS.items()})
        print(f"round {number}: {json.dumps(rounds[-1])}", flush=True)
    results: dict[str, Any] = {"files": args.files, "rounds": rounds, "ratios": {}}
    print(f"\n{'figure':<16}{'preload':>10}{'without':>10}{'ratio':>8}{'paired':>8}")
    for key in ("wall_s", "task_median_s", "task_total_s"):
        with_ = statistics.median(r["preload"][key] for r in rounds)
        without = statistics.median(r["without preload"][key] for r in rounds)
        paired = statistics.median(r["without preload"][key] / r["preload"][key] for r in rounds)
        results["ratios"][key] = {
            "preload": with_,
            "without": without,
            "ratio": without / with_,
            "paired": paired,
        }
        print(f"{key:<16}{with_:>10.2f}{without:>10.2f}{without / with_:>7.2f}x{paired:>7.2f}x")
    minutes = (time.monotonic() - started) / 60
    results["minutes"] = round(minutes, 1)
    write_json(OUT, results)
    print(f"\nbench_workers took {minutes:.1f} min; results: {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
