"""The Data Docs index from a manifest of the pages built, never from the stored results.

Great Expectations' index builder lists every stored result and page and reads each result it
shows (for its success and asset), so its cost grew with the history. Here each batch that builds
pages adds them to a manifest, ``<docs>/.docs-manifest/NNNNNN.jsonl``: one line per page (what
the index shows of it), ``HISTORY_ROWS`` lines a file, the newest file filled first. Each manifest
file has its history page, ``history-NNNNNN.html``, and ``index.html`` lists the ``LATEST_ROWS``
newest pages and links to every history page. So every page kept is listed on a history page.

A build renders again only the history pages whose manifest file changed
(``<docs>/.docs-index.json`` keeps, for each, its file's identity, its period and its count):
mostly the newest one. It reads the newest manifest files only, and the others' identities: its
cost hardly grows with the history. Every manifest file
is written whole (``write_atomic``): a reader never sees half of one.

Retention (``docs_retention``) takes the deleted pages out of the manifest (``forget``). The
rendering itself is Great Expectations' (``Validation``), given here as a function: this module
imports no Great Expectations.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from review_ingest.quality.data_docs import INDEX, write_atomic

log = logging.getLogger(__name__)

MANIFEST = ".docs-manifest"
STATE = ".docs-index.json"
#: Rows of ``index.html``: the newest pages.
LATEST_ROWS = 100
#: Pages of each manifest file, listed on its history page.
HISTORY_ROWS = 100
HISTORY_PAGE = "history-{:06d}.html"
#: Changes when what a history page shows changes, so that every one is rendered again.
FORMAT = 2
#: Run times in keys, as Great Expectations' RunIdentifier writes them (they sort as strings).
RUN_TIME = "%Y%m%dT%H%M%S.%fZ"
#: Where the links to the history pages go: the left column of Great Expectations' index page.
_SIDEBAR = '<div class="sticky">'
_SUFFIX = ".jsonl"

#: ``render(entries, title)``: the HTML of an index page listing these entries.
Render = Callable[[list["Entry"], str], str]


@dataclass(slots=True)
class Entry:
    """One built page as the index shows it: its key (suite, run name, run time, batch), the
    validation's success and what the index's table says of its batch."""

    key: tuple[str, str, str, str]
    success: bool
    asset_name: str | None = None
    batch_spec: dict[str, Any] = field(default_factory=dict)
    batch_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def page(self) -> str:
        """Its page, relative to the docs folder (as ``data_docs.page_path`` names it)."""
        return "/".join(("validations", *self.key)) + ".html"

    @property
    def run_time(self) -> str:
        return self.key[2]

    def line(self) -> str:
        row = asdict(self)
        row["key"] = list(self.key)
        return json.dumps(row, sort_keys=True, default=str)


class ManifestDamaged(ValueError):
    """A manifest file cannot be read: the manifest is made again from the pages on disk."""


def run_time(text: str) -> dt.datetime | None:
    """The moment of a key's run time (``20261206T051110.224534Z``), None if it is not one."""
    try:
        return dt.datetime.strptime(text, RUN_TIME).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def has_manifest(docs_dir: Path) -> bool:
    return (docs_dir / MANIFEST).is_dir()


def drop_manifest(docs_dir: Path) -> None:
    """Delete the manifest (damaged): the next build makes it again from the pages on disk."""
    shutil.rmtree(docs_dir / MANIFEST, ignore_errors=True)


def manifest_files(docs_dir: Path) -> dict[int, Path]:
    """The manifest's files by number, oldest first; none without a manifest."""
    folder = docs_dir / MANIFEST
    if not folder.is_dir():
        return {}
    found = {}
    for path in folder.iterdir():
        stem = path.name.removesuffix(_SUFFIX)
        if path.name.endswith(_SUFFIX) and stem.isdigit():
            found[int(stem)] = path
    return dict(sorted(found.items()))


def read_file(path: Path) -> list[Entry]:
    """The pages of one manifest file; ManifestDamaged when it cannot be read."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [_entry(json.loads(line)) for line in lines if line.strip()]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ManifestDamaged(f"{MANIFEST}/{path.name}: {exc}") from None


def read_manifest(docs_dir: Path) -> list[Entry]:
    """Every page of the manifest, oldest file first (retention, tests: it reads every file)."""
    return [entry for path in manifest_files(docs_dir).values() for entry in read_file(path)]


def _entry(row: dict[str, Any]) -> Entry:
    key = tuple(row["key"])
    if len(key) != 4 or not all(isinstance(part, str) for part in key):
        raise ValueError("not a page key")
    return Entry(
        key,  # type: ignore[arg-type]
        bool(row["success"]),
        row.get("asset_name"),
        row.get("batch_spec") or {},
        row.get("batch_kwargs") or {},
    )


def append(docs_dir: Path, entries: Iterable[Entry]) -> None:
    """Add these pages to the manifest: the newest file filled up to ``HISTORY_ROWS``, then new
    ones. A page already in the newest file (built again) is listed once, where it is added.
    Reads the newest file only, so that a batch's build does not grow with the history. The
    caller holds the build lock."""
    added = list(entries)
    folder = docs_dir / MANIFEST
    folder.mkdir(parents=True, exist_ok=True)  # made even when empty: the manifest exists
    if not added:
        return
    files = manifest_files(docs_dir)
    number = max(files, default=0)
    try:
        newest = read_file(files[number]) if files else []
    except ManifestDamaged as exc:  # left for the next index build to notice; a new file
        log.warning("Data Docs: %s", exc)
        number, newest = number + 1, []
    keys = {entry.key for entry in added}
    rows = [entry for entry in newest if entry.key not in keys] + added
    for start in range(0, len(rows), HISTORY_ROWS):
        _write_file(folder, number + start // HISTORY_ROWS, rows[start : start + HISTORY_ROWS])


def forget(docs_dir: Path, drop: Callable[[Entry], bool]) -> int:
    """Take out of the manifest the pages ``drop`` names (retention); a file left empty is
    deleted. Returns how many. The caller holds the build lock."""
    dropped = 0
    for number, path in manifest_files(docs_dir).items():
        rows = read_file(path)
        kept = [entry for entry in rows if not drop(entry)]
        if len(kept) == len(rows):
            continue
        dropped += len(rows) - len(kept)
        if kept:
            _write_file(path.parent, number, kept)
        else:
            path.unlink(missing_ok=True)
    return dropped


def _write_file(folder: Path, number: int, rows: list[Entry]) -> None:
    text = "".join(entry.line() + "\n" for entry in rows)
    write_atomic(folder / f"{number:06d}{_SUFFIX}", text)


def history_page(number: int) -> str:
    """The history page of the manifest file ``number``."""
    return HISTORY_PAGE.format(number)


def write_index(docs_dir: Path, render: Render, site_name: str) -> list[str]:
    """``index.html`` and the history pages whose manifest file changed; a history page whose
    file is gone is deleted. Returns the pages written, relative to the docs folder. The caller
    holds the build lock; ManifestDamaged when a file to read cannot be."""
    files = manifest_files(docs_dir)
    known = _read_state(docs_dir)
    state: dict[str, dict[str, Any]] = {}
    read: dict[int, list[Entry]] = {}
    written = []
    for number, path in files.items():
        name, source = history_page(number), _identity(path)
        if known.get(name, {}).get("source") == source and (docs_dir / name).is_file():
            state[name] = known[name]
            continue
        rows = read[number] = read_file(path)
        if not rows:
            continue
        newest_first = sorted(rows, key=lambda e: e.run_time, reverse=True)
        period = _span(rows)
        page = render(newest_first, f"{site_name} | {period}")
        write_atomic(docs_dir / name, with_links(page, _back_link()))
        written.append(name)
        state[name] = {"source": source, "span": period, "count": len(rows)}
    for name in sorted(set(known) - set(state)):
        (docs_dir / name).unlink(missing_ok=True)
    index = render(_latest(files, read), site_name)
    write_atomic(docs_dir / INDEX, with_links(index, _history_links(state)))
    written.append(INDEX)
    write_atomic(docs_dir / STATE, json.dumps({"format": FORMAT, "pages": state}, sort_keys=True))
    return written


def _latest(files: dict[int, Path], read: dict[int, list[Entry]]) -> list[Entry]:
    """The ``LATEST_ROWS`` newest pages, newest first, from the newest manifest files (one more
    than they fill, for pages added out of order)."""
    found: dict[tuple[str, ...], Entry] = {}
    more = 1
    for number in sorted(files, reverse=True):
        if len(found) >= LATEST_ROWS:
            if not more:
                break
            more -= 1
        rows = read[number] if number in read else read_file(files[number])
        for entry in rows:
            found.setdefault(entry.key, entry)
    return sorted(found.values(), key=lambda e: e.run_time, reverse=True)[:LATEST_ROWS]


def _identity(path: Path) -> list[int]:
    """What changes whenever a manifest file is written (each write is a new file)."""
    info = path.stat()
    return [info.st_ino, info.st_size, info.st_mtime_ns]


def _read_state(docs_dir: Path) -> dict[str, dict[str, Any]]:
    """What the last build knew of each history page; empty when missing, unreadable or of
    another format (every page is written again)."""
    try:
        state = json.loads((docs_dir / STATE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        return {}
    pages = state.get("pages")
    if not isinstance(pages, dict):
        return {}
    return {str(name): page for name, page in pages.items() if isinstance(page, dict)}


def _span(rows: list[Entry]) -> str:
    """``2026-03-01 10:00 UTC to 2026-03-03 12:00 UTC``: the run times of these pages."""
    times = [entry.run_time for entry in rows]
    first, last = _shown(min(times)), _shown(max(times))
    return first if first == last else f"{first} to {last}"


def _shown(text: str) -> str:
    moment = run_time(text)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else text


def _history_links(state: dict[str, dict[str, Any]]) -> str:
    """The index's list of history pages, newest first."""
    items = "".join(
        f'<li><a href="{html.escape(name)}">{html.escape(str(page.get("span")))}</a> '
        f"({page.get('count')})</li>"
        for name, page in sorted(state.items(), reverse=True)
    )
    if not items:
        return ""
    return (
        '<nav id="docs-history" class="mt-4"><h6>Every validation, by period</h6>'
        f'<ul class="list-unstyled small">{items}</ul></nav>'
    )


def _back_link() -> str:
    return f'<nav id="docs-history" class="mt-4"><a href="{INDEX}">Latest validations</a></nav>'


def with_links(page: str, links: str) -> str:
    """The page with ``links`` in its left column (at the end of the body if it has none)."""
    if not links:
        return page
    if _SIDEBAR in page:
        return page.replace(_SIDEBAR, _SIDEBAR + links, 1)
    return page.replace("</body>", links + "</body>", 1)
