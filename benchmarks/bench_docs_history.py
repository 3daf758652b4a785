"""Data Docs as the history grows: a batch's page build and a run's index build against the
number of validation results already stored (``<data>/gx/``, never purged: the reports link
to their pages).

For each ``--sizes`` count, a fresh data folder gets one real validation of a 20-row file, then
that many earlier results and their pages (copies under other run names, as earlier days'
imports leave them), the latest ``DOCS_INDEX_LIMIT`` of them built as batches build them
(untimed), then a new validation. Timed, in this process:

- its page as a batch builds it (``Validation.build_docs(..., index=False)``), and the same
  page by Great Expectations' ``build_data_docs(resource_identifiers=[...])``, which lists every
  stored result first (the pipeline before ``d53fcc3``);
- the index as ``build_data_docs_index`` makes it once per DAG run (``Validation.build_index``:
  the latest pages), and by Great Expectations' own index builder, which lists every stored
  result and every page (before this change).

    .venv/bin/python -m benchmarks.bench_docs_history                     # ~1 min
    .venv/bin/python -m benchmarks.bench_docs_history --sizes 0,1000,10000,30000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import OUT_DIR, write_json
from review_ingest.core.merchants import Merchant
from review_ingest.core.reading import read_file
from review_ingest.core.template_columns import TEMPLATES
from review_ingest.pipeline.ingest import Ingest
from review_ingest.quality.validation import DOCS_INDEX_LIMIT, FileRows, Validation
from tests.kit.factories import TEMPLATE, paris_today, valid_rows, write_rows

MERCHANT = Merchant("history", template=TEMPLATE)
ROWS = 20


def small_file(folder: Path) -> list[Any]:
    path = folder / "orders.csv"
    rng = random.Random(7)
    write_rows(path, valid_rows("H-", paris_today(), rng), None, ROWS)
    return read_file(path.read_bytes(), TEMPLATES[MERCHANT.template]).records


def validate(validation: Validation, records: list[Any], label: str) -> Any:
    rows = FileRows(label, "orders.csv", records)
    template = TEMPLATES[MERCHANT.template]
    checks = validation.check_files([rows], template, MERCHANT, dt.date.today(), label)
    return checks[label].result_id


def add_history(data_dir: Path, count: int) -> list[Any]:
    """``count`` earlier results and their pages, as earlier days' imports left them (copies of
    the seed's under other run names, older than it); their identifiers, newest first."""
    from great_expectations.data_context.types.resource_identifiers import (
        ValidationResultIdentifier,
    )

    source = next((data_dir / "gx").rglob("*.json"))
    suite, _, _, name = source.relative_to(data_dir / "gx").parts
    page = next((data_dir / "data_docs" / "validations").rglob("*.html")).read_bytes()
    ids = []
    for number in range(count):
        stamp = f"20250101T{number // 3600 % 24:02d}{number // 60 % 60:02d}{number % 60:02d}"
        key = (suite, f"earlier-{number:06d}", f"{stamp}.{number:06d}Z", name.removesuffix(".json"))
        result = data_dir.joinpath("gx", *key[:3], name)
        result.parent.mkdir(parents=True)
        shutil.copyfile(source, result)
        html = data_dir.joinpath("data_docs", "validations", *key[:3], f"{key[3]}.html")
        html.parent.mkdir(parents=True)
        html.write_bytes(page)
        ids.append(ValidationResultIdentifier.from_tuple(key))
    return ids[::-1]


def timed(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def one_size(tmp: Path, count: int) -> dict[str, Any]:
    data_dir = tmp / f"history_{count}"
    validation = Ingest(data_dir).validation
    records = small_file(tmp)
    validation.build_docs([validate(validation, records, "seed")], index=True)
    history = add_history(data_dir, count)
    # Untimed: the latest pages, as the batches of earlier runs left them.
    validation.build_docs(history[:DOCS_INDEX_LIMIT], index=False)
    new = validate(validation, records, "new")
    page = timed(lambda: validation.build_docs([new], index=False))
    site_builder = timed(
        lambda: validation.context.build_data_docs(resource_identifiers=[new], build_index=False)
    )
    index = timed(validation.build_index)
    index_builder = timed(lambda: validation._site().site_index_builder.build(build_index=True))
    shutil.rmtree(data_dir)
    return {
        "stored_results": count + 2,
        "page_build_s": round(page, 3),
        "site_builder_page_build_s": round(site_builder, 3),
        "index_build_s": round(index, 3),
        "index_builder_s": round(index_builder, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,1000,10000")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "results_docs_history.json")
    args = parser.parse_args()
    start = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_docs_") as tmp:
        for count in (int(size) for size in args.sizes.split(",")):
            results.append(one_size(Path(tmp), count))
            print(json.dumps(results[-1]), flush=True)
    body = {"results": results, "seconds": round(time.perf_counter() - start, 1)}
    write_json(args.out, body)
    print(f"results: {args.out} ({body['seconds']} s)")


if __name__ == "__main__":
    main()
