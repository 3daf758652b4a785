"""From bytes to records: the file-level checks of contract sections 1 and 2 (to ``no_data_rows``).

The CSV reader is written here rather than taken from the ``csv`` module because the contract
needs what that module does not give: the physical line where each record starts, blank lines
skipped but counted, an unmatched quote that does not swallow the rest of the file, and fields
trimmed of spaces and tabs. Lines without a quote (nearly all of them) take a fast ``split``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from review_ingest.core.outcomes import Record, Rejection, RowError
from review_ingest.core.template_columns import COLUMNS, Template
from review_ingest.settings import MAX_FILE_BYTES

SEPARATOR = ";"
_OTHER_SEPARATORS = {",": "comma (,)", "\t": "tab", "|": "pipe (|)"}
_BLANK = re.compile(r"[ \t;]*")
_BLANK_BYTES = re.compile(rb"(?:\xef\xbb\xbf)?[ \t;\r\n]*")
_TRIM = " \t"

#: Names merchants often use for a column, for the "did you mean" hint.
_ALIASES = {
    "purchase_date": "order_date",
    "date": "order_date",
    "order_id": "order_ref",
    "order_number": "order_ref",
    "reference": "order_ref",
    "mail": "email",
    "e-mail": "email",
    "e_mail": "email",
    "name": "lastname",
    "last_name": "lastname",
    "first_name": "firstname",
    "product_id": "id_product",
    "product_name": "name_product",
    "ean": "gtin_ean",
    "gtin": "gtin_ean",
    "store_id": "shop_id",
    "lang": "language",
}


class FileRejected(Exception):
    """Raised by the reading stage; carries the rejection of the whole file."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.rejection = Rejection(code=code, message=message)


@dataclass
class ParsedFile:
    """A file whose header matches its template: its records and the rows refused while reading."""

    columns: list[str]
    records: list[Record]
    field_count_errors: list[RowError] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return len(self.records) + len(self.field_count_errors)


def file_too_large(size: int, *, at_least: bool = False) -> FileRejected:
    """The ``file_too_large`` rejection of a file of ``size`` bytes (``at_least``: its reading
    stopped there, as the review UI's upload does)."""
    said = f"more than {size:,}" if at_least else f"{size:,}"
    return FileRejected(
        "file_too_large",
        f"the file is {said} bytes; the limit is {MAX_FILE_BYTES:,} bytes (5 MB): "
        "split it into several files",
    )


def read_file(data: bytes, template: Template) -> ParsedFile:
    """Run the file-level checks in the contract's order; FileRejected at the first failure."""
    if len(data) > MAX_FILE_BYTES:
        raise file_too_large(len(data))
    if _BLANK_BYTES.fullmatch(data):
        raise FileRejected("empty_file", "the file is empty: it holds no header and no order")
    text = decode(data)
    lines = text.split("\n")
    start = _skip_separator_line(lines)
    header_at = _first_non_blank(lines, start)
    if header_at is None:
        raise FileRejected("empty_file", "the file is empty: it holds no header and no order")
    header_fields, next_line = _record_at(lines, header_at)
    if isinstance(header_fields, Unclosed):  # its quotes are taken as data, for the messages
        header_fields = _plain_fields(lines[header_at])
    columns, extra_last = match_header(header_fields, template, lines[header_at])
    records, wrong = _data_records(lines, next_line, columns, extra_last)
    if not records and not wrong:
        raise FileRejected(
            "no_data_rows", "the file has a header but no order below it: nothing to import"
        )
    return ParsedFile(columns=columns, records=records, field_count_errors=wrong)


def decode(data: bytes) -> str:
    """UTF-8, with an optional byte-order mark; else ``not_utf8`` naming the first bad line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FileRejected(
            "not_utf8",
            f"the file is not UTF-8 text: the first invalid byte is on line {line}. "
            'Save it again as UTF-8 (in Excel: "CSV UTF-8 (comma delimited)", which still '
            "uses ; in many countries)",
        ) from None
    return text.removeprefix("\ufeff")


def _skip_separator_line(lines: list[str]) -> int:
    """A first line ``sep=;`` (a spreadsheet habit) is skipped; another ``sep=`` is refused."""
    first = lines[0].rstrip("\r").strip(_TRIM)
    if not first.lower().startswith("sep="):
        return 0
    sep = first[4:]
    if sep == SEPARATOR:
        return 1
    shown = _OTHER_SEPARATORS.get(sep, repr(sep))
    raise FileRejected(
        "wrong_separator",
        f"line 1 declares the separator {shown}; files must use a semicolon (;)",
    )


def _first_non_blank(lines: list[str], start: int) -> int | None:
    for index in range(start, len(lines)):
        if not _is_blank(lines[index]):
            return index
    return None


def _is_blank(line: str) -> bool:
    return _BLANK.fullmatch(line.rstrip("\r")) is not None


def normalize_name(name: str) -> str:
    """Header names compare trimmed, without one trailing ``*``, lower-cased (section 1.1)."""
    name = name.strip(_TRIM)
    if name.endswith("*"):
        name = name[:-1].strip(_TRIM)
    return name.lower()


def match_header(fields: list[str], template: Template, raw_line: str) -> tuple[list[str], bool]:
    """Check the header against the template; return its columns and whether a last empty one
    (a header ending with ``;``) is to be ignored."""
    names = [normalize_name(f) for f in fields]
    extra_last = len(names) > 1 and names[-1] == ""
    if extra_last:
        names = names[:-1]
    if len(names) == 1:
        _check_separator(raw_line)
    seen: set[str] = set()
    twice = [n for n in names if n in seen or seen.add(n)]
    if twice:
        listed = ", ".join(sorted(set(twice)))
        raise FileRejected(
            "duplicate_columns", f"the header names these columns more than once: {listed}"
        )
    missing = [c for c in template.mandatory if c not in names]
    unknown = [n for n in names if n not in template.columns]
    hints = _hints(unknown, missing, template)
    if missing:
        raise FileRejected(
            "missing_columns",
            f"the header lacks the mandatory column(s) {', '.join(missing)} of the "
            f"{template.id} template{hints}",
        )
    if unknown:
        shown = ", ".join(repr(n) if n else "an empty name" for n in unknown)
        raise FileRejected(
            "unknown_columns",
            f"the header names column(s) that the {template.id} template does not know: "
            f"{shown}{hints}. Known columns: {', '.join(template.columns)}",
        )
    return names, extra_last


def _check_separator(raw_line: str) -> None:
    """A header with no ``;`` that splits into known names on another separator is refused."""
    for sep, label in _OTHER_SEPARATORS.items():
        parts = [normalize_name(p.strip('"')) for p in raw_line.rstrip("\r").split(sep)]
        if len(parts) > 1 and sum(p in COLUMNS for p in parts) >= 2:
            raise FileRejected(
                "wrong_separator",
                f"the header is separated by {label}, not by semicolons (;): "
                "save the file again with ; as the separator",
            )


def _hints(unknown: list[str], missing: list[str], template: Template) -> str:
    hints = []
    for name in unknown:
        guess = did_you_mean(name, missing, template)
        if guess:
            hints.append(f"{name}: did you mean {guess}?")
    return f" ({'; '.join(hints)})" if hints else ""


def did_you_mean(name: str, missing: list[str], template: Template) -> str | None:
    """The column an unknown header name most likely meant: a missing one first, then any known."""
    if not name:
        return None
    alias = _ALIASES.get(name)
    if alias in template.columns:
        return alias
    for candidates in (missing, list(template.columns)):
        close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
        if close:
            return close[0]
    return None


def _data_records(
    lines: list[str], start: int, columns: list[str], extra_last: bool
) -> tuple[list[Record], list[RowError]]:
    records: list[Record] = []
    wrong: list[RowError] = []
    width = len(columns)
    # Equal values of the file share one string (names, dates, languages, brands, bad values
    # repeat from row to row): the records live until the file is loaded, so this bounds the
    # peak memory of an import.
    same: dict[str, str] = {}
    for line_no, fields in iter_records(lines, start):
        if isinstance(fields, Unclosed):
            wrong.append(_unclosed_quote_error(line_no, fields, columns))
            continue
        if extra_last and len(fields) == width + 1 and not fields[-1]:
            fields = fields[:-1]
        if len(fields) == width:
            fields = [same.setdefault(f, f) for f in fields]
            records.append(Record(line_no, dict(zip(columns, fields, strict=True))))
        else:
            wrong.append(_field_count_error(line_no, len(fields), width, extra_last))
    return records, wrong


def _field_count_error(line_no: int, got: int, width: int, extra_last: bool) -> RowError:
    if extra_last and got == width + 1:
        message = "this row has a value after the last column: remove it"
    else:
        message = f"this row has {got} fields but the header has {width} columns"
    return RowError(line_no, None, "wrong_field_count", message)


def _unclosed_quote_error(line_no: int, unclosed: Unclosed, columns: list[str]) -> RowError:
    where = (
        f"the value of column {columns[unclosed.field]}"
        if unclosed.field < len(columns)
        else f"value {unclosed.field + 1}"
    )
    return RowError(
        line_no,
        None,
        "wrong_field_count",
        f"{where} opens a double quote (\") that is never closed, so this row's fields cannot "
        'be told apart: close the quote, or double it ("") when it is part of the value',
    )


@dataclass(frozen=True)
class Unclosed:
    """A record whose value number ``field`` opens a double quote that never closes.

    RFC 4180 would read every line below into that value; the record is refused instead, and
    reading goes on at the next line.
    """

    field: int


def iter_records(lines: list[str], start: int) -> Iterator[tuple[int, list[str] | Unclosed]]:
    """Yield (physical line number, trimmed fields) for each non-blank record from ``start``;
    an unclosed quote yields Unclosed and reading resumes at the line after it."""
    index = start
    total = len(lines)
    while index < total:
        line = lines[index]
        if _is_blank(line):
            index += 1
            continue
        fields, next_index = _record_at(lines, index)
        yield index + 1, fields
        index = next_index


def _record_at(lines: list[str], index: int) -> tuple[list[str] | Unclosed, int]:
    """Parse the record that starts at ``lines[index]``; return its fields and the next index.

    An unclosed quote never swallows the rows below: the record is this line alone.
    """
    line = lines[index]
    if '"' not in line:
        return _plain_fields(line), index + 1
    parsed = _parse_quoted(lines, index)
    if isinstance(parsed, Unclosed):
        return parsed, index + 1
    return parsed


def _plain_fields(line: str) -> list[str]:
    return [f.strip(_TRIM) for f in _strip_cr(line).split(SEPARATOR)]


def _strip_cr(line: str) -> str:
    return line[:-1] if line.endswith("\r") else line


def _parse_quoted(lines: list[str], index: int) -> tuple[list[str], int] | Unclosed:
    """RFC 4180 parsing of a record that holds quotes; Unclosed when a quote never closes."""
    fields: list[str] = []
    text = _strip_cr(lines[index])
    pos = 0
    while True:
        lead = len(text) - len(text[pos:].lstrip(_TRIM))
        if lead < len(text) and text[lead] == '"':
            start = index
            value, text, pos, index = _quoted_value(lines, index, text, lead + 1)
            if value is None:
                return Unclosed(len(fields))
            rest_end = text.find(SEPARATOR, pos)
            tail = (text[pos:] if rest_end < 0 else text[pos:rest_end]).strip(_TRIM)
            if tail and index > start:
                # Closed on a later line by a quote that does not end a value (the opening
                # quote of a value below): the first quote was never closed.
                return Unclosed(len(fields))
            # Quoted or not, values are trimmed before every check (contract section 1).
            fields.append((value + tail).strip(_TRIM))
        else:
            rest_end = text.find(SEPARATOR, pos)
            raw = text[pos:] if rest_end < 0 else text[pos:rest_end]
            fields.append(raw.strip(_TRIM))
        if rest_end < 0:
            return fields, index + 1
        pos = rest_end + 1


def _quoted_value(
    lines: list[str], index: int, text: str, pos: int
) -> tuple[str | None, str, int, int]:
    """Read a quoted value from ``text[pos:]``, continuing on the next lines while it is open.

    Returns the value (None when never closed), the current line's text, the position after the
    closing quote, and the index of the current line.
    """
    parts: list[str] = []
    while True:
        close = text.find('"', pos)
        if close < 0:
            parts.append(text[pos:])
            index += 1
            if index >= len(lines):
                return None, text, pos, index
            raw = lines[index]
            # CRLF inside a quoted value is one line break, kept as data.
            parts.append("\r\n" if lines[index - 1].endswith("\r") else "\n")
            text = _strip_cr(raw)
            pos = 0
            continue
        if close + 1 < len(text) and text[close + 1] == '"':
            parts.append(text[pos : close + 1])
            pos = close + 2
            continue
        parts.append(text[pos:close])
        return "".join(parts), text, close + 1, index
