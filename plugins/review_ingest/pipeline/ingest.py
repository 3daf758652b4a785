"""One file through every stage: read, check, compare with the warehouse, load, report.

An ``Ingest`` holds what is costly to make (the Great Expectations context, the warehouse
engine) and serves every file of a batch, so that a task over 200 files pays for them once.
``validate_together`` runs the row checks of a batch's small files ahead of their imports, one
Great Expectations validation for many files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from review_ingest.core import report, row_order, scheduling, warnings
from review_ingest.core.merchants import Merchant, default_merchant
from review_ingest.core.outcomes import (
    ExistingProof,
    ImportRecord,
    Outcome,
    Record,
    Rejection,
    new_import_id,
)
from review_ingest.core.reading import FileRejected, read_file
from review_ingest.core.template_columns import TEMPLATES, Template
from review_ingest.privacy import addresses
from review_ingest.quality import data_docs, suites
from review_ingest.quality.validation import FileRows

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from review_ingest.quality.validation import RowCheck, Validation

log = logging.getLogger(__name__)

#: The files ``report.write`` leaves in a file's report folder.
REPORT_FILES = ("report.json", "report.html", "errors.csv")
#: Files up to this size are validated together with the other small files of their batch;
#: a bigger file's own rows outweigh the fixed cost of a validation.
TOGETHER_MAX_FILE_BYTES = 256 * 1024
#: At most this many bytes of files in one validation, so that memory stays that of one file.
TOGETHER_MAX_BYTES = 5 * 1024 * 1024

#: What a validation ahead of the import was for: the import, the file's bytes, the day.
_CheckKey = tuple[str, str, dt.date]


def as_of_noon(day: dt.date, merchant: Merchant) -> dt.datetime:
    """``check --as-of``: the import time is 12:00 that day in the merchant's time zone."""
    return dt.datetime.combine(day, dt.time(12), tzinfo=merchant.tz).astimezone(dt.UTC)


@dataclass
class Ingest:
    """The pipeline for a batch of files. ``warehouse_url`` None means check only."""

    data_dir: Path
    merchants: dict[str, Merchant] = field(default_factory=dict)
    warehouse_url: str | None = None
    data_docs: bool = True
    #: Who imports, for the audit trail; None: ``audit.process_actor()`` (``dag:<dag_id>`` in
    #: an Airflow task).
    actor: str | None = None
    _validation: Validation | None = field(default=None, init=False, repr=False)
    _engine: Engine | None = field(default=None, init=False, repr=False)
    _pending_docs: list[Any] = field(default_factory=list, init=False, repr=False)
    _checked: dict[_CheckKey, RowCheck] = field(default_factory=dict, init=False, repr=False)

    @property
    def validation(self) -> Validation:
        if self._validation is None:
            from review_ingest.quality.validation import Validation

            docs = self.data_dir / "data_docs" if self.data_docs else None
            results = self.data_dir / "gx" if self.data_docs else None
            self._validation = Validation(docs_dir=docs, results_dir=results)
        return self._validation

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from review_ingest.store import warehouse

            if self.warehouse_url is None:
                raise RuntimeError("this Ingest was made for checks only: it has no warehouse")
            self._engine = warehouse.engine_for(self.warehouse_url)
            warehouse.migrate(self._engine)
        return self._engine

    def check(
        self, data: bytes, file_name: str, template_id: str, as_of: dt.date | None = None
    ) -> Outcome:
        """``review-ingest check``: every check that needs no warehouse; nothing is loaded."""
        merchant = default_merchant(template_id)
        now = as_of_noon(as_of, merchant) if as_of else dt.datetime.now(dt.UTC)
        record = _new_record(data, file_name, merchant, "upload", now, now)
        outcome = self._evaluate(data, record, counts_only=True)
        outcome.record.status = "rejected" if outcome.rejection else "accepted"
        return outcome

    def import_file(
        self,
        path: Path,
        merchant_id: str,
        source: str,
        *,
        dry_run: bool = False,
        send_now: bool = False,
        import_id: str | None = None,
    ) -> Outcome:
        """The whole pipeline for one file; writes its reports, leaves the file where it is.

        With ``dry_run`` nothing is written to the warehouse (status ``accepted`` or
        ``rejected``, as ``check`` gives). ``import_id`` is the id to record (a claim's, see
        ``claims``); a new one by default.
        """
        data = path.read_bytes()
        now = dt.datetime.now(dt.UTC)
        received = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        merchant = self.merchants.get(merchant_id) or Merchant(merchant_id, template="")
        record = _new_record(data, path.name, merchant, source, received, now, import_id)
        if merchant_id not in self.merchants:
            outcome = _unknown_merchant(record)
        else:
            outcome = self._import(data, record, merchant, dry_run, send_now)
        if not dry_run and outcome.record.status != "loaded":
            from review_ingest.store import warehouse

            warehouse.save(
                self.engine, outcome, actor=self.actor, also=_report_to_merchant(outcome, merchant)
            )
        self.write_reports(outcome)
        log.info(
            "merchant %s file %s: %s (import %s, %d rows, %d errors, %d duplicates)",
            record.merchant_id,
            record.file_name,
            outcome.rejection.code if outcome.rejection else record.status,
            record.import_id,
            record.total_rows,
            record.error_rows,
            record.duplicate_rows,
        )
        return outcome

    def finish_import(
        self, path: Path, import_id: str, *, send_now: bool = False
    ) -> Outcome | None:
        """The outcome of import ``import_id`` when the warehouse already holds it, else None.

        A run killed (or failed) after its commit but before its file moved leaves its claim
        with that ``import_id``; the run that takes the claim over finishes that import: it
        records nothing new, writes the reports again only when they are not all on disk (the
        file evaluated again as of the import's own time, so with the same outcome), and
        returns that import's outcome, with the warehouse's counts.
        """
        from review_ingest.store import warehouse

        record = warehouse.import_record(self.engine, import_id)
        if record is None:
            return None
        log.info(
            "merchant %s file %s: import %s was committed by an interrupted run; finishing it, "
            "nothing recorded again",
            record.merchant_id,
            record.file_name,
            import_id,
        )
        folder = self.data_dir / "reports" / record.merchant_id / record.import_id
        if all((folder / name).is_file() for name in REPORT_FILES):
            return Outcome(record=record, suite=record.template)
        outcome = self._rebuild(path.read_bytes(), record, send_now)
        self.write_reports(outcome)
        return outcome

    def _rebuild(self, data: bytes, record: ImportRecord, send_now: bool) -> Outcome:
        """The outcome of a committed import, evaluated again from its bytes as of its own
        ``processed_at``; the warehouse's record stays the truth."""
        from review_ingest.store import warehouse

        merchant = self.merchants.get(record.merchant_id)
        if merchant is None or record.rejection_code == "unknown_merchant":
            outcome = _unknown_merchant(record)
        elif record.status == "already_imported":
            earlier = warehouse.loaded_import(self.engine, record.merchant_id, record.sha256)
            outcome = Outcome(record=record, suite=merchant.template, earlier_import_id=earlier)
        else:
            outcome = self._evaluate(
                data,
                replace(record),
                merchant,
                send_now=send_now,
                suppressed=self._suppressed(merchant),
            )
            if record.status == "rejected":
                rejection = outcome.rejection or self._file_rejection(outcome, merchant)
                _reject(outcome, rejection or Rejection(record.rejection_code or "", ""))
            outcome.warnings = warnings.read_warnings(record.warnings)
        outcome.record = record
        return outcome

    def _import(
        self, data: bytes, record: ImportRecord, merchant: Merchant, dry_run: bool, send_now: bool
    ) -> Outcome:
        from review_ingest.store import warehouse

        earlier = warehouse.loaded_import(self.engine, merchant.merchant_id, record.sha256)
        if earlier is not None:
            record.status = "already_imported"
            return Outcome(record=record, suite=merchant.template, earlier_import_id=earlier)
        outcome = self._evaluate(
            data, record, merchant, send_now=send_now, suppressed=self._suppressed(merchant)
        )
        if outcome.rejection is None:
            outcome.rejection = self._file_rejection(outcome, merchant)
        if outcome.rejection is not None:
            _reject(outcome, outcome.rejection)
            return outcome
        self._compare_with_history(outcome, merchant)
        if dry_run:
            record.status = "accepted"
        else:
            self._load(outcome, merchant)
        return outcome

    def _file_rejection(self, outcome: Outcome, merchant: Merchant) -> Rejection | None:
        """The whole-file checks after the rows': existing proofs, then too many errors."""
        return self._existing_proofs(outcome, merchant) or _too_many_errors(
            outcome.record, merchant
        )

    def _compare_with_history(self, outcome: Outcome, merchant: Merchant) -> None:
        """Signs of a filtered file: the file against its merchant's last loaded files, kept
        in the report and in ``imports`` with the profile later files are compared with."""
        from review_ingest.store import warehouse

        record = outcome.record
        if outcome.profile is None:
            return
        history = warehouse.recent_loaded_files(
            self.engine, record.merchant_id, warnings.HISTORY_FILES, merchant.tz
        )
        weekday = record.processed_at.astimezone(merchant.tz).weekday()
        outcome.warnings = warnings.find_warnings(outcome.profile, history, weekday)
        record.warnings = warnings.warnings_json(outcome.warnings)
        record.profile = warnings.profile_json(outcome.profile)

    def _load(self, outcome: Outcome, merchant: Merchant) -> None:
        from review_ingest.store import warehouse

        outcome.record.status = "loaded"
        try:
            warehouse.save(
                self.engine, outcome, actor=self.actor, also=_report_to_merchant(outcome, merchant)
            )
        except warehouse.ProofConflict:
            # Another file of this merchant loaded some of these orders since we looked.
            rejection = self._existing_proofs(outcome, merchant)
            _reject(outcome, rejection or Rejection("existing_proofs", "orders already loaded"))
        except warehouse.AlreadyImported as exc:
            outcome.record.status = "already_imported"
            outcome.earlier_import_id = exc.import_id
            outcome.requests = []
            outcome.errors = []
            outcome.duplicates = []
            _not_compared(outcome)

    def _suppressed(self, merchant: Merchant) -> Callable[[set[str]], set[str]]:
        """Which of a file's address hashes opted out, for this merchant or for all."""
        from review_ingest.privacy import suppressions

        def lookup(hashes: set[str]) -> set[str]:
            return suppressions.suppressed_hashes(self.engine, merchant.merchant_id, hashes)

        return lookup

    def _existing_proofs(self, outcome: Outcome, merchant: Merchant) -> Rejection | None:
        from review_ingest.store import warehouse

        first_line = outcome.order_refs
        known = warehouse.known_order_refs(self.engine, merchant.merchant_id, list(first_line))
        if not known:
            return None
        proofs = tuple(
            sorted((ExistingProof(ref, first_line[ref]) for ref in known), key=lambda p: p.line)
        )
        shown = ", ".join(f"{p.order_ref!r} (line {p.line})" for p in proofs[:5])
        more = f" and {len(proofs) - 5} more" if len(proofs) > 5 else ""
        return Rejection(
            "existing_proofs",
            f"{len(proofs)} order reference(s) of this file were already imported from an "
            f"earlier file: {shown}{more}. Send only new row_order.",
            proofs,
        )

    def _evaluate(
        self,
        data: bytes,
        record: ImportRecord,
        merchant: Merchant | None = None,
        *,
        send_now: bool = False,
        suppressed: Callable[[set[str]], set[str]] | None = None,
        counts_only: bool = False,
    ) -> Outcome:
        """Sections 1 to 4 without the warehouse: rejection, row errors, duplicates, requests.

        ``suppressed`` gives which address hashes opted out (section 11): their valid rows stay
        valid, counted in ``suppressed_rows``, and get no request. None (``check``): nobody.
        ``counts_only`` (``check``): the requests are counted, not made.
        """
        merchant = merchant or default_merchant(record.template or "")
        template = TEMPLATES[merchant.template]
        outcome = Outcome(record=record, suite=template.id)
        try:
            parsed = read_file(data, template)
        except FileRejected as exc:
            _reject(outcome, exc.rejection)
            return outcome
        now = record.processed_at
        checked = self._row_check(parsed.records, record, template, merchant)
        outcome.suite_sha256 = suites.suite_sha256(template.id)
        if checked.result_id is not None:
            self._pending_docs.append(checked.result_id)
            outcome.data_docs = data_docs.page_path(checked.result_id)
        rows = row_order.sort_rows(
            parsed.records, checked.errors + parsed.field_count_errors, template, merchant.tz
        )
        wanted = _without_suppressed(rows.valid, suppressed) if suppressed else rows.valid
        if counts_only:
            counts = scheduling.count_requests(wanted, template, merchant, now)
        else:
            outcome.requests, due_now = scheduling.build_requests(
                wanted, template, merchant, now, send_now
            )
            counts = Counter(r.request_type for r in outcome.requests)
            counts["due_now"] = due_now
        outcome.errors = rows.errors
        outcome.duplicates = rows.duplicates
        outcome.due_now = counts["due_now"]
        if not counts_only:
            outcome.profile = warnings.profile_of((r.values for r in rows.valid), merchant.language)
        for rec in parsed.records:
            ref = rec.values.get("order_ref", "")
            if ref:
                outcome.order_refs.setdefault(ref, rec.line)
        record.total_rows = parsed.total_rows
        record.valid_rows = len(rows.valid)
        record.error_rows = len({e.line for e in rows.errors})
        record.duplicate_rows = len(rows.duplicates)
        record.suppressed_rows = len(rows.valid) - len(wanted)
        record.brand_requests = counts["brand"]
        record.product_requests = counts["product"]
        return outcome

    def _row_check(
        self, records: list[Record], record: ImportRecord, template: Template, merchant: Merchant
    ) -> RowCheck:
        """The suite's verdict on a file's rows: from ``validate_together`` when it validated
        these bytes for this import and day, else from a validation of the file alone."""
        as_of = record.processed_at.astimezone(merchant.tz).date()
        checked = self._checked.pop((record.import_id, record.sha256, as_of), None)
        if checked is not None:
            return checked
        rows = FileRows(record.import_id, record.file_name, records)
        return self.validation.check_files([rows], template, merchant, as_of, record.import_id)[
            record.import_id
        ]

    def validate_together(self, files: list[ClaimedFile]) -> None:
        """Validate the small files of a batch ahead of their imports, many in one run.

        A validation has a fixed cost whatever its rows: files that share a template, a time
        zone and an oldest order day go through one, in groups of up to ``TOGETHER_MAX_BYTES``.
        Each file's errors wait for its import (``_row_check``); a file that is big, unreadable,
        rejected as a whole or changed since, or imported on another day, is validated alone
        then, exactly as without this step.
        """
        now = dt.datetime.now(dt.UTC)
        groups: dict[tuple[Any, ...], _Group] = {}
        for file in files:
            merchant = self.merchants.get(file.merchant_id)
            data = _small_file(file.path)
            if merchant is None or data is None:
                continue
            template = TEMPLATES[merchant.template]
            try:
                records = read_file(data, template).records
            except FileRejected:
                continue
            as_of = now.astimezone(merchant.tz).date()
            key = (*merchant.validated_with, as_of)
            group = groups.setdefault(key, _Group(template, merchant, as_of))
            if group.size + len(data) > TOGETHER_MAX_BYTES:
                self._validate_group(group)
                group = groups[key] = _Group(template, merchant, as_of)
            group.add(FileRows(file.import_id, file.path.name, records), data)
        for group in groups.values():
            self._validate_group(group)

    def _validate_group(self, group: _Group) -> None:
        if not group.rows:
            return
        first = group.rows[0].label
        run_name = first if len(group.rows) == 1 else f"batch-{first}"
        try:
            checks = self.validation.check_files(
                group.rows, group.template, group.merchant, group.as_of, run_name
            )
        except Exception as exc:  # noqa: BLE001 - then each file is validated alone, fails alone
            log.warning(
                "validating %d files together failed (%s): each is validated alone",
                len(group.rows),
                type(exc).__name__,
            )
            return
        for label, sha256 in group.sha256.items():
            self._checked[label, sha256, group.as_of] = checks[label]

    def write_reports(self, outcome: Outcome) -> Path:
        """Into ``<data>/reports/<merchant_id>/<import_id>/``."""
        rec = outcome.record
        return report.write(outcome, self.data_dir / "reports" / rec.merchant_id / rec.import_id)

    def close(self) -> None:
        """Let go of the warehouse's connections: an ``Ingest`` made for one request of a
        long-lived process (the review UI's check of an upload) leaves none open."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def finish(self, *, index: bool = True) -> None:
        """Build the Data Docs of every validation of this batch, once; ``index=False`` when
        the DAG run rebuilds the index after all its batches (``docs_index.build_docs_index``)."""
        if self._pending_docs and self.data_docs:
            self.validation.build_docs(list(dict.fromkeys(self._pending_docs)), index=index)
        self._pending_docs = []
        self._checked = {}


@dataclass(frozen=True)
class ClaimedFile:
    """A claimed file of a batch, before its import: where it is, whose, and its import id."""

    path: Path
    merchant_id: str
    import_id: str


@dataclass
class _Group:
    """Files to validate in one run: they share template, time zone, oldest day and date."""

    template: Template
    merchant: Merchant
    as_of: dt.date
    rows: list[FileRows] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)
    size: int = 0

    def add(self, rows: FileRows, data: bytes) -> None:
        self.rows.append(rows)
        self.sha256[rows.label] = hashlib.sha256(data).hexdigest()
        self.size += len(data)


def _small_file(path: Path) -> bytes | None:
    """The bytes of a file small enough to be validated with others, else None."""
    try:
        if path.stat().st_size > TOGETHER_MAX_FILE_BYTES:
            return None
        return path.read_bytes()
    except OSError:
        return None


def _without_suppressed(
    valid: list[Record], suppressed: Callable[[set[str]], set[str]]
) -> list[Record]:
    """The valid rows whose address did not opt out."""
    hashes = {record.line: addresses.address_hash(record.values["email"]) for record in valid}
    opted_out = suppressed(set(hashes.values()))
    if not opted_out:
        return valid
    return [record for record in valid if hashes[record.line] not in opted_out]


def _report_to_merchant(
    outcome: Outcome, merchant: Merchant
) -> Callable[[Connection], object] | None:
    """The merchant's e-mail about this file, queued in the outbox by the transaction that
    records the file (so it is neither lost nor queued twice); None when the merchant names
    nobody to tell (``notify``). Built at the commit, from the file's final outcome."""
    if not merchant.notify:
        return None
    from review_ingest.notify import messages, outbox

    def queue(connection: Connection) -> bool:
        message = messages.merchant_report(outcome, merchant.notify)
        return outbox.enqueue(connection, message, outcome.record.processed_at)

    return queue


def _reject(outcome: Outcome, rejection: Rejection) -> None:
    outcome.rejection = rejection
    outcome.record.status = "rejected"
    outcome.record.rejection_code = rejection.code
    outcome.requests = []
    outcome.due_now = 0
    outcome.record.brand_requests = outcome.record.product_requests = 0
    _not_compared(outcome)


def _not_compared(outcome: Outcome) -> None:
    """A file that loads nothing is no sign of filtering, and no history for later files."""
    outcome.warnings = []
    outcome.record.warnings = outcome.record.profile = None


def _too_many_errors(record: ImportRecord, merchant: Merchant) -> Rejection | None:
    """``too_many_errors``: rows with errors above the merchant's ``max_error_rate`` (exactly
    at the limit loads), compared as exact fractions."""
    limit = merchant.max_error_rate
    if limit is None or not record.total_rows:
        return None
    if Fraction(record.error_rows, record.total_rows) <= Fraction(str(limit)):
        return None
    return Rejection(
        "too_many_errors",
        f"{record.error_rows:,} of the {record.total_rows:,} rows have errors "
        f"({record.error_rows / record.total_rows:.2%}), more than the {_percent(limit)} this "
        f"merchant allows (max_error_rate {limit:g}): nothing was loaded. Fix the rows listed "
        "in errors.csv and send the whole file again.",
    )


def _percent(share: float) -> str:
    """``0.02`` -> ``2%``, ``0.025`` -> ``2.5%``."""
    return f"{share * 100:.4g}%"


def _new_record(
    data: bytes,
    file_name: str,
    merchant: Merchant,
    source: str,
    received: dt.datetime,
    now: dt.datetime,
    import_id: str | None = None,
) -> ImportRecord:
    record = ImportRecord(
        import_id=import_id or new_import_id(now),
        merchant_id=merchant.merchant_id,
        source=source,
        file_name=file_name,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        template=merchant.template or None,
        status="loaded",
        rejection_code=None,
        received_at=received,
        processed_at=now,
    )
    return record


def _unknown_merchant(record: ImportRecord) -> Outcome:
    outcome = Outcome(record=record)
    _reject(
        outcome,
        Rejection(
            "unknown_merchant",
            f"the folder {record.merchant_id!r} belongs to no configured merchant: "
            "nothing was loaded (add the merchant to the merchants file and send the file again)",
        ),
    )
    return outcome
