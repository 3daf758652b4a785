"""The Data Docs index made from the manifest of the pages built (``quality.docs_index``): every
page kept is listed on exactly one history page that the index links to, the index lists the
newest, a build renders again only the history pages that changed, and pages deleted by retention
are listed nowhere. First with a stand-in renderer (no Great Expectations), then with real
pages, real retention and Great Expectations' own renderer."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from review_ingest.privacy import retention
from review_ingest.quality import data_docs, docs_index
from review_ingest.quality.docs_index import Entry
from tests.unit.test_data_docs import assert_offline, run_batch
from tests.unit.test_docs_retention import age

START = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
LINK = re.compile(r'href="([^"]+)"')


def entry(number: int) -> Entry:
    """The page of the ``number``-th validation, a minute after the one before."""
    when = (START + dt.timedelta(minutes=number)).strftime(docs_index.RUN_TIME)
    return Entry(("website", f"imp-{number:05d}", when, "order_files-website"), number % 3 > 0)


class Renderer:
    """Stands in for Great Expectations' index renderer: the title, each page as a row, and
    the left column that the links go into. Counts its pages."""

    def __init__(self) -> None:
        self.titles: list[str] = []

    def __call__(self, entries: list[Entry], title: str) -> str:
        self.titles.append(title)
        rows = "".join(f'<tr data-href="{e.page}"></tr>' for e in entries)
        return f'<html><body><div class="sticky"></div><table>{rows}</table></body></html>'


def rows(docs: Path, name: str) -> list[str]:
    return re.findall(r'data-href="([^"]+)"', (docs / name).read_text(encoding="utf-8"))


def history_links(docs: Path) -> list[str]:
    index = (docs / docs_index.INDEX).read_text(encoding="utf-8")
    return [href for href in LINK.findall(index) if href.startswith("history-")]


def listed(docs: Path) -> list[str]:
    """Every page listed on the history pages that the index links to."""
    return [page for name in history_links(docs) for page in rows(docs, name)]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A manifest of 250 pages, as batches append them."""
    folder = tmp_path / "data_docs"
    folder.mkdir()
    docs_index.append(folder, [entry(n) for n in range(200)])
    docs_index.append(folder, [entry(n) for n in range(200, 250)])
    return folder


def test_pages_fill_the_newest_file_and_a_page_built_again_is_listed_once(docs):
    files = docs_index.manifest_files(docs)
    assert [len(docs_index.read_file(path)) for path in files.values()] == [100, 100, 50]

    docs_index.append(docs, [entry(249), entry(250)])

    newest = docs_index.read_file(docs_index.manifest_files(docs)[2])
    assert [e.key[1] for e in newest][-3:] == ["imp-00248", "imp-00249", "imp-00250"]
    assert len(newest) == 51


def test_every_page_is_on_exactly_one_history_page_and_the_index_lists_the_newest(docs):
    render = Renderer()

    written = docs_index.write_index(docs, render, "local_site")

    assert written == [
        "history-000000.html",
        "history-000001.html",
        "history-000002.html",
        "index.html",
    ]
    pages = [entry(n).page for n in range(250)]
    assert sorted(listed(docs)) == sorted(pages), "each page once"
    assert history_links(docs) == [
        "history-000002.html",
        "history-000001.html",
        "history-000000.html",
    ]
    assert rows(docs, "index.html") == pages[::-1][: docs_index.LATEST_ROWS]
    assert rows(docs, "history-000002.html") == pages[200:][::-1]
    assert "index.html" in LINK.findall((docs / "history-000000.html").read_text())
    assert render.titles[0] == "local_site | 2026-09-01 00:00 UTC to 2026-09-01 01:39 UTC"


def test_a_build_renders_again_only_the_history_pages_that_changed(docs):
    docs_index.write_index(docs, Renderer(), "local_site")
    assert docs_index.write_index(docs, Renderer(), "local_site") == ["index.html"]

    docs_index.append(docs, [entry(250)])
    assert docs_index.write_index(docs, Renderer(), "local_site") == [
        "history-000002.html",
        "index.html",
    ]

    (docs / "history-000001.html").unlink()  # lost: written again
    assert docs_index.write_index(docs, Renderer(), "local_site") == [
        "history-000001.html",
        "index.html",
    ]


def test_pages_left_out_of_the_manifest_are_listed_nowhere_and_an_empty_history_page_goes(docs):
    docs_index.write_index(docs, Renderer(), "local_site")
    gone = {entry(n).key for n in (*range(100), 120)}  # as retention leaves it

    assert docs_index.forget(docs, lambda e: e.key in gone) == 101
    kept = docs_index.read_manifest(docs)

    written = docs_index.write_index(docs, Renderer(), "local_site")

    assert written == ["history-000001.html", "index.html"]
    assert not (docs / "history-000000.html").exists()
    assert sorted(listed(docs)) == sorted(e.page for e in kept)
    assert entry(120).page not in (docs / "index.html").read_text()


def test_a_damaged_manifest_file_is_named_and_the_next_pages_go_to_a_new_one(docs):
    newest = docs_index.manifest_files(docs)[2]
    with open(newest, "a", encoding="utf-8") as handle:
        handle.write('{"key": ["website", "cut sh')
    with pytest.raises(docs_index.ManifestDamaged, match=r"000002.jsonl"):
        docs_index.write_index(docs, Renderer(), "local_site")

    docs_index.append(docs, [entry(300)])

    assert docs_index.read_file(docs_index.manifest_files(docs)[3]) == [entry(300)]


def test_an_empty_site_has_an_index_without_history(tmp_path):
    (tmp_path / "docs").mkdir()
    assert docs_index.write_index(tmp_path / "docs", Renderer(), "local_site") == ["index.html"]
    assert history_links(tmp_path / "docs") == []


# --- real pages, real retention ------------------------------------------------------------


def test_retention_leaves_an_index_and_history_listing_every_page_kept_and_no_deleted_one(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(tmp_path))
    docs = tmp_path / "data_docs"
    reports = [
        run_batch(tmp_path, {f"{name}.csv": "shop-web"}, index=False)[0]
        for name in ("first", "second", "third")
    ]
    pages = [r["validation"]["data_docs"] for r in reports]
    old = age(tmp_path, pages[0], 40)
    kept = pages[1:]

    done = retention.purge_data_docs(tmp_path, dt.datetime.now(dt.UTC), 30)

    assert (done.validation_results, done.data_docs_pages, done.reports_updated) == (1, 1, 1)
    assert not (docs / old).exists()
    index = (docs / "index.html").read_text(encoding="utf-8")
    (history,) = history_links(docs)
    history_page = (docs / history).read_text(encoding="utf-8")
    for page in kept:
        assert page in index and page in history_page
        assert (docs / page).is_file()
    assert old not in index and old not in history_page
    assert pages[0] not in index and pages[0] not in history_page
    data_docs.make_offline(docs, [])
    assert_offline(docs, docs / history)
    old_report = tmp_path / "reports" / "shop-web" / reports[0]["import_id"] / "report.html"
    assert "Data Docs page deleted after 30 days (retention)" in old_report.read_text()
