"""One Great Expectations validation of a batch of small files, per template: its fixed cost.

Ten copies of the template's sample (a few rows each) go through ``Validation.check_files`` as
a batch does, in this process, after one untimed warm-up; the median of ``--repeat`` runs per
template. ``--suites DIR`` validates with other saved suites (for instance an earlier commit's
``include/expectations``, from ``git archive``), to compare two versions of them in one run:
the rounds alternate between the two. ``--without-memo`` compares with validations that compute
the expectations' configurations, metric ids and null masks anew each time they are read
(``gx_compat.memo`` and ``gx_compat.pandas_null_masks`` taken out).

    .venv/bin/python -m benchmarks.bench_validation                      # ~30 s
    .venv/bin/python -m benchmarks.bench_validation --suites /tmp/old/include/expectations
    .venv/bin/python -m benchmarks.bench_validation --without-memo

Run from the repository root.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from review_ingest.core.merchants import default_merchant
from review_ingest.core.reading import read_file
from review_ingest.core.template_columns import TEMPLATES
from review_ingest.quality import gx_compat
from review_ingest.quality.gx_compat import memo as gx_memo
from review_ingest.quality.gx_compat import pandas_null_masks
from review_ingest.quality.validation import FileRows, Validation
from review_ingest.settings import EXPECTATIONS_DIR
from review_ingest.sources import samples


@contextlib.contextmanager
def memo(on: bool) -> Iterator[None]:
    """Validations as they run (``on``), or without the memo patches."""
    if on:
        yield
        return
    with gx_compat.unpatched((gx_memo, pandas_null_masks)):
        yield


def timings(
    suites: dict[str, tuple[Path, bool]], repeat: int, files: int
) -> dict[str, dict[str, float]]:
    """Median seconds of a validation of ``files`` small files, per variant (suites folder,
    memo on) and template."""
    validations = {
        name: (Validation(None, None, suites_dir=folder), memo_on)
        for name, (folder, memo_on) in suites.items()
    }
    found: dict[str, dict[str, list[float]]] = {name: {} for name in suites}
    for template_id, template in TEMPLATES.items():
        data = samples.sample_path(template_id).read_bytes()
        records = read_file(data, template).records
        as_of = samples.latest_date(data.decode("utf-8"))
        merchant = default_merchant(template_id)
        batch = [FileRows(f"f{i}", f"f{i}.csv", records) for i in range(files)]
        for name, (validation, memo_on) in validations.items():
            with memo(memo_on):
                validation.check_files(batch, template, merchant, as_of, "warm-up")
            found[name][template_id] = []
        for _ in range(repeat):
            for name, (validation, memo_on) in validations.items():
                with memo(memo_on):
                    started = time.perf_counter()
                    validation.check_files(batch, template, merchant, as_of, "timed")
                    found[name][template_id].append(time.perf_counter() - started)
    return {
        name: {t: statistics.median(runs) for t, runs in per.items()} for name, per in found.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", type=Path, help="other saved suites to compare with")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--without-memo", action="store_true", help="compare with the memos off")
    args = parser.parse_args(argv)
    suites = {"current": (EXPECTATIONS_DIR, True)}
    if args.suites:
        suites["other"] = (args.suites, True)
    elif args.without_memo:
        suites["other"] = (EXPECTATIONS_DIR, False)
    medians = timings(suites, args.repeat, args.files)
    print(f"{'template':<18}" + "".join(f"{name:>10}" for name in suites))
    for template_id in TEMPLATES:
        row = "".join(f"{medians[name][template_id]:>9.3f}s" for name in suites)
        ratio = ""
        if "other" in suites:
            ratio = f"{medians['other'][template_id] / medians['current'][template_id]:>8.2f}x"
        print(f"{template_id:<18}{row}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
