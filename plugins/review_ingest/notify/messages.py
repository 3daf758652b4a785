"""The texts of the e-mails: a merchant's report on one of its files, the data team's digest of
a DAG run, the alert on a file left waiting. Plain values in, a ``Message`` out.

No customer's address or name goes into any of them (contract sections 5 and 10). Error
messages quote values of non-personal columns, and a shifted row puts an address there (an
``order_date`` holding ``jane@example.org``): every text from a file goes through
``safe_text``. A data row taken for the header puts a customer's name in a header rejection
(``durand: did you mean lastname?``), with no address to give it away: those rejections are
told with the template's columns instead of the file's names. A name shifted into another
column (a ``language`` of ``Durand``) cannot be told from a value and is quoted as the report
quotes it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from review_ingest.core import report
from review_ingest.core.outcomes import Outcome, RowError
from review_ingest.core.template_columns import TEMPLATES

if TYPE_CHECKING:
    from review_ingest.notify.stuck import WaitingFile

MERCHANT_REPORT = "merchant_report"
ALERT_DIGEST = "alert_digest"
STUCK_FILE = "stuck_file"
#: The errors a merchant's report lists in its text; errors.csv holds more.
FIRST_ERRORS = 20
#: errors.csv attached lists at most this many errors (about 1 MB): a mail server refuses a
#: message far smaller than an all-bad 5 MB file's errors; the report on disk has them all.
MAX_ATTACHED_ERRORS = 10_000
#: ``outbox.dedupe_key`` and ``outbox.subject`` are at most this long.
MAX_KEY = MAX_SUBJECT = 255
PREFIX = "[review-ingest]"

#: Rejections that quote the names of the file's first line.
HEADER_CODES = frozenset({"missing_columns", "unknown_columns", "duplicate_columns"})
#: Something shaped like an address: a local part, ``@``, maybe a domain.
_ADDRESS = re.compile(r"[^\s'\"<>()\[\],;@]+@[^\s'\"<>()\[\],;@]*")
#: A quoted value, as Python's ``repr`` quotes the values messages show.
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_HIDDEN = "'(hidden)'"


@dataclass(frozen=True)
class Message:
    """One e-mail as the outbox keeps it: its fact (``dedupe_key``), who gets it, its text."""

    dedupe_key: str
    kind: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    attachment_name: str | None = None
    attachment: str | None = None


@dataclass(frozen=True)
class FailedTask:
    """A task instance of a DAG run that did not succeed (``map_index`` -1: not mapped)."""

    task_id: str
    map_index: int
    state: str

    @property
    def label(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"


def dedupe_key(kind: str, *parts: str) -> str:
    """``kind:part:part``: one message per fact; hashed when longer than the column."""
    key = ":".join((kind, *parts))
    if len(key) <= MAX_KEY:
        return key
    return f"{kind}:sha256:{hashlib.sha256(key.encode('utf-8')).hexdigest()}"


def safe_text(text: str) -> str:
    """``text`` with no address in it: when it holds one, every quoted value goes (a value next
    to an address may be a name: a data row read as the header), and any address left is
    masked as the review UI masks one (``a***@example.com``)."""
    if "@" not in text or not _ADDRESS.search(text):
        return text
    return _ADDRESS.sub(_mask, _QUOTED.sub(_HIDDEN, text))


def _mask(match: re.Match[str]) -> str:
    local, _, domain = match.group(0).partition("@")
    return f"{local[:1]}***@{domain}"


def _subject(text: str) -> str:
    """One line (a file name may hold a line break), no address, short enough for the column."""
    line = " ".join(safe_text(text).split())
    return line if len(line) <= MAX_SUBJECT else line[: MAX_SUBJECT - 3] + "..."


def merchant_report(outcome: Outcome, recipients: Sequence[str]) -> Message:
    """The merchant's e-mail about one processed file: status, counts, the first errors, and
    ``errors.csv`` attached (``line;column;code;message``, its messages made safe)."""
    rec = outcome.record
    name = safe_text(rec.file_name)
    created = rec.brand_requests + rec.product_requests
    lines = [
        f"Your file {name} (merchant {rec.merchant_id}) was processed: {_verdict(outcome)}",
        "",
        f"Import: {rec.import_id}",
        f"Source: {rec.source}",
        f"Processed at: {_utc(rec.processed_at)}",
        "",
        f"Rows in the file: {rec.total_rows}",
        f"Valid rows: {rec.valid_rows}",
        f"Rows with errors: {rec.error_rows} ({len(outcome.errors)} errors)",
        f"Duplicate rows: {rec.duplicate_rows}",
        f"Review requests created: {created} ({rec.brand_requests} brand, "
        f"{rec.product_requests} product)",
    ]
    lines += _first_errors(outcome.errors)
    if outcome.warnings:
        lines += ["", *(f"Please check: {safe_text(w.message)}" for w in outcome.warnings)]
    lines += ["", "The attached errors.csv lists the errors (line;column;code;message)."]
    if len(outcome.errors) > MAX_ATTACHED_ERRORS:
        lines[-1] = (
            f"The attached errors.csv lists the first {MAX_ATTACHED_ERRORS:,} of the "
            f"{len(outcome.errors):,} errors (line;column;code;message); the file's report "
            "lists them all."
        )
    counts = f"{rec.valid_rows} of {rec.total_rows} rows valid"
    return Message(
        dedupe_key=dedupe_key(MERCHANT_REPORT, rec.import_id),
        kind=MERCHANT_REPORT,
        recipients=tuple(recipients),
        subject=_subject(f"{PREFIX} {rec.merchant_id}: {name} {rec.status} ({counts})"),
        body="\n".join(lines) + "\n",
        attachment_name="errors.csv",
        attachment=_errors_csv(outcome),
    )


def _verdict(outcome: Outcome) -> str:
    rec = outcome.record
    if outcome.rejection is not None:
        code = outcome.rejection.code
        if code in HEADER_CODES:
            message = _header_problem(code, rec.template)
        else:
            message = safe_text(outcome.rejection.message)
        return f"rejected, nothing was loaded ({code}): {message}"
    if rec.status == "already_imported":
        earlier = f" by import {outcome.earlier_import_id}" if outcome.earlier_import_id else ""
        return f"already imported: these bytes were loaded before{earlier}; nothing loaded again."
    return f"{rec.status}."


def _header_problem(code: str, template_id: str | None) -> str:
    """A header rejection told without the names of the file's first line: they are quoted in
    the report, and a data row taken for the header would quote a customer's name (``did you
    mean``) with no address to give it away. The template's own columns say what is expected."""
    problem = {
        "missing_columns": "the first line lacks mandatory columns",
        "unknown_columns": "the first line names columns the template does not know",
        "duplicate_columns": "the first line names a column more than once",
    }[code]
    template = TEMPLATES.get(template_id or "")
    if template is None:
        return f"{problem}; the file's report names them."
    expected = ";".join([*(f"{c}*" for c in template.mandatory), *template.optional])
    return (
        f"{problem} (the file's report names them). The first line must be the header of the "
        f"{template.id} template, mandatory columns marked *: {expected}"
    )


def _first_errors(errors: Sequence[RowError]) -> list[str]:
    if not errors:
        return []
    shown = errors[:FIRST_ERRORS]
    title = "Errors" if len(errors) == len(shown) else f"The first {len(shown)} errors"
    lines = ["", f"{title} (line, column, code, message):"]
    lines += [
        f"  line {e.line}, {e.column or '-'}, {e.code}: {safe_text(e.message)}" for e in shown
    ]
    return lines


def _errors_csv(outcome: Outcome) -> str:
    """``errors.csv`` as the contract writes it (formulas defused), messages made safe."""
    shown = [
        RowError(e.line, e.column, e.code, safe_text(e.message))
        for e in outcome.errors[:MAX_ATTACHED_ERRORS]
    ]
    return report.errors_csv(Outcome(record=outcome.record, errors=shown))


def run_digest(
    dag_id: str,
    run_id: str,
    rejected: Sequence[Mapping[str, Any]],
    failed: Sequence[FailedTask],
    recipients: Sequence[str],
) -> Message:
    """The data team's one e-mail about a DAG run with rejected files or failed tasks: each
    rejected file by merchant, name, code and import (codes only: no message, no value)."""
    lines = [f"DAG {dag_id}, run {run_id}:", ""]
    if failed:
        lines.append(f"Tasks that did not succeed ({len(failed)}):")
        lines += [f"  {task.label}: {task.state}" for task in failed]
        lines.append("")
    if rejected:
        lines.append(f"Rejected files ({len(rejected)}):")
        lines += [
            f"  {f['merchant_id']} / {safe_text(str(f['file_name']))}: {f.get('rejection')} "
            f"(import {f['import_id']}, report {f.get('report')})"
            for f in rejected
        ]
        lines.append("")
    lines.append("The tasks' logs are in Airflow; each file's report names its errors.")
    told = [f"{len(rejected)} rejected file(s)"] if rejected else []
    told += [f"{len(failed)} failed task(s)"] if failed else []
    return Message(
        dedupe_key=dedupe_key(ALERT_DIGEST, dag_id, run_id),
        kind=ALERT_DIGEST,
        recipients=tuple(recipients),
        subject=_subject(f"{PREFIX} {dag_id} {run_id}: {', '.join(told)}"),
        body="\n".join(lines) + "\n",
    )


def stuck_alert(
    file: WaitingFile, now: dt.datetime, minutes: int, recipients: Sequence[str]
) -> Message:
    """The data team's one e-mail about a file waiting longer than ``minutes``: one per file
    and modification time, however many checks see it."""
    name = safe_text(file.name)
    waited = int((now.timestamp() - file.mtime) // 60)
    where = "upload folder" if file.source == "upload" else "SFTP inbox"
    body = [
        f"A file waits in the {where} of merchant {file.merchant_id} for {waited} minutes "
        f"(the alert is for files waiting more than {minutes}).",
        "",
        f"File: {name}",
        f"Folder: {safe_text(file.folder)}",
        f"Last modified: {_utc(dt.datetime.fromtimestamp(file.mtime, dt.UTC))}",
        "",
        "Is its DAG paused or failing, or the merchant's configuration wrong? This alert is "
        "sent once for this file as it is now; a file modified again is told again.",
    ]
    stamp = str(round(file.mtime * 1_000_000))
    digest = hashlib.sha256(file.name.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return Message(
        dedupe_key=dedupe_key(STUCK_FILE, file.source, file.merchant_id, digest, stamp),
        kind=STUCK_FILE,
        recipients=tuple(recipients),
        subject=_subject(f"{PREFIX} {file.merchant_id}: {name} waits in its {where}"),
        body="\n".join(body) + "\n",
    )


def _utc(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
