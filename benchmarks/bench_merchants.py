"""Reading the merchants file as the platform grows: once per task, every task of the day.

Every ``collect_merchants``, upload batch and retention task reads the whole merchants file to
find its merchant(s), so a day of one task per merchant reads it once per merchant: the cost
of one read, times the merchants. For files of ``--sizes`` merchants (each with an ``sftp``
block, as the SFTP merchants are), the median of ``--repeat`` reads of each kind:

- ``pure-Python YAML``: ``read_merchants`` of a changed file with PyYAML's own loader, as
  before (``yaml.safe_load``);
- ``first read``: the same with libyaml's loader (``merchants.YAML_LOADER``);
- ``unchanged file``: ``read_merchants`` again, the file unchanged (a Celery task forked from a
  worker that read it when it started, ``review_ingest.tasks.preload``).

    .venv/bin/python -m benchmarks.bench_merchants                      # ~15 s
    .venv/bin/python -m benchmarks.bench_merchants --sizes 100,1000 --repeat 5

Run from the repository root.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from review_ingest.core import merchants
from tests.kit.factories import write_merchants


def write_file(path: Path, count: int) -> Path:
    """A merchants file of ``count`` merchants, each with an ``sftp`` block."""
    merchants = {
        f"m{number:05d}": {
            "template": "website_products",
            "timezone": "Europe/Paris",
            "default_delay": 5,
            "sftp": {"conn_id": f"m{number:05d}_sftp", "root": f"/srv/sftp/m{number:05d}"},
        }
        for number in range(count)
    }
    return write_merchants(path, merchants)


def median_seconds(read: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        read()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def measure(path: Path, count: int, repeat: int) -> dict[str, float]:
    text = path.read_text(encoding="utf-8")
    edits = iter(range(1_000_000))

    def changed_file(loader: type) -> Callable[[], object]:
        """``read_merchants`` of the file changed by a comment, with this YAML loader."""

        def read() -> object:
            path.write_text(f"{text}# edit {next(edits)}\n", encoding="utf-8")
            merchants.YAML_LOADER = loader
            try:
                return merchants.read_merchants(path)
            finally:
                merchants.YAML_LOADER = libyaml

        return read

    libyaml = merchants.YAML_LOADER
    read = merchants.read_merchants(path)
    assert len(read.merchants) == count and not read.problems, read.problems
    found = {
        "pure-Python YAML": median_seconds(changed_file(yaml.SafeLoader), repeat),
        "first read": median_seconds(changed_file(libyaml), repeat),
    }
    found["unchanged file"] = median_seconds(lambda: merchants.read_merchants(path), repeat)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="merchants per file")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    kinds = ("pure-Python YAML", "first read", "unchanged file")
    print(f"{'merchants':>10}" + "".join(f"{kind:>18}" for kind in kinds) + f"{'ratio':>10}")
    with tempfile.TemporaryDirectory() as folder:
        for count in (int(size) for size in args.sizes.split(",")):
            path = write_file(Path(folder) / f"merchants_{count}.yaml", count)
            found = measure(path, count, args.repeat)
            seconds = "".join(f"{found[kind]:>17.4f}s" for kind in kinds)
            ratio = found["pure-Python YAML"] / found["first read"]
            print(f"{count:>10,}{seconds}{ratio:>9.1f}x")
    print(f"bench_merchants took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
