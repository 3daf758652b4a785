"""Data Docs that render offline, built one batch at a time by any number of workers.

The pages Great Expectations writes load jQuery, Bootstrap, bootstrap-table, Font Awesome, vega
and a logo from CDNs: offline, the index's table stays empty. After each build the vendored copies
(``web/static/vendor/``, see its ``VENDORED.md``) are copied into
``<data>/data_docs/static/vendor/`` and the batch's pages and the index are rewritten to load them
by relative paths, so the docs work opened from disk and served under any URL prefix.

Workers build into one folder: ``build_lock`` serialises build and rewrite, so that the index
(made from the manifest of the pages that each build appends to, see ``docs_index``) is never
written by two at once and lists every page built before it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import posixpath
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

VENDOR_SOURCE = Path(__file__).resolve().parents[1] / "web" / "static" / "vendor"
#: Where the vendored files go, relative to the docs folder.
VENDOR_DIR = "static/vendor"
INDEX = "index.html"
LOCK_FILE = ".build.lock"
GX_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"

#: Every script and stylesheet URL of Great Expectations 1.24.1's pages, and its vendored file.
VENDORED = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (
        "popper.js-1.12.9/dist/umd/popper.min.js"
    ),
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap-4.3.1/dist/css/bootstrap.min.css"
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap-4.3.1/dist/js/bootstrap.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table-1.19.1/dist/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table-1.19.1/dist/bootstrap-table.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js": (
        "bootstrap-table-1.19.1/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css": (
        "bootstrap-table-1.19.0/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css": (
        "bootstrap-table-1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": (
        "bootstrap-datepicker-1.9.0/dist/css/bootstrap-datepicker.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": (
        "bootstrap-datepicker-1.9.0/dist/js/bootstrap-datepicker.min.js"
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css": (
        "forevolve-bootstrap-dark-1.1.0/dist/css/bootstrap-prefers-dark.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "fortawesome-fontawesome-free-6.6.0/css/all.min.css"
    ),
    "https://cdn.jsdelivr.net/npm/vega@5": "vega-5.33.1/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite-5.23.0/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed-6.29.0/build/vega-embed.min.js",
}
#: Images of the S3 bucket that Great Expectations also ships, and copies into ``static/images/``.
LOCAL_IMAGES = {"logo-long.png"}

_ASSET_TAG = re.compile(r"<(?:script|link|img)\b[^>]*>", re.IGNORECASE)
_SOURCE = re.compile(r'\b(src|href)="([^"]*)"')
_INTEGRITY = re.compile(r'\s+(?:integrity|crossorigin)="[^"]*"')
_STYLE = re.compile(r"<style\b[^>]*>.*?</style>", re.IGNORECASE | re.DOTALL)
_CSS_URL = re.compile(r"""url\(\s*(['"]?)((?:https?:)?//[^'")]*)\1\s*\)""")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)


def page_path(result_id: Any) -> str:
    """The page of a validation, relative to the docs folder, as Great Expectations' SiteBuilder
    names it: ``validations/<suite>/<run name>/<run time>/<batch>.html``.

    ``result_id`` is a ValidationResultIdentifier; the name is known before the page is built,
    so a report written before the batch's build can point to it.
    """
    return "/".join(("validations", *result_id.to_tuple())) + ".html"


@contextmanager
def build_lock(docs_dir: Path) -> Iterator[None]:
    """An exclusive lock on ``<docs>/.build.lock``: one build of the folder at a time."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    with open(docs_dir / LOCK_FILE, "ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_offline(docs_dir: Path, pages: Iterable[str], *, index: bool = True) -> None:
    """After a build: install the vendored files, rewrite these pages and (unless told not
    to) the index."""
    install_vendor(docs_dir)
    for page in sorted({*pages, INDEX} if index else set(pages)):
        path = docs_dir / page
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            offline = offline_html(text, page)
            if offline != text:
                write_atomic(path, offline)


def install_vendor(docs_dir: Path) -> None:
    """Copy the vendored files into ``<docs>/static/vendor/``; a file already there is kept
    (each version has its own folder, so a path never changes content)."""
    target = docs_dir / VENDOR_DIR
    for source in sorted(VENDOR_SOURCE.rglob("*")):
        if not source.is_file():
            continue
        copy = target / source.relative_to(VENDOR_SOURCE)
        if copy.is_file() and copy.stat().st_size == source.stat().st_size:
            continue
        copy.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(copy, source.read_bytes())


def offline_html(text: str, page: str) -> str:
    """A page whose scripts, stylesheets, fonts and images are relative paths into the docs
    folder. ``page`` is the page's path relative to the docs folder (for the ``../`` count)."""
    prefix = "../" * page.count("/")

    def tag(match: re.Match[str]) -> str:
        original = match.group(0)
        rewritten = _SOURCE.sub(lambda m: f'{m[1]}="{_local(m[2], prefix, page)}"', original)
        if rewritten == original:
            return original
        # Browsers refuse integrity checks and CORS mode on file:// pages.
        return _INTEGRITY.sub("", rewritten)

    def style(match: re.Match[str]) -> str:
        return _CSS_URL.sub(lambda m: _css_url(m[2], prefix), match.group(0))

    return _STYLE.sub(style, _ASSET_TAG.sub(tag, text))


def _local(url: str, prefix: str, page: str) -> str:
    """The relative path that replaces an asset URL; other URLs are kept."""
    if url in VENDORED:
        return f"{prefix}{VENDOR_DIR}/{VENDORED[url]}"
    if url.startswith(GX_ASSETS):
        name = url[len(GX_ASSETS) :].split("?")[0]
        if name in LOCAL_IMAGES:
            return f"{prefix}static/images/{name}"
    if _EXTERNAL.match(url):
        if not url.startswith("data:"):
            log.warning("Data Docs page %s loads %s: no vendored copy", page, url)
        return url
    # Great Expectations counts one folder too few for the favicon of validation pages.
    parts = [p for p in url.split("?")[0].split("/") if p not in ("", ".", "..")]
    if parts and parts[0] == "static":
        return prefix + posixpath.join(*parts)
    return url


def _css_url(url: str, prefix: str) -> str:
    """An image of an inline style: the local copy, or none (there is no other)."""
    name = url[len(GX_ASSETS) :] if url.startswith(GX_ASSETS) else ""
    if name in LOCAL_IMAGES:
        return f"url('{prefix}static/images/{name}')"
    return "none"


def write_atomic(path: Path, content: str | bytes) -> None:
    """Readers see the old file or the new one, never half of one. The temporary name does not
    end in ``.html``, so Great Expectations never takes it for a page."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = content.encode("utf-8") if isinstance(content, str) else content
    tmp.write_bytes(data)
    os.replace(tmp, path)
