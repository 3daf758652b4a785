"""Row checks with Great Expectations: the template's saved suite, run on files' records.

Great Expectations and pandas are imported when a ``Validation`` is made, once per process or
task (never, on a Celery worker that loaded them: ``review_ingest.tasks.preload``), never when a DAG
file is parsed. One ``Validation`` serves every file of a batch; Data Docs are built once per
batch for all of its files.

``check_files`` runs a suite once over several files: the frame is indexed by (file, line), the
file being its import id, and each failing row goes back to its file. A run has a fixed cost
whatever its rows (building the metric graph, which ``gx_compat.memo`` keeps down), so small
files are validated together; one page of the Data Docs then shows them all, and names each file
and its import.

Results use the COMPLETE format with ``exclude_unexpected_values``: failing rows come back as
their (file, line) index and never with their values, so e-mails and names stay out of the stored
results and the Data Docs, and an all-bad file stays small.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from review_ingest.core import rules
from review_ingest.core.merchants import Merchant
from review_ingest.core.outcomes import Record, RowError
from review_ingest.core.template_columns import Template
from review_ingest.quality import data_docs, docs_index, gx_compat
from review_ingest.quality.suites import suite_path
from review_ingest.settings import EXPECTATIONS_DIR

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "exclude_unexpected_values": True,
    "partial_unexpected_count": 0,
    "return_unexpected_index_query": False,
}
#: Failing lines of each expectation kept in the stored result that the Data Docs show.
DOCS_LINES_SHOWN = 20
#: The validation frame's index: which file, and the line where the row starts in it. A file
#: validated alone has the line only: Great Expectations lists a MultiIndex's failing rows in a
#: Python loop, which is slow for a big file with many failing rows.
FILE, LINE = "file", "line"
#: The one Data Docs site, under ``docs_dir``.
SITE = "local_site"
#: The list of the latest pages that sites kept before ``docs_index``'s manifest (in
#: ``docs_dir``): deleted once the manifest is made.
LATEST_PAGES = ".latest-pages.json"
_RANK = {code: rank for rank, code in enumerate(rules.PRIORITY)}
#: Failing (row, column) pairs turned into RowErrors at a time (``_row_errors``).
_CHUNK = 10_000


@dataclass(frozen=True)
class FileRows:
    """The records of one file to validate: ``label`` (its import id) names its rows in the
    frame and the Data Docs, ``name`` is the file's name shown beside it."""

    label: str
    name: str
    records: list[Record]


@dataclass(frozen=True)
class RowCheck:
    """What the suite found in one file: one error per refused (line, column)."""

    errors: list[RowError]
    result_id: Any | None


class Validation:
    """A Great Expectations context with the four suites, its results and Data Docs on disk."""

    def __init__(
        self,
        docs_dir: Path | None,
        results_dir: Path | None,
        suites_dir: Path = EXPECTATIONS_DIR,
    ):
        """Without ``docs_dir`` no Data Docs are built; without ``results_dir`` results stay in
        memory (``check``)."""
        quiet_gx_logs()
        preloaded = "great_expectations" in sys.modules
        started = time.perf_counter()
        gx = gx_compat.load()

        if preloaded:
            log.info("Great Expectations: already loaded in this process")
        else:
            log.info(
                "Great Expectations: imported in %.1f s (Celery workers load it once with "
                "review_ingest_celery.CELERY_CONFIG)",
                time.perf_counter() - started,
            )
            # What was just imported stays for the process's life: frozen out of the
            # collector's sight, its many objects are not scanned again by each full collection
            # that a big file's records and requests set off.
            gc.freeze()
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        self._gx = gx
        self.docs_dir = docs_dir
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        )
        if results_dir is not None:
            config.stores["validation_results_store"] = {
                "class_name": "ValidationResultsStore",
                "store_backend": _filesystem(results_dir),
            }
        config.data_docs_sites = {}
        if docs_dir is not None:
            config.data_docs_sites[SITE] = {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": _filesystem(docs_dir),
                # The index shows the newest pages (``docs_index``, which links to every
                # page); Great Expectations' own builder, when asked, as many.
                "site_index_builder": {
                    "class_name": "DefaultSiteIndexBuilder",
                    "validation_results_limit": docs_index.LATEST_ROWS,
                },
            }
        self.context = gx.get_context(project_config=config, mode="ephemeral")
        source = self.context.data_sources.add_pandas("order_files")
        self._definitions: dict[str, Any] = {}
        self._suites_dir = suites_dir
        self._source = source
        self._site_builder: Any | None = None

    def _definition(self, template_id: str) -> Any:
        """The ValidationDefinition of a template: its saved suite on a DataFrame asset."""
        if template_id not in self._definitions:
            gx = self._gx
            saved = json.loads(suite_path(template_id, self._suites_dir).read_text("utf-8"))
            suite = self.context.suites.add(gx.ExpectationSuite(**saved))
            asset = self._source.add_dataframe_asset(template_id)
            batch = asset.add_batch_definition_whole_dataframe(f"{template_id}_file")
            self._definitions[template_id] = self.context.validation_definitions.add(
                gx.ValidationDefinition(name=template_id, data=batch, suite=suite)
            )
        return self._definitions[template_id]

    def check_files(
        self,
        files: list[FileRows],
        template: Template,
        merchant: Merchant,
        as_of: dt.date,
        run_name: str,
    ) -> dict[str, RowCheck]:
        """Validate several files of one template in one run of its suite; each file's errors.

        The suite's fixed cost (its metric graph) is paid once for all of them: the frame holds
        every file's rows, indexed by (file, line), and each failing (file, line) goes back to
        its file. ``merchant`` gives the time zone and the oldest order day, so every file must
        share them (``as_of`` too).
        """
        files = [f for f in files if f.records]
        checks = {f.label: RowCheck(errors=[], result_id=None) for f in files}
        if not files:
            return checks
        definition = self._definition(template.id)
        frame = build_frame(files, template, merchant)
        batch = definition.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        with gx_compat.validating(frame):
            result = batch.validate(
                definition.suite,
                result_format=RESULT_FORMAT,
                expectation_parameters=expectation_parameters(merchant, as_of),
            )
        del frame  # ``_release`` lets go of the engine's reference: the frame is freed then
        _release(batch)
        failing = list(_failing(result, files))
        _cut_failing_lists(result)
        errors = _row_errors(failing, files)
        result_id = None
        if self.docs_dir:
            result_id = self._keep_for_docs(result, template.id, run_name, files)
        return {
            f.label: RowCheck(errors=errors.get(f.label, []), result_id=result_id) for f in files
        }

    def _keep_for_docs(
        self, result: Any, suite_name: str, run_name: str, files: list[FileRows]
    ) -> Any:
        """Store the result (its failing-row lists cut short) for the Data Docs.

        The page's "Batch Parameters" table names each file of the run by its import id.
        """
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        run_id = RunIdentifier(run_name=run_name)
        result.meta["run_id"] = run_id
        result.meta["validation_time"] = run_id.run_time
        result.meta["batch_parameters"] = {
            "dataframe": f"<{len(files)} order file(s), rows indexed by "
            f"{'line' if len(files) == 1 else '(file, line)'}>",
            "files": {f.label: f.name for f in files},
        }
        suite_id = ExpectationSuiteIdentifier(name=suite_name)
        result_id = ValidationResultIdentifier(
            expectation_suite_identifier=suite_id,
            run_id=run_id,
            batch_identifier=result.batch_id or suite_name,
        )
        self.context.validation_results_store.store_validation_results(
            suite_validation_result=result,
            suite_validation_result_identifier=result_id,
            expectation_suite_identifier=suite_id,
        )
        return result_id

    def build_docs(self, result_ids: list[Any], *, index: bool = True) -> None:
        """Build the Data Docs pages of these validations once for a batch, then make them
        work offline. Other workers may build into the same folder: the lock keeps one build
        at a time.

        ``index=False`` leaves the index to ``build_index``: a DAG run's batches each build
        their pages and one task rebuilds the index after them.
        """
        ids = [r for r in result_ids if r is not None]
        if ids and self.docs_dir is not None:
            with data_docs.build_lock(self.docs_dir):
                self._build_pages(ids)
                written = self._write_index() if index else []
                pages = [data_docs.page_path(r) for r in ids]
                data_docs.make_offline(self.docs_dir, [*pages, *written], index=False)

    def build_index(self) -> None:
        """Rebuild the Data Docs index (and the history pages that changed), and no page."""
        if self.docs_dir is None:
            return
        with data_docs.build_lock(self.docs_dir):
            if not (self.docs_dir / "static" / "styles").is_dir():  # each page build copies them
                self._site().target_store.copy_static_assets()
            data_docs.make_offline(self.docs_dir, self._write_index(), index=False)

    def _build_pages(self, result_ids: list[Any]) -> None:
        """Render the page of each of these stored results, as the site's builder renders it,
        and add them to the index's manifest (``docs_index``).

        Asked for some pages, Great Expectations' SiteBuilder still lists every stored result
        and reads its key, so a batch would cost more with each day of history. This renders
        the given results only, with the site's own renderer and view, into the site's store.
        """
        from great_expectations.data_context.store.html_site_store import SiteSectionIdentifier

        site = self._site()
        section = site.site_section_builders["validations"]
        self._ensure_manifest()
        built = []
        for result_id in result_ids:
            try:
                result = self.context.validation_results_store.get(result_id)
                page = section.view_class.render(
                    section.renderer_class.render(result),
                    data_context_id=section.data_context_id,
                    show_how_to_buttons=section.show_how_to_buttons,
                )
            except Exception:  # as the SiteBuilder does: the batch's other pages still get built
                log.exception("Data Docs: the page of %s could not be rendered", result_id)
                continue
            key = SiteSectionIdentifier(
                site_section_name=section.name, resource_identifier=result_id
            )
            section.target_store.set(key, page)
            built.append(_index_entry(result_id, result))
        site.target_store.copy_static_assets()
        docs_index.append(self.docs_dir, built)

    def _write_index(self) -> list[str]:
        """The index and the history pages that changed, from the manifest of the pages built
        (``docs_index``) rather than from every page and stored result, which the site's index
        builder lists and reads each time: its cost would grow with each day of history.
        Returns the pages written."""
        self._ensure_manifest()
        site_name = self._site().site_index_builder.site_name
        try:
            return docs_index.write_index(self.docs_dir, self._render_index, site_name)
        except docs_index.ManifestDamaged as exc:
            log.warning("Data Docs: %s: listing the pages on disk", exc)
            docs_index.drop_manifest(self.docs_dir)
            self._ensure_manifest()
            return docs_index.write_index(self.docs_dir, self._render_index, site_name)

    def _render_index(self, entries: list[docs_index.Entry], title: str) -> str:
        """An index page listing these pages, as the site's index builder renders one."""
        from great_expectations.data_context.types.resource_identifiers import (
            ValidationResultIdentifier,
        )

        builder = self._site().site_index_builder
        links: dict[str, Any] = OrderedDict(site_name=title)
        for entry in entries:
            key = ValidationResultIdentifier.from_tuple(entry.key)
            builder.add_resource_info_to_index_links_dict(
                index_links_dict=links,
                expectation_suite_name=key.expectation_suite_identifier.name,
                section_name="validations",
                batch_identifier=key.batch_identifier,
                run_id=key.run_id,
                validation_success=entry.success,
                run_time=key.run_id.run_time,
                run_name=key.run_id.run_name,
                asset_name=entry.asset_name,
                batch_kwargs=entry.batch_kwargs,
                batch_spec=entry.batch_spec,
            )
        return builder.view_class.render(
            builder.renderer_class.render(links),
            data_context_id=builder.data_context_id,
            show_how_to_buttons=builder.show_how_to_buttons,
        )

    def _ensure_manifest(self) -> None:
        """A site built before the index's manifest: its pages on disk, listed, and their
        stored results read, once (a page whose result is gone is left out, as the site's
        index builder leaves it out)."""
        from great_expectations.data_context.types.resource_identifiers import (
            ValidationResultIdentifier,
        )

        if docs_index.has_manifest(self.docs_dir):
            return
        site = self._site().target_store.store_backends[ValidationResultIdentifier]
        keys = sorted(
            (ValidationResultIdentifier.from_tuple(key) for key in site.list_keys()),
            key=lambda key: key.run_id.run_time,
        )
        entries = []
        for key in keys:
            try:
                entries.append(_index_entry(key, self.context.validation_results_store.get(key)))
            except Exception as exc:  # noqa: BLE001 - the other pages are still listed
                page = data_docs.page_path(key)
                log.warning("Data Docs: %s left out of the index (%s)", page, exc)
        docs_index.append(self.docs_dir, entries)
        (self.docs_dir / LATEST_PAGES).unlink(missing_ok=True)
        log.info("Data Docs: the index's manifest made from %d page(s) on disk", len(entries))

    def _site(self) -> Any:
        """The local site's SiteBuilder, made by the context as ``build_data_docs`` makes it."""
        if self._site_builder is None:
            site = self.context._init_site_builder_for_data_docs_site_creation(
                site_name=SITE, site_config=self.context.variables.data_docs_sites[SITE]
            )
            _keep_compiled_templates(site)
            self._site_builder = site
        return self._site_builder


def expectation_parameters(merchant: Merchant, as_of: dt.date) -> dict[str, int]:
    """The suites' parameters: the newest and oldest order days allowed, as ordinals."""
    return {
        "as_of_day": as_of.toordinal(),
        "oldest_day": as_of.toordinal() - merchant.max_order_age_days,
    }


def _keep_compiled_templates(site: Any) -> None:
    """Let the site's Jinja views keep their compiled templates on disk, for every process.

    Each view of a SiteBuilder compiles Great Expectations' page templates again, which made
    every task's first Data Docs page slower than its next. Jinja's own bytecode cache keeps
    them in a folder of the system's temp dir private to the user, each checked against its
    template's source before use. A cache that cannot be made, read or written is only a miss:
    the templates are compiled as before."""
    from jinja2 import FileSystemBytecodeCache

    class QuietCache(FileSystemBytecodeCache):
        def load_bytecode(self, bucket: Any) -> None:
            try:
                super().load_bytecode(bucket)
            except OSError as exc:
                log.debug("Data Docs: compiled template not read (%s)", exc)

        def dump_bytecode(self, bucket: Any) -> None:
            try:
                super().dump_bytecode(bucket)
            except OSError as exc:
                log.debug("Data Docs: compiled template not kept (%s)", exc)

    try:
        cache = QuietCache()
    except (OSError, RuntimeError) as exc:  # no private folder in the temp dir
        log.warning("Data Docs: templates are compiled in each task (%s)", exc)
        return
    section = site.site_section_builders["validations"]
    for view in (section.view_class, site.site_index_builder.view_class):
        view.env.bytecode_cache = cache


def _index_entry(result_id: Any, result: Any) -> docs_index.Entry:
    """What the index shows of a validation, as the site's index builder reads it from the
    stored result."""
    meta = result.meta or {}
    batch_kwargs = dict(meta.get("batch_kwargs") or {})
    batch_spec = dict(meta.get("batch_spec") or {})
    asset_name = (
        batch_kwargs.get("data_asset_name")
        or batch_spec.get("data_asset_name")
        or result.asset_name
    )
    key = tuple(result_id.to_tuple())
    return docs_index.Entry(key, bool(result.success), asset_name, batch_spec, batch_kwargs)


def _filesystem(directory: Path) -> dict[str, str]:
    return {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(directory)}


def quiet_gx_logs() -> None:
    """Great Expectations logs hundreds of info lines at import under Airflow's log config."""
    for name in ("great_expectations", "great_expectations._docs_decorators"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_frame(files: list[FileRows], template: Template, merchant: Merchant) -> pd.DataFrame:
    """The files' values by column (empty = null), indexed by (file, line) (by line for one
    file), with the derived columns."""
    import pandas as pd

    records = [r for f in files for r in f.records]
    data: dict[str, list[Any]] = {
        column: [r.values.get(column) or None for r in records] for column in template.columns
    }
    dates = [rules.parse_order_date(v, merchant.tz) if v else None for v in data["order_date"]]
    data["email__valid"] = [rules.is_valid_email(v) if v else None for v in data["email"]]
    data["order_date__valid"] = [
        (d is not None) if v else None for v, d in zip(data["order_date"], dates, strict=True)
    ]
    lines = [r.line for r in records]
    if len(files) == 1:
        index = pd.Index(lines, name=LINE)
    else:
        labels = [f.label for f in files for _ in f.records]
        index = pd.MultiIndex.from_arrays([labels, lines], names=[FILE, LINE])
    frame = pd.DataFrame(data, index=index, dtype="object")
    # The file's text as pandas' own string type (Python storage, so Python's regular
    # expressions): Great Expectations' regex checks convert each column to it anyway, once per
    # expectation, and its null checks are slower on object columns.
    text = pd.StringDtype("python", na_value=float("nan"))
    frame = frame.astype(dict.fromkeys(template.columns, text))
    frame["order_date__day"] = pd.array(
        [d.date().toordinal() if d else None for d in dates], dtype="Int64"
    )
    return frame


def _cut_failing_lists(result: Any) -> None:
    """Keep the first ``DOCS_LINES_SHOWN`` failing lines of each expectation in the result.

    ``_failing`` has turned the complete lists into arrays already: cut here, an all-bad
    file's long lists of Python ints do not live on while its errors are built, and the stored
    result stays small on disk and quick to serialise."""
    for outcome in result.results:
        failing = outcome.result.get("unexpected_index_list")
        if failing:
            outcome.result["unexpected_index_list"] = [
                {level: values[:DOCS_LINES_SHOWN] for level, values in failing[0].items()}
            ]


def _row_errors(
    failing: list[tuple[str, str, Any, Any]], files: list[FileRows]
) -> dict[str, list[RowError]]:
    """Each file's errors, one per refused (line, column) with its worst code, by line then
    column.

    An all-bad file fails hundreds of thousands of (row, expectation) pairs, so they are kept as
    four small integer arrays, not Python objects, sorted once; only the first (worst) code of
    each (file, line, column) becomes a RowError. They turn into Python objects ``_CHUNK`` at a
    time, never the whole file's at once, so that the peak memory stays bounded.
    """
    import numpy as np

    if not failing:
        return {}
    columns = sorted({column for column, _, _, _ in failing})
    column_no = {column: number for number, column in enumerate(columns)}
    parts = [
        (
            file_no,
            lines,
            np.full(len(lines), column_no[column], np.int16),
            np.full(len(lines), _RANK[code], np.int8),
        )
        for column, code, file_no, lines in failing
    ]
    file_no, line, column, rank = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
    order = np.lexsort((rank, column, line, file_no))
    file_no, line, column, rank = file_no[order], line[order], column[order], rank[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (
        (file_no[1:] != file_no[:-1]) | (line[1:] != line[:-1]) | (column[1:] != column[:-1])
    )
    kept = np.flatnonzero(first)
    # ``kept`` is sorted by file: each file's errors are one slice of it.
    bounds = np.searchsorted(file_no[kept], np.arange(len(files) + 1)).tolist()
    errors: dict[str, list[RowError]] = {}
    for f, rows in enumerate(files):
        if bounds[f] < bounds[f + 1]:
            found = errors[rows.label] = []
            by_line = {rec.line: rec for rec in rows.records}
            for start in range(bounds[f], bounds[f + 1], _CHUNK):
                chunk = kept[start : min(start + _CHUNK, bounds[f + 1])]
                found.extend(
                    _chunk_errors(by_line, line[chunk], column[chunk], rank[chunk], columns)
                )
    return errors


def _chunk_errors(
    by_line: dict[int, Record], lines: Any, columns_no: Any, ranks: Any, columns: list[str]
) -> list[RowError]:
    """The RowErrors of one chunk of a file's failing (line, column, rank) arrays."""
    priority = rules.PRIORITY
    found = []
    for n, c, r in zip(lines.tolist(), columns_no.tolist(), ranks.tolist(), strict=True):
        rec, name = by_line[n], columns[c]
        # The record's own line number: one int object per row, not one per error; the
        # message is made from the value when it is read (``RowError``).
        found.append(RowError(rec.line, name, priority[r], None, rec.values.get(name)))
    return found


def _release(batch: Any) -> None:
    """Let go of the validated frame and of the metrics computed on it.

    Great Expectations' execution engine keeps both after the validation (for an all-bad file,
    more memory than its errors), the frame until the next validation of the template, the
    metrics for the process's life; no later validation reads them, as each has a batch of its
    own. The metric cache has no public way to empty it."""
    engine = batch.data.execution_engine
    engine.batch_manager.reset_batch_cache()
    engine.batch_manager.batch_data_cache.clear()
    engine._metric_cache.clear()


def _failing(result: Any, files: list[FileRows]) -> Iterator[tuple[str, str, Any, Any]]:
    """For each failed expectation: its column, its code, and the file numbers and lines of
    the rows it refused, as integer arrays. With named indexes, Great Expectations lists them as
    ``[{"file": [...], "line": [...]}]`` (no "file" for one file)."""
    import numpy as np

    number = {f.label: n for n, f in enumerate(files)}
    for outcome in result.results:
        meta = outcome.expectation_config.meta or {}
        if outcome.exception_info and outcome.exception_info.get("raised_exception"):
            raise RuntimeError(
                f"expectation {outcome.expectation_config.type} on {meta.get('column')} failed "
                f"to run: {outcome.exception_info.get('exception_message')}"
            )
        if meta.get("code") == "header" and not outcome.success:
            raise RuntimeError("the validation frame does not match its suite's columns")
        if outcome.success or meta.get("code") == "header":
            continue
        for found in outcome.result.get("unexpected_index_list") or ():
            lines = np.asarray(found[LINE], dtype=np.int32)
            if FILE in found:
                file_no = np.fromiter((number[f] for f in found[FILE]), np.int32, len(lines))
            else:
                file_no = np.zeros(len(lines), dtype=np.int32)
            yield meta["column"], meta["code"], file_no, lines
