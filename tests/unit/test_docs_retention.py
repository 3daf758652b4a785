"""Retention of validation results and Data Docs pages (``quality.docs_retention``), on folders
laid out as the pipeline lays them out (no Great Expectations here): which files are old, a dry
run deletes nothing, what is deleted leaves the manifest and the reports' links, missing folders
are nothing to purge; the setting; the retention DAG's summary. With real pages and the index:
tests/unit/test_docs_index.py; the DAG and the UI: tests/integration/test_docs_retention.py."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest

from review_ingest import settings
from review_ingest.core import report
from review_ingest.errors import ConfigError
from review_ingest.privacy import retention
from review_ingest.quality import docs_index, docs_retention
from review_ingest.tasks import data_retention
from tests.unit.test_report import outcome

NOW = dt.datetime(2026, 12, 6, 3, 0, tzinfo=dt.UTC)
DAYS = 90
SUITE, BATCH = "website", "order_files-website"


def stamp(moment: dt.datetime) -> str:
    return moment.strftime(docs_index.RUN_TIME)


def age(data_dir: Path, page: str, days: float) -> str:
    """A real page, its stored result, and the manifest, index pages and reports that name it,
    as they are ``days`` later: moved back that many days (their run time is in their path).
    Returns the page's new path."""
    suite, run, when, _ = page.removeprefix("validations/").split("/")
    moment = docs_index.run_time(when)
    assert moment is not None, page
    older = stamp(moment - dt.timedelta(days=days))
    for root in (
        data_dir / "gx" / suite / run,
        data_dir / "data_docs" / "validations" / suite / run,
    ):
        (root / when).rename(root / older)
    docs = data_dir / "data_docs"
    named = [
        *(docs / docs_index.MANIFEST).glob("*.jsonl"),
        *docs.glob("*.html"),
        *data_dir.glob("reports/*/*/report.*"),
    ]
    for path in named:
        text = path.read_text(encoding="utf-8")
        if when in text:
            path.write_text(text.replace(when, older), encoding="utf-8")
    return page.replace(when, older)


def lay_out(data_dir: Path, import_id: str, days_old: float) -> str:
    """A stored result, its page, its manifest line and its import's reports, ``days_old`` days
    before ``NOW``, as the pipeline leaves them; the page's path."""
    key = (SUITE, import_id, stamp(NOW - dt.timedelta(days=days_old)), BATCH)
    result = data_dir.joinpath("gx", *key[:3], f"{BATCH}.json")
    result.parent.mkdir(parents=True)
    meta = {"batch_parameters": {"files": {import_id: "orders.csv"}}}
    result.write_text(json.dumps({"meta": meta}), encoding="utf-8")
    entry = docs_index.Entry(key, success=False)
    page = data_dir / "data_docs" / entry.page
    page.parent.mkdir(parents=True)
    page.write_text("<html>the page</html>", encoding="utf-8")
    docs_index.append(data_dir / "data_docs", [entry])
    made = outcome(data_docs=entry.page)
    made.record.import_id = import_id
    report.write(made, data_dir / "reports" / "acme" / import_id)
    return entry.page


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An old page and result (100 days) and a young one (10 days), with their reports."""
    data = tmp_path / "data"
    lay_out(data, "imp-old", 100)
    lay_out(data, "imp-young", 10)
    (data / "gx" / ".ge_store_backend_id").write_text("store_backend_id = x\n")
    return data


def cutoff() -> dt.datetime:
    return retention.cutoff(NOW, DAYS)


# --- the setting ---------------------------------------------------------------------------


def test_docs_retention_days_default_to_90_and_are_read(monkeypatch):
    monkeypatch.delenv("REVIEW_INGEST_DOCS_RETENTION_DAYS", raising=False)
    assert settings.docs_retention_days() == settings.DEFAULT_DOCS_RETENTION_DAYS == 90
    monkeypatch.setenv("REVIEW_INGEST_DOCS_RETENTION_DAYS", "30")
    assert settings.docs_retention_days() == 30


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "a quarter"])
def test_docs_retention_days_must_be_a_whole_number_at_least_one(monkeypatch, value):
    monkeypatch.setenv("REVIEW_INGEST_DOCS_RETENTION_DAYS", value)
    with pytest.raises(ConfigError) as raised:
        settings.docs_retention_days()
    assert str(raised.value) == (
        f"REVIEW_INGEST_DOCS_RETENTION_DAYS must be a whole number of days, at least 1, "
        f"not {value!r}"
    )


# --- which files are old ---------------------------------------------------------------------


def test_old_results_and_pages_are_selected_young_ones_and_other_files_are_not(data_dir):
    old_time = stamp(NOW - dt.timedelta(days=100))
    hidden = data_dir / "data_docs" / "validations" / SUITE / "imp-old" / old_time / ".x.html.1.tmp"
    hidden.write_text("being written")
    # A run time that is not one: the file's modification time decides.
    odd = data_dir / "gx" / SUITE / "imp-odd" / "not-a-time" / f"{BATCH}.json"
    odd.parent.mkdir(parents=True)
    odd.write_text("{}")
    os.utime(odd, (NOW.timestamp() - 100 * 86400,) * 2)

    results = docs_retention.expired(data_dir / "gx", ".json", cutoff())
    pages = docs_retention.expired(data_dir / "data_docs" / "validations", ".html", cutoff())

    assert [str(p.relative_to(data_dir / "gx")) for p in results] == [
        f"{SUITE}/imp-odd/not-a-time/{BATCH}.json",
        f"{SUITE}/imp-old/{old_time}/{BATCH}.json",
    ]
    assert [p.relative_to(data_dir / "data_docs").as_posix() for p in pages] == [
        f"validations/{SUITE}/imp-old/{old_time}/{BATCH}.html"
    ]


def test_a_dry_run_counts_and_deletes_nothing(data_dir):
    before = files_under(data_dir)
    texts = {name: (data_dir / name).read_bytes() for name in before}

    done = retention.purge_data_docs(data_dir, NOW, DAYS, dry_run=True)

    assert (done.validation_results, done.data_docs_pages, done.reports_updated) == (1, 1, 0)
    assert files_under(data_dir) == before
    assert {name: (data_dir / name).read_bytes() for name in before} == texts


def test_old_results_and_pages_go_with_their_folders_their_manifest_lines_and_links(data_dir):
    old_page = next(e.page for e in docs_index.read_manifest(data_dir / "data_docs"))
    young_report = (data_dir / "reports/acme/imp-young/report.html").read_text()

    done = docs_retention.purge_docs(data_dir, cutoff(), DAYS)

    assert done.as_dict() == {
        "validation_results_deleted": 1,
        "data_docs_pages_deleted": 1,
        "reports_updated": 1,
    }
    assert not (data_dir / "data_docs" / old_page).exists()
    assert not (data_dir / "gx" / SUITE / "imp-old").exists(), "empty folders are left"
    assert not (data_dir / "data_docs" / "validations" / SUITE / "imp-old").exists()
    assert (data_dir / "gx" / ".ge_store_backend_id").is_file()
    assert [e.key[1] for e in docs_index.read_manifest(data_dir / "data_docs")] == ["imp-young"]
    old_report = (data_dir / "reports/acme/imp-old/report.html").read_text()
    assert "Data Docs page deleted after 90 days (retention)" in old_report
    assert "data_docs/validations" not in old_report
    assert (data_dir / "reports/acme/imp-young/report.html").read_text() == young_report
    assert "data_docs/validations" in young_report
    assert docs_retention.purge_docs(data_dir, cutoff(), DAYS).as_dict() == {
        "validation_results_deleted": 0,
        "data_docs_pages_deleted": 0,
        "reports_updated": 0,
    }


def test_missing_folders_are_nothing_to_purge(tmp_path):
    data = tmp_path / "data"

    done = retention.purge_data_docs(data, NOW, DAYS)

    assert (done.validation_results, done.data_docs_pages) == (0, 0)
    assert not data.exists(), "nothing is created"
    lay_out(data, "imp-old", 100)  # results without Data Docs nor reports
    for folder in ("data_docs", "reports"):
        shutil.rmtree(data / folder)
    done = docs_retention.purge_docs(data, cutoff(), DAYS)
    assert (done.validation_results, done.data_docs_pages) == (1, 0)
    assert files_under(data) == []


def test_a_page_gone_past_retention_is_said_deleted_a_young_or_other_one_is_not():
    old = f"validations/{SUITE}/imp-1/{stamp(NOW - dt.timedelta(days=91))}/{BATCH}.html"
    young = f"validations/{SUITE}/imp-1/{stamp(NOW - dt.timedelta(days=89))}/{BATCH}.html"
    assert docs_retention.gone_note(old, NOW, DAYS) == (
        "Data Docs page deleted after 90 days (retention)"
    )
    assert docs_retention.gone_note(young, NOW, DAYS) is None
    assert docs_retention.gone_note("index.html", NOW, DAYS) is None
    assert docs_retention.gone_note("validations/a/b/not-a-time/c.html", NOW, DAYS) is None


# --- the DAG's summary -----------------------------------------------------------------------


def test_the_dag_summary_counts_the_deleted_docs_and_names_their_task_when_it_failed():
    before = "2026-01-01T00:00:00+00:00"
    docs = {"validation_results_deleted": 3, "data_docs_pages_deleted": 2, "reports_updated": 2}

    done = data_retention.summarize_purge(before, 0, {}, [], [], docs=docs)

    assert (done["validation_results_deleted"], done["data_docs_pages_deleted"]) == (3, 2)
    assert done["failed"] == []
    with pytest.raises(retention.PurgeFailed, match=r"retention: data_docs failed"):
        data_retention.summarize_purge(before, 0, {}, [], [], docs=None)
