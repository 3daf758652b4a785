"""The report of one file (contract section 5): ``report.json``, ``report.html``, ``errors.csv``."""

from __future__ import annotations

import csv
import html
import io
import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from review_ingest.core.outcomes import Outcome

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: ``<data>/data_docs/`` seen from ``<data>/reports/<merchant_id>/<import_id>/report.html``.
DOCS_FROM_REPORT = "../../../data_docs/"
#: report.json and report.html list this many errors and duplicates at most, so that an all-bad
#: 5 MB file still gives a small report; errors.csv (and the warehouse) hold every one.
MAX_LISTED = 1000


def to_dict(outcome: Outcome) -> dict[str, Any]:
    """The JSON report, key for key as the contract shows it."""
    rec = outcome.record
    rejection = None
    if outcome.rejection:
        rejection = {"code": outcome.rejection.code, "message": outcome.rejection.message}
    report: dict[str, Any] = {
        "import_id": rec.import_id,
        "merchant_id": rec.merchant_id,
        "source": rec.source,
        "file_name": rec.file_name,
        "sha256": rec.sha256,
        "size_bytes": rec.size_bytes,
        "template": rec.template,
        "status": rec.status,
        "rejection": rejection,
        "total_rows": rec.total_rows,
        "valid_rows": rec.valid_rows,
        "error_rows": rec.error_rows,
        "duplicate_rows": rec.duplicate_rows,
        "suppressed_rows": rec.suppressed_rows,
        "requests": {
            "brand": rec.brand_requests,
            "product": rec.product_requests,
            "due_now": outcome.due_now,
        },
        "errors": [
            {"line": e.line, "column": e.column, "code": e.code, "message": e.message}
            for e in outcome.errors[:MAX_LISTED]
        ],
        "duplicates": [
            {"line": d.line, "duplicate_of_line": d.duplicate_of_line}
            for d in outcome.duplicates[:MAX_LISTED]
        ],
        "existing_proofs": [
            {"order_ref": p.order_ref, "line": p.line}
            for p in (outcome.rejection.existing_proofs if outcome.rejection else ())
        ],
        "warnings": [w.to_dict() for w in outcome.warnings],
        "validation": {"suite": outcome.suite, "data_docs": outcome.data_docs},
    }
    if outcome.earlier_import_id:
        report["earlier_import_id"] = outcome.earlier_import_id
    if len(outcome.errors) > MAX_LISTED:
        report["errors_total"] = len(outcome.errors)
        report["errors_by_code"] = dict(Counter(e.code for e in outcome.errors).most_common())
    if len(outcome.duplicates) > MAX_LISTED:
        report["duplicates_total"] = len(outcome.duplicates)
    return report


def to_json(outcome: Outcome) -> str:
    return dumps(to_dict(outcome))


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def for_merchant(report: dict[str, Any]) -> dict[str, Any]:
    """The copy a merchant receives: no ``validation.data_docs``, a page of our server."""
    validation = {k: v for k, v in report["validation"].items() if k != "data_docs"}
    return {**report, "validation": validation}


def _cell(value: object) -> str:
    """A spreadsheet must not run a value as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def errors_csv(outcome: Outcome) -> str:
    """``line;column;code;message``: the header line is there even when there is no error."""
    out = io.StringIO()
    write_errors_csv(outcome, out)
    return out.getvalue()


def write_errors_csv(outcome: Outcome, out: TextIO) -> None:
    """``errors.csv`` row by row into ``out``: an all-bad file's errors never sit in memory as
    one string."""
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(["line", "column", "code", "message"])
    for e in outcome.errors:
        writer.writerow([_cell(e.line), _cell(e.column), _cell(e.code), _cell(e.message)])


def to_html(outcome: Outcome) -> str:
    """A page a person reads: what happened, the counts, then the errors in a table."""
    r = to_dict(outcome)
    esc = html.escape
    rows = "".join(
        f"<tr><td>{e['line']}</td><td>{esc(e['column'] or '')}</td><td>{esc(e['code'])}</td>"
        f"<td>{esc(e['message'])}</td></tr>"
        for e in r["errors"]
    )
    dups = "".join(
        f"<tr><td>{d['line']}</td><td>{d['duplicate_of_line']}</td></tr>" for d in r["duplicates"]
    )
    proofs = "".join(
        f"<tr><td>{esc(p['order_ref'])}</td><td>{p['line']}</td></tr>" for p in r["existing_proofs"]
    )
    signs = "".join(
        f"<tr><td>{esc(w['code'])}</td><td>{esc(w['message'])}</td></tr>" for w in r["warnings"]
    )
    verdict = _verdict(r)
    docs = r["validation"]["data_docs"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Import report: {esc(r["file_name"])}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}}
table{{border-collapse:collapse;margin:.5rem 0 1.5rem}}
td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}}
th{{background:#f3f3f3}} .status{{font-size:1.2rem;padding:.6rem;border-radius:4px}}
.loaded,.accepted,.already_imported{{background:#e6f4ea}} .rejected{{background:#fce8e6}}
</style></head><body>
<h1>Import report: {esc(r["file_name"])}</h1>
<p class="status {esc(r["status"])}">{esc(verdict)}</p>
<table>
<tr><th>Merchant</th><td>{esc(r["merchant_id"])}</td></tr>
<tr><th>Template</th><td>{esc(r["template"] or "")}</td></tr>
<tr><th>Source</th><td>{esc(r["source"])}</td></tr>
<tr><th>Import</th><td>{esc(r["import_id"])}</td></tr>
<tr><th>File</th><td>{r["size_bytes"]:,} bytes, SHA-256 {esc(r["sha256"])}</td></tr>
</table>
<h2>Rows</h2>
<table>
<tr><th>Total rows</th><td>{r["total_rows"]}</td></tr>
<tr><th>Valid rows</th><td>{r["valid_rows"]}</td></tr>
<tr><th>Rows with errors</th><td>{r["error_rows"]}</td></tr>
<tr><th>Duplicate rows</th><td>{r["duplicate_rows"]}</td></tr>
<tr><th>Valid rows of customers who opted out (no request)</th><td>{r["suppressed_rows"]}</td></tr>
<tr><th>Brand review requests</th><td>{r["requests"]["brand"]}</td></tr>
<tr><th>Product review requests</th><td>{r["requests"]["product"]}</td></tr>
<tr><th>Of which due now</th><td>{r["requests"]["due_now"]}</td></tr>
</table>
{_section("Signs of a filtered file (every customer must be asked)", ["code", "message"], signs)}
{_section("Orders already imported", ["order_ref", "line"], proofs)}
{_section(_listed("Errors", r, "errors"), ["line", "column", "code", "message"], rows)}
{_section(_listed("Duplicates", r, "duplicates"), ["line", "same as line"], dups)}
{_docs_link(docs)}
</body></html>
"""


def _docs_link(page: str | None) -> str:
    """A relative link, so that it works opened from disk and served under any URL prefix."""
    if not page:
        return ""
    href = html.escape(DOCS_FROM_REPORT + quote(page), quote=True)
    return (
        "<p>Validation details (Great Expectations Data Docs): "
        f'<a href="{href}">{html.escape(page)}</a></p>'
    )


def without_docs_link(report_html: str, page: str, note: str) -> str:
    """A ``report.html`` whose Data Docs page was deleted: ``note`` in place of its link."""
    said = f"<p>Validation details (Great Expectations Data Docs): {html.escape(note)}</p>"
    return report_html.replace(_docs_link(page), said)


def _listed(title: str, r: dict[str, Any], key: str) -> str:
    total = r.get(f"{key}_total", len(r[key]))
    if total > len(r[key]):
        more = " (the full list is in errors.csv)" if key == "errors" else ""
        return f"{title}: the first {len(r[key])} of {total}{more}"
    return f"{title} ({total})"


def _verdict(r: dict[str, Any]) -> str:
    if r["status"] == "rejected":
        return f"Rejected, nothing was loaded: {r['rejection']['message']}"
    if r["status"] == "already_imported":
        earlier = f" by import {r['earlier_import_id']}" if r.get("earlier_import_id") else ""
        return (
            f"Already imported: these exact bytes were loaded before{earlier}; "
            "nothing was loaded again."
        )
    verb = "Loaded" if r["status"] == "loaded" else "Accepted (check only, nothing loaded)"
    return f"{verb}: {r['valid_rows']} of {r['total_rows']} rows."


def _section(title: str, headers: list[str], rows: str) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    return f"<h2>{html.escape(title)}</h2>\n<table><tr>{head}</tr>{rows}</table>"


def write(outcome: Outcome, directory: Path) -> Path:
    """Write the three report files into ``directory``, each atomically; return the folder."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, write_to in (
        ("report.json", lambda out: out.write(to_json(outcome))),
        ("report.html", lambda out: out.write(to_html(outcome))),
        ("errors.csv", lambda out: write_errors_csv(outcome, out)),
    ):
        _write_atomic(directory / name, write_to)
    return directory


def _write_atomic(path: Path, write_to: Callable[[TextIO], object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as out:
        write_to(out)
    os.replace(tmp, path)


def file_summary(outcome: Outcome, data_dir: Path, moved: Path | None) -> dict[str, Any]:
    """What a run shows of one file: small enough for XCom."""
    rec = outcome.record
    return {
        "merchant_id": rec.merchant_id,
        "file_name": rec.file_name,
        "import_id": rec.import_id,
        "status": rec.status,
        "rejection": outcome.rejection.code if outcome.rejection else None,
        "total_rows": rec.total_rows,
        "valid_rows": rec.valid_rows,
        "error_rows": rec.error_rows,
        "duplicate_rows": rec.duplicate_rows,
        "brand_requests": rec.brand_requests,
        "product_requests": rec.product_requests,
        "report": str(data_dir / "reports" / rec.merchant_id / rec.import_id),
        "moved_to": str(moved) if moved else None,
    }


def skipped_summary(
    merchant_id: str, file_name: str, import_id: str, data_dir: Path
) -> dict[str, Any]:
    """The summary of a file another run was processing: nothing done here."""
    return {
        "merchant_id": merchant_id,
        "file_name": file_name,
        "import_id": import_id,
        "status": "skipped",
        "rejection": None,
        "total_rows": 0,
        "valid_rows": 0,
        "error_rows": 0,
        "duplicate_rows": 0,
        "brand_requests": 0,
        "product_requests": 0,
        "report": str(data_dir / "reports" / merchant_id / import_id),
        "moved_to": None,
    }
