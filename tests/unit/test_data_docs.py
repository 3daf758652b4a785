"""Data Docs built by real batches (real Great Expectations, a SQLite warehouse, in this
process): every page loads its scripts, styles, fonts and images from the docs folder itself,
the reports name the page of their file's validation, a build does not grow with the history.
Workers building into one folder at once: tests/integration/test_data_docs.py."""

from __future__ import annotations

import json
import re
from importlib.util import find_spec
from pathlib import Path

import pytest

from review_ingest.core.merchants import Merchant
from review_ingest.pipeline.ingest import Ingest
from review_ingest.quality import data_docs
from review_ingest.quality import docs_index as index_pages
from review_ingest.tasks import docs_index
from tests.kit.factories import sample_for_yesterday

GX_TEMPLATES = (
    Path(find_spec("great_expectations").submodule_search_locations[0])
    / "render"
    / "view"
    / "templates"
)
ASSET_TAG = re.compile(r"<(?:script|link|img)\b[^>]*>", re.IGNORECASE)
ASSET_URL = re.compile(r'\b(?:src|href)="([^"]*)"')
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]*)['"]?\s*\)""")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
OUTSIDE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)
HISTORY_LINKS = re.compile(r'<nav id="docs-history".*?</nav>', re.DOTALL)
SECRET_EMAIL = "jeanne.secret@@example.fr"
MERCHANTS = {
    "shop-web": Merchant("shop-web", template="website"),
    "shop-products": Merchant("shop-products", template="website_products"),
}


def with_bad_row(template: str, order_ref: str) -> str:
    """The sample of a template, plus a row whose e-mail is invalid (it must stay out of docs)."""
    header, first, *rest = sample_for_yesterday(template).splitlines()
    ref = first.split(";")[0]
    email = next(v for v in first.split(";") if "@" in v)
    bad = first.replace(ref, order_ref).replace(email, SECRET_EMAIL)
    return "\n".join([header, first, *rest, bad]) + "\n"


def run_batch(data_dir: Path, names: dict[str, str], *, index: bool = True) -> list[dict]:
    """One batch through ``Ingest`` as a DAG task runs it; the reports as written."""
    ingest = Ingest(data_dir, MERCHANTS, f"sqlite:///{data_dir / 'warehouse.db'}")
    outcomes = []
    for name, merchant_id in names.items():
        path = data_dir / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        template = MERCHANTS[merchant_id].template
        path.write_text(with_bad_row(template, f"BAD-{name}"), encoding="utf-8")
        outcomes.append(ingest.import_file(path, merchant_id, "upload"))
    ingest.finish(index=index)
    return [
        json.loads(
            (
                data_dir / "reports" / o.record.merchant_id / o.record.import_id / "report.json"
            ).read_text(encoding="utf-8")
        )
        for o in outcomes
    ]


def asset_urls(html: str) -> list[str]:
    """Every script, stylesheet, icon and image a page loads, and the images of its styles."""
    tags = [url for tag in ASSET_TAG.findall(html) for url in ASSET_URL.findall(tag)]
    return tags + CSS_URL.findall(html)


def assert_offline(docs: Path, page: Path) -> None:
    """The page loads nothing from outside the docs folder, and everything it loads exists."""
    html = page.read_text(encoding="utf-8")
    assert html.rstrip().endswith("</html>"), f"{page} is incomplete"
    for url in asset_urls(html):
        if url.startswith("data:"):
            continue
        assert not OUTSIDE.match(url), f"{page.relative_to(docs)} loads {url} from outside"
        target = (page.parent / url.split("?")[0]).resolve()
        assert target.is_file(), f"{page.relative_to(docs)} loads {url}: missing"
        assert target.is_relative_to(docs.resolve()), f"{url} leaves the docs folder"


def pages_of(docs: Path) -> list[Path]:
    return [docs / "index.html", *sorted((docs / "validations").rglob("*.html"))]


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    data_dir = tmp_path_factory.mktemp("data")
    reports = run_batch(data_dir, {"web.csv": "shop-web", "products.csv": "shop-products"})
    return data_dir, reports


def test_every_page_loads_only_files_of_the_docs_folder(batch):
    data_dir, _ = batch
    docs = data_dir / "data_docs"
    pages = pages_of(docs)
    assert len(pages) == 3
    for page in pages:
        assert_offline(docs, page)
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert 'src="static/vendor/jquery-3.7.1/dist/jquery.min.js"' in index
    assert 'src="static/images/logo-long.png"' in index
    assert "integrity=" not in index and "crossorigin=" not in index


def test_the_vendored_stylesheets_find_their_fonts(batch):
    data_dir, _ = batch
    vendor = data_dir / "data_docs" / data_docs.VENDOR_DIR
    sheets = sorted(vendor.rglob("*.css"))
    assert len(sheets) == 7
    for sheet in sheets:
        for url in CSS_URL.findall(sheet.read_text(encoding="utf-8")):
            if not url.startswith("data:"):
                assert (sheet.parent / url.split("?")[0].split("#")[0]).is_file(), url
    assert (vendor / "fortawesome-fontawesome-free-6.6.0/webfonts/fa-solid-900.woff2").is_file()


def test_reports_name_their_own_page_relative_to_the_docs_folder(batch):
    data_dir, reports = batch
    docs = data_dir / "data_docs"
    index = (docs / "index.html").read_text(encoding="utf-8")
    pages = [r["validation"]["data_docs"] for r in reports]
    assert len(set(pages)) == 2
    for report, page in zip(reports, pages, strict=True):
        assert page.startswith(f"validations/{report['template']}/{report['import_id']}/")
        assert (docs / page).is_file() and page in index
        folder = data_dir / "reports" / report["merchant_id"] / report["import_id"]
        html = (folder / "report.html").read_text(encoding="utf-8")
        assert f'href="../../../data_docs/{page}"' in html
        assert (folder / "../../../data_docs" / page).resolve().is_file()
        as_json = (folder / "report.json").read_text(encoding="utf-8")
        assert str(data_dir) not in as_json and '"/' not in as_json
        assert str(data_dir) not in html and 'href="/' not in html


def test_personal_data_stays_out_of_the_docs(batch):
    data_dir, reports = batch
    assert all(r["error_rows"] == 1 for r in reports)
    for page in pages_of(data_dir / "data_docs"):
        assert SECRET_EMAIL not in page.read_text(encoding="utf-8")


def test_a_later_batch_rewrites_its_own_pages_and_the_index_only(tmp_path):
    docs = tmp_path / "data_docs"
    [first] = run_batch(tmp_path, {"monday.csv": "shop-web"})
    first_page = docs / first["validation"]["data_docs"]
    vendored = [p for p in (docs / data_docs.VENDOR_DIR).rglob("*") if p.is_file()]
    before = {p: p.stat().st_mtime_ns for p in [first_page, *vendored]}

    [second] = run_batch(tmp_path, {"tuesday.csv": "shop-products"})

    assert {p: p.stat().st_mtime_ns for p in before} == before, "written again"
    index = (docs / "index.html").read_text(encoding="utf-8")
    for report in (first, second):
        assert report["validation"]["data_docs"] in index
    for page in pages_of(docs):
        assert_offline(docs, page)


def test_every_asset_of_the_gx_templates_has_a_vendored_copy():
    """A Great Expectations upgrade that loads a new file fails here, naming it."""
    found = set()
    for template in GX_TEMPLATES.glob("*.j2"):
        for tag in ASSET_TAG.findall(template.read_text(encoding="utf-8")):
            found.update(u for u in ASSET_URL.findall(tag) if u.startswith("http"))
    assert found == set(data_docs.VENDORED)
    for copy in data_docs.VENDORED.values():
        assert (data_docs.VENDOR_SOURCE / copy).is_file(), copy


def test_the_vendored_set_is_what_the_pages_load_and_the_licences():
    """Nothing vendored that no page loads: the files mapped, the fonts, licences, VENDORED.md."""
    shipped = {
        p.relative_to(data_docs.VENDOR_SOURCE).as_posix()
        for p in data_docs.VENDOR_SOURCE.rglob("*")
        if p.is_file()
    }
    mapped = set(data_docs.VENDORED.values())
    fonts = {p for p in shipped if "/webfonts/" in p}
    licences = {p for p in shipped if p.split("/")[-1] in ("LICENSE", "LICENSE.txt")}
    assert shipped == mapped | fonts | licences | {"VENDORED.md"}
    assert len(fonts) == 8
    notes = (data_docs.VENDOR_SOURCE / "VENDORED.md").read_text(encoding="utf-8")
    for folder in {copy.split("/")[0] for copy in mapped}:
        assert f"`{folder}/`" in notes, f"{folder} is not described in VENDORED.md"


def test_page_path_is_where_the_site_builder_writes_the_page(batch):
    data_dir, reports = batch
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    page = reports[0]["validation"]["data_docs"]
    _, suite, run_name, run_time, batch_html = page.split("/")
    result_id = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite),
        run_id=RunIdentifier(run_name=run_name, run_time=run_time),
        batch_identifier=batch_html.removesuffix(".html"),
    )
    assert data_docs.page_path(result_id) == page


def test_a_dag_run_builds_the_index_once_after_its_batches(tmp_path, monkeypatch):
    """Batches of a DAG run build their pages only; ``build_docs_index`` then lists them all,
    builds no page again, and makes the index work offline too."""
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(tmp_path))
    docs = tmp_path / "data_docs"
    first = run_batch(tmp_path, {"a.csv": "shop-web"}, index=False)
    second = run_batch(tmp_path, {"b.csv": "shop-products"}, index=False)
    pages = [r["validation"]["data_docs"] for r in first + second]
    assert all((docs / page).is_file() for page in pages)
    assert not (docs / "index.html").exists()
    built = {page: (docs / page).stat().st_mtime_ns for page in pages}

    assert docs_index.build_docs_index([]) is False
    assert not (docs / "index.html").exists()
    assert docs_index.build_docs_index([["a batch"]]) is True
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert all(page in index for page in pages)
    assert {page: (docs / page).stat().st_mtime_ns for page in pages} == built
    for page in pages_of(docs):
        assert_offline(docs, page)


# --- a build does not grow with the history ------------------------------------------------


def stored_results(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "gx").rglob("*.json"))


def add_history(data_dir: Path, count: int) -> None:
    """``count`` more stored results, as earlier days' imports left them: copies of a stored
    result under other run names, older than every import of the test."""
    source = stored_results(data_dir)[0]
    suite = source.relative_to(data_dir / "gx").parts[0]
    for number in range(count):
        folder = data_dir / "gx" / suite / f"earlier-{number:04d}" / f"20250101T0000{number:02d}.0Z"
        folder.mkdir(parents=True)
        (folder / source.name).write_bytes(source.read_bytes())


def test_a_batch_builds_its_pages_without_listing_the_stored_results(tmp_path, monkeypatch):
    """Great Expectations' SiteBuilder lists every stored result even to build one page (1.6 s
    for 10,000): a batch reads its own results only, so its cost does not grow with the days."""
    from great_expectations.data_context.store.tuple_store_backend import (
        TupleFilesystemStoreBackend,
    )

    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(tmp_path))
    run_batch(tmp_path, {"first.csv": "shop-web"})
    add_history(tmp_path, 30)
    listed: list[tuple] = []
    real_list_keys = TupleFilesystemStoreBackend.list_keys

    def spy(self, prefix=()):
        keys = real_list_keys(self, prefix)
        listed.append(tuple(keys))
        return keys

    monkeypatch.setattr(TupleFilesystemStoreBackend, "list_keys", spy)
    reports = run_batch(tmp_path, {"second.csv": "shop-products"}, index=False)

    assert listed == []
    page = tmp_path / "data_docs" / reports[0]["validation"]["data_docs"]
    assert_offline(tmp_path / "data_docs", page)

    docs_index.build_docs_index(["a batch"])
    assert listed == []
    index = (tmp_path / "data_docs" / "index.html").read_text(encoding="utf-8")
    assert reports[0]["validation"]["data_docs"] in index


def test_the_index_lists_the_latest_pages_only(tmp_path, monkeypatch):
    """The index shows the newest ``LATEST_ROWS`` pages; older ones stay on disk (their
    reports link to them), listed on the history page the index links to."""
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(index_pages, "LATEST_ROWS", 2)
    docs = tmp_path / "data_docs"
    pages = [
        run_batch(tmp_path, {f"{name}.csv": "shop-web"}, index=False)[0]["validation"]["data_docs"]
        for name in ("first", "second", "third")
    ]
    docs_index.build_docs_index(["a batch"])

    index = (docs / "index.html").read_text(encoding="utf-8")
    assert [page in index for page in pages] == [False, True, True]
    assert (docs / pages[0]).is_file()
    assert 'href="history-000000.html"' in index
    history = (docs / "history-000000.html").read_text(encoding="utf-8")
    assert [page in history for page in pages] == [True, True, True]


def test_the_index_is_the_one_the_site_builder_makes(tmp_path, monkeypatch):
    """Same index as Great Expectations' index builder makes from every page and result, but
    for the random ids of its collapsible blocks and the links to the history pages; and the
    same again when the manifest of the pages is damaged or missing (a site built before it
    existed)."""
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(tmp_path))
    docs = tmp_path / "data_docs"
    run_batch(tmp_path, {"a.csv": "shop-web"}, index=False)
    run_batch(tmp_path, {"b.csv": "shop-products", "c.csv": "shop-web"}, index=False)
    validation = Ingest(tmp_path).validation

    def index() -> str:
        data_docs.make_offline(docs, [])
        text = (docs / "index.html").read_text(encoding="utf-8")
        return UUID.sub("<id>", HISTORY_LINKS.sub("", text))

    validation.build_index()
    ours = index()
    validation._site().site_index_builder.build(build_index=True)
    assert index() == ours
    manifest = docs / index_pages.MANIFEST / "000000.jsonl"
    text = manifest.read_text(encoding="utf-8")
    for damaged in (text[:-20], text + "[[1, 2]\n", '{"key": [1, 2]}\n' + text):
        manifest.write_text(damaged, encoding="utf-8")
        validation.build_index()
        assert index() == ours, damaged
    index_pages.drop_manifest(docs)
    validation.build_index()
    assert index() == ours
    assert len(set(re.findall(r"validations/[^\"' ]+\.html", ours))) == 3


def test_a_page_is_the_one_the_site_builder_renders(tmp_path):
    """The page a batch writes is the page ``build_data_docs`` writes for the same stored
    result, but for the random ids of its collapsible blocks."""
    reports = run_batch(tmp_path, {"orders.csv": "shop-products"}, index=False)
    page = tmp_path / "data_docs" / reports[0]["validation"]["data_docs"]
    validation = Ingest(tmp_path).validation
    (result_id,) = validation.context.validation_results_store.list_keys()

    validation.build_docs([result_id], index=False)
    ours = page.read_text(encoding="utf-8")
    validation.context.build_data_docs(resource_identifiers=[result_id], build_index=False)
    data_docs.make_offline(tmp_path / "data_docs", [data_docs.page_path(result_id)], index=False)
    theirs = page.read_text(encoding="utf-8")
    assert len(UUID.findall(ours)) == len(UUID.findall(theirs)) > 0
    assert UUID.sub("<id>", theirs) == UUID.sub("<id>", ours)


def test_a_new_task_renders_its_pages_from_the_compiled_templates(tmp_path, monkeypatch):
    """Great Expectations' page templates are compiled once, not in every task: a second
    ``Ingest`` (a new task, new Jinja environments) builds its page and the index without
    compiling one of them, and gives the same page but for its random ids."""
    import jinja2

    first = run_batch(tmp_path / "first", {"orders.csv": "shop-products"})
    compiled: list[str] = []
    compile_template = jinja2.Environment.compile

    def counting(self, source, name=None, filename=None, raw=False, defer_init=False):
        if name is not None:
            compiled.append(name)
        return compile_template(self, source, name, filename, raw, defer_init)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    second = run_batch(tmp_path / "second", {"orders.csv": "shop-products"})

    assert compiled == []
    pages = [
        (tmp_path / name / "data_docs" / reports[0]["validation"]["data_docs"]).read_text("utf-8")
        for name, reports in (("first", first), ("second", second))
    ]
    assert len(UUID.findall(pages[1])) > 0
    # times, and import ids (time and 8 hex digits) differ
    strip = re.compile(
        r"\d{8}T\d{6}(?:\.\d+)?Z(?:-[0-9a-f]{8})?|\d{4}-\d{2}-\d{2}[T ][\d:.]+(?:\+00:00|Z)?"
    )
    assert strip.sub("<t>", UUID.sub("<id>", pages[0])) == strip.sub(
        "<t>", UUID.sub("<id>", pages[1])
    )
    assert (tmp_path / "second" / "data_docs" / "index.html").is_file()


@pytest.mark.parametrize("fault", ["temp dir is a file", "cache folder removed"])
def test_pages_are_built_when_the_template_cache_cannot_be_used(tmp_path, monkeypatch, fault):
    """The compiled-template cache only saves time: a temp dir where it cannot be made, or its
    folder removed under a running task, still gives the page."""
    import shutil
    import tempfile

    temp = tmp_path / "temp"
    if fault == "temp dir is a file":
        temp.write_text("not a folder", encoding="utf-8")
    else:
        temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    data_dir = tmp_path / "data"
    ingest = Ingest(data_dir, MERCHANTS, f"sqlite:///{data_dir / 'warehouse.db'}")
    ingest.validation._site()
    if fault == "cache folder removed":
        (cache,) = temp.iterdir()
        shutil.rmtree(cache)
    path = data_dir / "in" / "orders.csv"
    path.parent.mkdir(parents=True)
    path.write_text(with_bad_row("website_products", "BAD-1"), encoding="utf-8")
    outcome = ingest.import_file(path, "shop-products", "upload")
    ingest.finish()

    assert (data_dir / "data_docs" / outcome.data_docs).is_file()
    assert (data_dir / "data_docs" / "index.html").is_file()
