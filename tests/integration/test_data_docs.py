"""Data Docs built by several processes at once (spawned workers, real Great Expectations):
workers building into one folder at once leave a complete site, and a build waits while
another process builds."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from review_ingest.pipeline.ingest import Ingest
from review_ingest.quality import data_docs
from tests.unit.test_data_docs import assert_offline, pages_of, with_bad_row

# --- several workers at once -------------------------------------------------------------


def _worker_batches(data_dir: str, worker: int, barrier) -> list[str]:
    """One worker's batches, started when every worker is ready: each checks a file and builds
    its docs, so that the builds of the workers overlap in every way."""
    ingest = Ingest(data_dir=Path(data_dir))
    pages = []
    barrier.wait(timeout=300)
    for batch, template in enumerate(("website", "store", "website_products")):
        data = with_bad_row(template, f"BAD-{worker}").encode()
        name = f"w{worker}-{batch}.csv"
        pages.append(ingest.check(data, name, template).data_docs)
        ingest.finish()
    return pages


def test_workers_building_into_one_folder_at_once_leave_a_complete_site(tmp_path):
    workers = 3
    spawn = multiprocessing.get_context("spawn")
    with spawn.Manager() as manager:
        barrier = manager.Barrier(workers)
        with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
            futures = [
                pool.submit(_worker_batches, str(tmp_path), n, barrier) for n in range(workers)
            ]
            pages = [page for f in futures for page in f.result(timeout=600)]

    docs = tmp_path / "data_docs"
    assert len(set(pages)) == 3 * workers
    index = (docs / "index.html").read_text(encoding="utf-8")
    for page in pages:
        assert page in index, f"the index misses {page}"
        assert (docs / page).is_file()
    assert len(pages_of(docs)) == 1 + 3 * workers
    for page in pages_of(docs):
        assert_offline(docs, page)
    assert not list(docs.rglob("*.tmp")), "a temporary file was left"


def _build_when_ready(data_dir: str, ready) -> str:
    """Check a file, say so, then build its docs."""
    ingest = Ingest(data_dir=Path(data_dir))
    page = ingest.check(with_bad_row("website", "BAD-1").encode(), "w.csv", "website").data_docs
    ready.set()
    ingest.finish()
    return page


def test_a_build_waits_while_another_process_builds(tmp_path):
    docs = tmp_path / "data_docs"
    spawn = multiprocessing.get_context("spawn")
    with spawn.Manager() as manager, ProcessPoolExecutor(1, mp_context=spawn) as pool:
        ready = manager.Event()
        with data_docs.build_lock(docs):
            future = pool.submit(_build_when_ready, str(tmp_path), ready)
            assert ready.wait(timeout=300), "the worker did not get to its build"
            with pytest.raises(TimeoutError):
                future.result(timeout=3)
            assert not (docs / "index.html").exists()
        page = future.result(timeout=300)
    assert page in (docs / "index.html").read_text(encoding="utf-8")
    assert_offline(docs, docs / page)
