"""Delivery event files (contract section 13): JSON Lines from the mailer, read line by line.

``read_lines`` streams a file's physical lines (bounded memory, whatever the file holds);
``parse_line`` makes each one an ``Event`` or a ``LineError``. A line is one JSON object:
``{"event_id", "request_id", "type", "at"}``, plus ``reason`` for ``bounced`` and ``failed`` and
``rating`` (1-5) for ``reviewed``, both optional. Blank lines are skipped. An error's message
never repeats the line: events carry no address, but a broken line may hold anything.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import msgspec

#: The steps of a request's life, in order: its status is the furthest one known.
STEPS = ("sent", "delivered", "opened", "clicked", "reviewed")
#: Events that make a request ``not_delivered`` unless a step after ``sent`` is known.
NOT_DELIVERED_TYPES = ("bounced", "failed")
#: Events that put the request's address on the opt-out list (contract section 11).
OPT_OUT_TYPES = ("complained", "unsubscribed")
EVENT_TYPES = (*STEPS, *NOT_DELIVERED_TYPES, *OPT_OUT_TYPES)
#: ``review_requests.status`` of a request that bounced or failed, and went no further.
NOT_DELIVERED_STATUS = "not_delivered"

#: A line longer than this (without its newline) is an error; the rest of it is never read.
MAX_LINE_BYTES = 64 * 1024
MAX_EVENT_ID_CHARS = 100
MAX_REASON_CHARS = 255
REQUIRED_FIELDS = ("event_id", "request_id", "type", "at")

#: Every ``LineError.code``, with what it means (the README lists them).
ERROR_CODES = {
    "not_utf8": "the line is not UTF-8",
    "invalid_json": "the line is not one JSON object",
    "missing_field": "event_id, request_id, type or at is missing (or null)",
    "unknown_type": "type is not one of the event types",
    "invalid_time": "at is not an ISO 8601 time with an offset",
    "invalid_rating": "the rating of a reviewed event is not a whole number from 1 to 5",
    "invalid_event_id": "event_id is empty, longer than 100 characters, or not text",
    "line_too_long": f"the line is longer than {MAX_LINE_BYTES} bytes (the rest is skipped)",
    "truncated_line": "the last line has no newline and is not a whole JSON object",
}

_BOM = b"\xef\xbb\xbf"
#: An address inside free text: anything around an ``@`` up to a space or a delimiter.
_ADDRESS = re.compile(r"""([^\s<>()\[\]{},;:"@]+)@([^\s<>()\[\]{},;:"@]+)""")
#: A type or time shown in an error only when it is made of these: no address can be in it.
_SHOWN_TYPE = re.compile(r"[a-z_]{1,20}")
_SHOWN_TIME = re.compile(r"[0-9TZ:+.\- ]{1,40}")


@dataclass(frozen=True, slots=True)
class Event:
    """One event as the mailer sent it; ``at`` is aware, in UTC; ``reason`` has its addresses
    masked; ``request_id`` is as given (the loader matches it to ``review_requests``)."""

    event_id: str
    request_id: str
    type: str
    at: dt.datetime
    reason: str | None = None
    rating: int | None = None


@dataclass(frozen=True, slots=True)
class LineError:
    """Why line ``line`` (1-based) was not loaded; the message never quotes the line."""

    line: int
    code: str
    message: str


def read_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """Each non-blank physical line with its number, its ``\\n`` kept (``parse_line`` tells the
    last line without one). A line over ``MAX_LINE_BYTES`` comes as its first
    ``MAX_LINE_BYTES + 1`` bytes, the rest skipped unread into memory: a 100 MB file without a
    newline costs 64 KiB. A UTF-8 byte-order mark before the first line is dropped."""
    limit = MAX_LINE_BYTES + 2  # the longest line allowed, its newline, and one byte to tell
    number = 0
    while line := stream.readline(limit):
        number += 1
        if number == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]
        if len(line) == limit and not line.endswith(b"\n"):
            _skip_rest(stream)
            line = line[: MAX_LINE_BYTES + 1]
        if line and not line.isspace():
            yield number, line


def _skip_rest(stream: BinaryIO) -> None:
    """Read on to the end of the current line, a bounded piece at a time."""
    while (piece := stream.readline(MAX_LINE_BYTES)) and not piece.endswith(b"\n"):
        pass


def parse_line(number: int, raw: bytes) -> Event | LineError:
    """Line ``number`` of a file (its bytes, with its newline when it has one) as an Event,
    or the LineError that tells why not.

    The common line is decoded by msgspec straight into its fields (C, several times faster
    than ``json``); a line it refuses goes through ``json`` and is judged field by field, which
    names the error (or accepts a form msgspec does not, such as a time without seconds)."""
    last = not raw.endswith(b"\n")  # the file's last line, maybe cut short
    body = raw if last else raw[:-1]
    if len(body) > MAX_LINE_BYTES:
        return LineError(number, "line_too_long", ERROR_CODES["line_too_long"])
    try:
        line = _decode(body)
    except UnicodeDecodeError as exc:
        return _unreadable(number, last, "not_utf8", f"not UTF-8 (byte {exc.start + 1})")
    except msgspec.DecodeError:  # its ValidationError too
        return _parse_slowly(number, body, last)
    fields = (line.event_id, line.request_id, line.type, line.at, line.reason, line.rating)
    return _checked(number, *fields)


class _Line(msgspec.Struct):
    """The fields of a well-formed line, as msgspec decodes them (unknown keys ignored)."""

    event_id: str
    request_id: str
    type: str
    at: dt.datetime
    reason: str | None = None
    rating: int | None = None


_decode = msgspec.json.Decoder(_Line).decode


def _parse_slowly(number: int, body: bytes, last: bool) -> Event | LineError:
    """A line msgspec refused: decoded by ``json``, then each field judged in turn."""
    value = _json_object(number, body, last)
    if isinstance(value, LineError):
        return value
    missing = [name for name in REQUIRED_FIELDS if value.get(name) is None]
    if missing:
        return LineError(number, "missing_field", f"missing field: {', '.join(missing)}")
    event_id, request_id, reason = value["event_id"], value["request_id"], value.get("reason")
    if type(event_id) is int:
        event_id = str(event_id)
    if not isinstance(request_id, str):
        request_id = json.dumps(request_id)  # a number as its digits; anything else unknown
    if reason is not None and not isinstance(reason, str):
        reason = json.dumps(reason, ensure_ascii=False)
    at = _time(value["at"])
    return _checked(number, event_id, request_id, value["type"], at, reason, value.get("rating"))


def _json_object(number: int, body: bytes, last: bool) -> dict[str, object] | LineError:
    """The line as a JSON object, or why it is not one."""
    try:
        value = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:  # bytes outside a string: msgspec calls it malformed
        return _unreadable(number, last, "not_utf8", f"not UTF-8 (byte {exc.start + 1})")
    except json.JSONDecodeError as exc:
        message = f"not JSON: {exc.msg} (column {exc.colno})"
        return _unreadable(number, last, "invalid_json", message)
    except RecursionError:
        return LineError(number, "invalid_json", "not JSON: nested too deep")
    if not isinstance(value, dict):
        return LineError(number, "invalid_json", "not a JSON object")
    return value


def _unreadable(number: int, last: bool, code: str, message: str) -> LineError:
    """A line that could not be decoded; the last line of a file without its newline is
    rather a file cut short: ``truncated_line``."""
    if last:
        return LineError(number, "truncated_line", ERROR_CODES["truncated_line"])
    return LineError(number, code, message)


def _checked(
    number: int,
    event_id: object,
    request_id: str,
    kind: object,
    at: dt.datetime | str,
    reason: str | None,
    rating: object,
) -> Event | LineError:
    """The Event of a line's values, or the first error in field order. ``at`` is the decoded
    time, or the message telling why it is not one; ``reason`` and ``rating`` count only for
    the types that carry them."""
    if not _is_event_id(event_id):
        return LineError(number, "invalid_event_id", ERROR_CODES["invalid_event_id"])
    if kind not in EVENT_TYPES:
        return LineError(number, "unknown_type", _unknown_type(kind))
    if isinstance(at, str):
        return LineError(number, "invalid_time", at)
    if at.tzinfo is not dt.UTC:
        at = _utc(at)
        if isinstance(at, str):
            return LineError(number, "invalid_time", at)
    if kind == "reviewed":
        if rating is not None and (type(rating) is not int or not 1 <= rating <= 5):
            return LineError(number, "invalid_rating", "rating: not a whole number from 1 to 5")
    else:
        rating = None
    if kind in NOT_DELIVERED_TYPES:
        reason = clean_reason(reason)
    else:
        reason = None
    return Event(event_id, request_id, kind, at, reason, rating)  # type: ignore[arg-type]


def _is_event_id(given: object) -> bool:
    """Text of 1 to ``MAX_EVENT_ID_CHARS`` characters, not blank, that the database can store
    (no NUL, no lone surrogate)."""
    if not isinstance(given, str) or not 0 < len(given) <= MAX_EVENT_ID_CHARS:
        return False
    return not given.isspace() and "\x00" not in given and _encodable(given)


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unknown_type(kind: object) -> str:
    shown = f" {kind!r}" if isinstance(kind, str) and _SHOWN_TYPE.fullmatch(kind) else ""
    return f"unknown type{shown} (one of {', '.join(EVENT_TYPES)})"


def _time(given: object) -> dt.datetime | str:
    """``given`` as an aware time, or the message telling why it is not one."""
    if not isinstance(given, str):
        return "at: not an ISO 8601 time (a string)"
    try:
        at = dt.datetime.fromisoformat(given)
    except ValueError:
        return f"at{_shown_time(given)}: not an ISO 8601 time"
    if at.tzinfo is None or at.utcoffset() is None:
        return f"at{_shown_time(given)}: no offset (Z or +01:00 says which time it is)"
    return at


def _utc(at: dt.datetime) -> dt.datetime | str:
    """``at`` in UTC, or the message telling why it is not one."""
    if at.utcoffset() is None:
        return f"at{_shown_time(at.isoformat())}: no offset (Z or +01:00 says which time it is)"
    try:
        return at.astimezone(dt.UTC)
    except OverflowError:
        return f"at{_shown_time(at.isoformat())}: out of range in UTC"


def _shown_time(text: str) -> str:
    return f" {text!r}" if _SHOWN_TIME.fullmatch(text) else ""


def clean_reason(given: object) -> str | None:
    """A bounce or failure reason as it may be stored: text the database takes, at most
    ``MAX_REASON_CHARS``, every address in it masked as the UI masks them (masking again
    changes nothing)."""
    if given is None:
        return None
    text = given if isinstance(given, str) else json.dumps(given, ensure_ascii=False)
    text = mask_addresses(text).replace("\x00", "")
    if not _encodable(text):
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text.strip()[:MAX_REASON_CHARS] or None


def mask_addresses(text: str) -> str:
    """Every address in ``text`` as ``j***@example.com`` (contract section 10's masking)."""
    if "@" not in text:
        return text
    return _ADDRESS.sub(lambda m: f"{m.group(1)[:1]}***@{m.group(2)}", text)
