"""Data Docs as the history grows: a batch's page build and a run's index build against the
number of validation results already stored (``<data>/gx/``, kept for
``REVIEW_INGEST_DOCS_RETENTION_DAYS``).

For each ``--sizes`` count of stored results (less up to 99, so that the new page fills a
history page), a fresh data folder gets one real validation of a 20-row file, then the earlier
results, their pages and their lines in the index's manifest (copies under other run names, as
earlier days' imports leave them), the index and history pages built once (untimed, as earlier
runs left them), then a new validation, the last of its manifest file: the timed index renders
``index.html`` and one full history page, the most a run that adds a page renders. Timed, in
this process:

- its page as a batch builds it (``Validation.build_docs(..., index=False)``), and the same
  page by Great Expectations' ``build_data_docs(resource_identifiers=[...])``, which lists every
  stored result first (the pipeline before ``d53fcc3``);
- the index as ``build_data_docs_index`` makes it once per DAG run (``Validation.build_index``,
  from the manifest: ``quality.docs_index``), the median of ``--repeat`` builds, each rendering
  that history page again; and by Great Expectations' own index builder, which lists every
  stored result and every page and reads the results it shows.

    .venv/bin/python -m benchmarks.bench_docs_history                     # ~1 min
    .venv/bin/python -m benchmarks.bench_docs_history --sizes 0,1000,10000,30000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import OUT_DIR, write_json
from review_ingest.core.merchants import Merchant
from review_ingest.core.reading import read_file
from review_ingest.core.template_columns import TEMPLATES
from review_ingest.pipeline.ingest import Ingest
from review_ingest.quality import docs_index
from review_ingest.quality.validation import FileRows, Validation
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


def add_history(data_dir: Path, count: int) -> None:
    """``count`` earlier results, their pages and their manifest lines, as earlier days'
    imports left them (copies of the seed's under other run names, older than it)."""
    docs = data_dir / "data_docs"
    source = next((data_dir / "gx").rglob("*.json"))
    suite, _, _, name = source.relative_to(data_dir / "gx").parts
    page = next((docs / "validations").rglob("*.html")).read_bytes()
    (seed,) = docs_index.read_manifest(docs)
    entries = []
    for number in range(count):
        stamp = f"20250101T{number // 3600 % 24:02d}{number // 60 % 60:02d}{number % 60:02d}"
        key = (suite, f"earlier-{number:06d}", f"{stamp}.{number:06d}Z", name.removesuffix(".json"))
        result = data_dir.joinpath("gx", *key[:3], name)
        result.parent.mkdir(parents=True)
        shutil.copyfile(source, result)
        html = docs.joinpath("validations", *key[:3], f"{key[3]}.html")
        html.parent.mkdir(parents=True)
        html.write_bytes(page)
        entries.append(docs_index.Entry(key, seed.success, seed.asset_name, seed.batch_spec))
    docs_index.append(docs, entries)


def timed(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def index_build(validation: Validation, docs: Path) -> float:
    """``build_index`` after a new page: the index and the newest history page rendered."""
    state = json.loads((docs / docs_index.STATE).read_text(encoding="utf-8"))
    state["pages"].pop(max(state["pages"]))  # as after a new page: rendered again
    (docs / docs_index.STATE).write_text(json.dumps(state), encoding="utf-8")
    return timed(validation.build_index)


def one_size(tmp: Path, size: int, repeat: int) -> dict[str, Any]:
    rows = docs_index.HISTORY_ROWS
    count = size - (size + 2) % rows if size + 2 >= rows else size
    data_dir = tmp / f"history_{count}"
    docs = data_dir / "data_docs"
    validation = Ingest(data_dir).validation
    records = small_file(tmp)
    validation.build_docs([validate(validation, records, "seed")], index=True)
    add_history(data_dir, count)
    validation.build_index()  # untimed: the history pages as earlier runs left them
    new = validate(validation, records, "new")
    page = timed(lambda: validation.build_docs([new], index=False))
    newest = max(docs_index.manifest_files(docs).items())
    assert count + 2 < rows or len(docs_index.read_file(newest[1])) == rows, newest
    site_builder = timed(
        lambda: validation.context.build_data_docs(resource_identifiers=[new], build_index=False)
    )
    index = statistics.median(index_build(validation, docs) for _ in range(repeat))
    history_page = docs / docs_index.history_page(newest[0])
    listed = history_page.read_text(encoding="utf-8").count("validations/")
    index_builder = timed(lambda: validation._site().site_index_builder.build(build_index=True))
    shutil.rmtree(data_dir)
    return {
        "stored_results": count + 2,
        "page_build_s": round(page, 3),
        "site_builder_page_build_s": round(site_builder, 3),
        "index_build_s": round(index, 3),
        "history_page_links": listed,
        "index_builder_s": round(index_builder, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,1000,10000")
    parser.add_argument("--repeat", type=int, default=3, help="index builds timed, median")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "results_docs_history.json")
    args = parser.parse_args()
    start = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_docs_") as tmp:
        for count in (int(size) for size in args.sizes.split(",")):
            results.append(one_size(Path(tmp), count, args.repeat))
            print(json.dumps(results[-1]), flush=True)
    body = {"results": results, "seconds": round(time.perf_counter() - start, 1)}
    write_json(args.out, body)
    print(f"results: {args.out} ({body['seconds']} s)")


if __name__ == "__main__":
    main()
