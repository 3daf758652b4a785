"""Peak memory of the delivery events run (issue 26 point 6): a file is read as a stream.

Each case runs ``request_events.load_event_files`` (the task of ``review_request_events``) in a
fresh interpreter on a PostgreSQL database of its own, and reports its wall time and peak RSS
(its own ``VmHWM``), against the floor of an interpreter that only imported the same modules:

- ``garbage``: 100 MB of random bytes, its first 2 MB without a newline (over the line cap):
  rejected, every line an error, the first 1,000 in the report;
- ``events``: a file of valid events of the same size (each of ``--requests`` requests sent,
  delivered, opened and clicked): loaded in chunks of 5,000 in one transaction.

    .venv/bin/python -m benchmarks.bench_events_memory                # ~2 min
    .venv/bin/python -m benchmarks.bench_events_memory --mb 20 --only garbage

Target: peak RSS under 300 MB in both. Run from the repository root; needs PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.measure import (
    OUT_DIR,
    Ratio,
    expect,
    git_state,
    print_verdicts,
    run_timed,
    write_json,
)
from review_ingest.store import warehouse
from tests.kit import postgres
from tests.kit.event_files import MB, event, seed_requests, write_garbage

TARGET_MB = 300.0
LIFE = ("sent", "delivered", "opened", "clicked")
#: The child's own peak RSS (``VmHWM``, reset by ``exec``): ``ru_maxrss`` of a forked child
#: counts the parent's memory at the fork, and the parent holds the requests it seeded.
PEAK = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"
IMPORTS = (
    "import json\n"
    "import review_ingest.tasks.request_events, review_ingest.store.events\n"
    f"print(json.dumps({{'peak_kb': {PEAK}}}))\n"
)
RUN = (
    "import json, sys\n"
    "from review_ingest.tasks.request_events import load_event_files\n"
    "summary = load_event_files(sys.argv[1])\n"
    f"print(json.dumps({{'peak_kb': {PEAK}, 'summary': summary}}))\n"
)


def write_events(path: Path, size: int, request_ids: list[int]) -> int:
    """Valid events up to ``size`` bytes: requests in turn, each sent, delivered, opened and
    clicked (then again from the first request, opened: its events spread over chunks); the
    number of events."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        while out.tell() < size:
            request_id = request_ids[(count // len(LIFE)) % len(request_ids)]
            step = count % len(LIFE) if count < len(LIFE) * len(request_ids) else 2
            kind = LIFE[step]
            out.write(json.dumps(event(f"ev-{count:09d}", request_id, kind, step)) + "\n")
            count += 1
    return count


def measure(case: str, root: Path, server: str, megabytes: int, requests: int) -> dict:
    """One case in a child interpreter: its seconds, peak RSS and summary."""
    with postgres.new_database(server, "bench_events") as url:
        data = root / case / "data"
        incoming = data / "events" / "incoming"
        incoming.mkdir(parents=True)
        engine = warehouse.engine_for(url)
        warehouse.migrate(engine)
        target = incoming / f"{case}.jsonl"
        if case == "garbage":
            lines = write_garbage(target, size=megabytes * MB)
        else:
            refs = [f"B-{i:06d}" for i in range(requests)]
            ids = seed_requests(engine, url, "bench", refs, "bench@example.org")
            lines = write_events(target, megabytes * MB, list(ids.values()))
        engine.dispose()
        old = time.time() - 600
        os.utime(target, (old, old))
        env = {
            **os.environ,
            "REVIEW_INGEST_DATA_DIR": str(data),
            "REVIEW_INGEST_MIN_FILE_AGE_SECONDS": "0",
        }
        logs = root / case
        run = run_timed([sys.executable, "-c", RUN, url], env, logs, case)
        expect(run.returncode == 0, "the run failed", logs, case)
        told = json.loads((logs / f"{case}.out").read_text().splitlines()[-1])
    return {
        "case": case,
        "megabytes": megabytes,
        "lines": lines,
        "seconds": round(run.seconds, 2),
        "max_rss_mb": round(told["peak_kb"] / 1024, 1),
        "summary": told["summary"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="size of each file (100)")
    parser.add_argument("--requests", type=int, default=250_000, help="of 'events' (250,000)")
    parser.add_argument("--only", choices=("garbage", "events"))
    args = parser.parse_args()
    server = postgres.server_url()
    cases = [args.only] if args.only else ["garbage", "events"]
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        root = Path(tmp)
        floor = run_timed([sys.executable, "-c", IMPORTS], dict(os.environ), root, "floor")
        floor_mb = json.loads((root / "floor.out").read_text())["peak_kb"] / 1024
        results = [measure(case, root, server, args.mb, args.requests) for case in cases]
    print(f"\n{'case':<10} {'MB':>5} {'lines':>9} {'seconds':>8} {'peak RSS MB':>12}  summary")
    print(f"{'floor':<10} {'':>5} {'':>9} {floor.seconds:>8.2f} {floor_mb:>12.1f}  imports")
    for r in results:
        s = r["summary"]
        told = f"{s['processed']} processed, {s['rejected']} rejected, {s['events_loaded']} loaded"
        print(
            f"{r['case']:<10} {r['megabytes']:>5} {r['lines']:>9} {r['seconds']:>8.2f} "
            f"{r['max_rss_mb']:>12.1f}  {told}, {s['error_lines']} error lines"
        )
    verdicts = [
        Ratio(f"peak RSS of the {r['case']} file (MB)", r["max_rss_mb"], TARGET_MB, " MB", True)
        for r in results
    ]
    print_verdicts(verdicts)
    write_json(
        OUT_DIR / "results_events_memory.json",
        {
            **git_state(),
            "floor_rss_mb": round(floor_mb, 1),
            "results": results,
            "verdicts": {v.name: v.as_dict() for v in verdicts},
        },
    )


if __name__ == "__main__":
    main()
