"""Rules that need the order of rows (contract section 3): conflicting orders and duplicates."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from review_ingest.core import rules
from review_ingest.core.outcomes import Duplicate, Record, RowError
from review_ingest.core.template_columns import ORDER_LEVEL, Template


@dataclass
class Sorted:
    """The rows of a file once every rule has run: those to load, and why the others are not."""

    valid: list[Record]
    errors: list[RowError]
    duplicates: list[Duplicate]


def sort_rows(
    records: list[Record], row_errors: list[RowError], template: Template, tz: ZoneInfo
) -> Sorted:
    """Add conflicting-order errors, then set duplicates apart; the first valid row wins."""
    refused = {e.line for e in row_errors}
    errors = list(row_errors)
    if template.with_products:
        conflicts = conflicting_orders(records, row_errors, template, tz)
        errors.extend(conflicts)
        refused |= {e.line for e in conflicts}
    valid: list[Record] = []
    duplicates: list[Duplicate] = []
    first_line: dict[tuple[str, ...], int] = {}
    for record in records:
        if record.line in refused:
            continue
        key = tuple(record.values[c] for c in template.key)
        if key in first_line:
            duplicates.append(Duplicate(record.line, first_line[key]))
        else:
            first_line[key] = record.line
            valid.append(record)
    errors.sort(key=lambda e: e.line)
    return Sorted(valid=valid, errors=errors, duplicates=duplicates)


def conflicting_orders(
    records: list[Record], row_errors: list[RowError], template: Template, tz: ZoneInfo
) -> list[RowError]:
    """Compare each row with its order's reference row (its first row without errors).

    Only rows after the reference are compared, those with errors of their own included: each
    order-level column that differs gets its error, unless that column already has one.
    """
    columns = [c for c in ORDER_LEVEL if c in template.columns]
    refused = {e.line for e in row_errors}
    wrong = _wrong_columns(row_errors, ["order_ref", *columns])
    reference: dict[str, Record] = {}
    errors: list[RowError] = []
    for record in records:
        wrong_here = wrong.get(record.line, 0)
        if wrong_here & 1:  # its order_ref is wrong
            continue
        ref = reference.get(record.values["order_ref"])
        if ref is None:
            if record.line not in refused:
                reference[record.values["order_ref"]] = record
            continue
        for bit, column in enumerate(columns, start=1):
            if wrong_here >> bit & 1:
                continue
            if not _same(column, ref.values.get(column, ""), record.values.get(column, ""), tz):
                errors.append(
                    RowError(
                        record.line,
                        column,
                        "conflicting_order",
                        f"{column} differs from line {ref.line}, the first row of order "
                        f"{record.values['order_ref']!r}: all rows of one order must agree",
                    )
                )
    return errors


def _wrong_columns(row_errors: list[RowError], watched: list[str]) -> dict[int, int]:
    """For each line with errors in ``watched``, a bit per such column (bit i: watched[i]).

    A small int per line rather than a (line, column) tuple per error, which an all-bad file
    would hold by the hundred thousand."""
    bits = {column: 1 << i for i, column in enumerate(watched)}
    wrong: dict[int, int] = {}
    for error in row_errors:
        bit = bits.get(error.column)
        if bit:
            wrong[error.line] = wrong.get(error.line, 0) | bit
    return wrong


def _same(column: str, a: str, b: str, tz: ZoneInfo) -> bool:
    if a == b:  # most rows of an order repeat its values as they are
        return True
    if not a or not b:
        return a == b
    if column == "language":
        return a.lower() == b.lower()
    if column == "order_date":
        da, db = rules.parse_order_date(a, tz), rules.parse_order_date(b, tz)
        return da is not None and db is not None and da.date() == db.date()
    return a == b
