"""Signs of a filtered file (``review_ingest.core.warnings``): false alarms and detection.

A seeded population of steady merchants (``tests.kit.order_history``: weekday and seasonal
swings, promotions, a few percent of noise, cancelled orders, online orders shipped over days,
stores shut on Sundays, daily, working-day and weekly senders, files of a few hundred to a few
thousand rows) sends its files day after day; each file is compared with the merchant's files
before it as the pipeline compares them. Printed:

- the false-alarm rate: steady files flagged by any warning, out of the files compared (once a
  merchant has 4 files), with the count of each code; target at most 1 %;
- the detection rate of each filter, on every file from the 9th on, filtered in each way that
  applies (filtered files never join the history): half the orders, the unhappy customers
  (10 % of the orders, taken anywhere: nothing in a file tells them), one shop (stores), one
  language other than the default; overall and by kind of order references;
- the same false-alarm rate with ``volume_drop`` as first specified (no same-weekday exception).

    .venv/bin/python -m benchmarks.bench_warnings                  # 200 merchants, 90 days: ~3 min
    .venv/bin/python -m benchmarks.bench_warnings --merchants 50 --days 60

Run from the repository root; writes ``benchmarks/out/results_warnings.json``. No server.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.measure import git_state, write_json
from tests.kit.order_history import Measured, measure

OUT = Path(__file__).resolve().parent / "out" / "results_warnings.json"
TARGET = 0.01


def report(title: str, found: Measured) -> dict[str, object]:
    """Print one measure; return it as JSON."""
    print(f"\n{title}")
    verdict = "met" if found.false_alarm_rate <= TARGET else "MISSED"
    print(
        f"  false alarms: {found.false_alarms} of {found.steady} steady files = "
        f"{found.false_alarm_rate:.2%} (target <= {TARGET:.0%}: {verdict}); by code: "
        f"{dict(sorted(found.false_by_code.items())) or 'none'}"
    )
    for kind in sorted(found.filtered):
        indent = "      " if ":" in kind else "  "
        print(
            f"{indent}detected {kind}: {found.detected.get(kind, 0)} of {found.filtered[kind]}"
            f" = {found.detection_rate(kind):.1%}"
        )
    return {
        "steady_files": found.steady,
        "false_alarms": found.false_alarms,
        "false_alarm_rate": found.false_alarm_rate,
        "false_alarms_by_code": found.false_by_code,
        "detection": {
            kind: {"filtered": found.filtered[kind], "detected": found.detected.get(kind, 0)}
            for kind in sorted(found.filtered)
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merchants", type=int, default=200)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=20488)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(f"{args.merchants} steady merchants, {args.days} days, seed {args.seed}")
    results = {
        "as_built": report(
            "as built", measure(args.merchants, args.days, args.seed, same_weekday=True)
        ),
        "volume_drop_without_weekday": report(
            "volume_drop without its same-weekday exception (the first specification)",
            measure(args.merchants, args.days, args.seed, same_weekday=False),
        ),
    }
    seconds = time.perf_counter() - started
    write_json(OUT, {**vars(args), **git_state(), "seconds": seconds, **results})
    print(f"\nbench_warnings took {seconds:.0f} s; {OUT.relative_to(Path.cwd())}")
    return 0 if results["as_built"]["false_alarm_rate"] <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
