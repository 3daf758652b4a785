"""Validation results and their Data Docs pages are kept ``$REVIEW_INGEST_DOCS_RETENTION_DAYS``.

Past that, measured from the run time in their path (the file's modification time when the path
holds none), the stored results ``<data>/gx/<suite>/<run name>/<run time>/<batch>.json`` and the
pages ``<data>/data_docs/validations/<suite>/<run name>/<run time>/<batch>.html`` are deleted,
with the folders they leave empty, and leave the index's manifest (``docs_index``; the caller
builds the index again). Each ``report.html`` that linked to a deleted page says instead that it
was deleted; ``report.json`` keeps the page's path as written, and the review UI says the same of
it (``gone_note``). Imports GX not: the daily purge and the UI stay light.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from review_ingest.core import report
from review_ingest.quality import data_docs, docs_index

log = logging.getLogger(__name__)

RESULTS = "gx"
DOCS = "data_docs"
PAGES = "validations"


@dataclass
class DocsPurged:
    """Deleted (or, in a dry run, that would be): stored results, Data Docs pages, and the
    reports that now say their page is gone."""

    validation_results: int = 0
    data_docs_pages: int = 0
    reports_updated: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "validation_results_deleted": self.validation_results,
            "data_docs_pages_deleted": self.data_docs_pages,
            "reports_updated": self.reports_updated,
        }


def deleted_note(days: int) -> str:
    """What a report or a page says in place of the link to a deleted Data Docs page."""
    return f"Data Docs page deleted after {days} days (retention)"


def gone_note(page: str, now: dt.datetime, days: int) -> str | None:
    """For a Data Docs page that is not on disk: ``deleted_note`` when its run time is past
    retention (it was deleted), else None (not built, or not by this site)."""
    parts = page.split("/")
    if len(parts) != 5 or parts[0] != PAGES:
        return None
    moment = docs_index.run_time(parts[3])
    if moment is None or moment >= now - dt.timedelta(days=days):
        return None
    return deleted_note(days)


def expired(root: Path, suffix: str, before: dt.datetime) -> list[Path]:
    """The files ``<suite>/<run name>/<run time>/<batch><suffix>`` under ``root`` from before
    ``before``; none when ``root`` is missing. Hidden files (a store's id, a page being
    written) are never taken."""
    found = []
    for path in root.glob(f"*/*/*/*{suffix}"):
        parts = path.relative_to(root).parts
        if any(part.startswith(".") for part in parts) or not path.is_file():
            continue
        moment = docs_index.run_time(parts[2])
        try:
            if moment is None:
                moment = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        except FileNotFoundError:  # deleted meanwhile
            continue
        if moment < before:
            found.append(path)
    return sorted(found)


def purge_docs(
    data_dir: Path, before: dt.datetime, days: int, *, dry_run: bool = False
) -> DocsPurged:
    """Delete the results and pages from before ``before`` (``days`` is what the reports say);
    returns how many (or would be). The index is left for the caller to build again."""
    docs_dir = data_dir / DOCS
    results = expired(data_dir / RESULTS, ".json", before)
    pages = expired(docs_dir / PAGES, ".html", before)
    done = DocsPurged(len(results), len(pages))
    if dry_run or not (results or pages):
        return done
    linked = {_page_of(path, docs_dir): _imports(path, data_dir) for path in pages}
    for path in results:
        _delete(path)
    _prune(data_dir / RESULTS, results)
    if pages:
        with data_docs.build_lock(docs_dir):
            for path in pages:
                _delete(path)
            _prune(docs_dir / PAGES, pages)
            _forget(docs_dir, before, set(linked))
        done.reports_updated = _update_reports(data_dir, linked, deleted_note(days))
    log.info(
        "retention: %d validation result(s) and %d Data Docs page(s) deleted, %d report(s) updated",
        done.validation_results,
        done.data_docs_pages,
        done.reports_updated,
    )
    return done


def _page_of(path: Path, docs_dir: Path) -> str:
    return path.relative_to(docs_dir).as_posix()


def _imports(page: Path, data_dir: Path) -> list[str]:
    """The imports a page shows: the files of its stored result (a batch of several files has
    one page), else the import its run is named after."""
    key = page.relative_to(data_dir / DOCS / PAGES).with_suffix(".json")
    try:
        meta = json.loads((data_dir / RESULTS / key).read_text(encoding="utf-8"))["meta"]
        return sorted(meta["batch_parameters"]["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return [key.parts[1].removeprefix("batch-")]


def _delete(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except IsADirectoryError:  # not a file after all: left alone
        log.warning("retention: %s is a folder: left alone", path)


def _prune(root: Path, deleted: list[Path]) -> None:
    """Remove the folders under ``root`` that the deleted files left empty."""
    folders = {parent for path in deleted for parent in path.parents if parent != root}
    for folder in sorted(
        (f for f in folders if f.is_relative_to(root)), key=lambda f: -len(f.parts)
    ):
        try:
            folder.rmdir()
        except OSError:  # not empty: something else lives there
            continue


def _forget(docs_dir: Path, before: dt.datetime, pages: set[str]) -> None:
    """The manifest without the deleted pages, nor any older than ``before``; a damaged one is
    deleted (the next index build lists the pages left on disk)."""
    stamp = before.astimezone(dt.UTC).strftime(docs_index.RUN_TIME)

    def gone(entry: docs_index.Entry) -> bool:
        older = docs_index.run_time(entry.run_time) is not None and entry.run_time < stamp
        return older or entry.page in pages

    try:
        docs_index.forget(docs_dir, gone)
    except docs_index.ManifestDamaged as exc:
        log.warning("retention: %s: made again from the pages on disk", exc)
        docs_index.drop_manifest(docs_dir)


def _update_reports(data_dir: Path, linked: dict[str, list[str]], note: str) -> int:
    """Each ``report.html`` of these imports that links to its deleted page says ``note``
    instead; returns how many changed."""
    root = data_dir / "reports"
    merchants = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    updated = 0
    for page, import_ids in linked.items():
        for import_id in filter(_is_name, import_ids):
            for merchant in merchants:
                path = merchant / import_id / "report.html"
                if path.is_file() and _replace_link(path, page, note):
                    updated += 1
    return updated


def _is_name(import_id: object) -> bool:
    """An import id read from a stored result is a folder's name, never a path."""
    return isinstance(import_id, str) and "/" not in import_id and not import_id.startswith(".")


def _replace_link(path: Path, page: str, note: str) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("retention: %s not updated (%s)", path, exc.__class__.__name__)
        return False
    changed = report.without_docs_link(text, page, note)
    if changed == text:
        return False
    data_docs.write_atomic(path, changed)
    return True
