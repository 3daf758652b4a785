"""Reading delivery event files (contract section 13): every line an Event or a LineError
with its code, and nothing of a broken line in the error's message."""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import pytest

from review_ingest.core import events
from review_ingest.core.events import Event, LineError, parse_line, read_lines

SECRET = "jane.secret@example.org"
VALID = {
    "event_id": "evt-1",
    "request_id": "42",
    "type": "delivered",
    "at": "2026-12-01T10:00:00+01:00",
}
AT_UTC = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


def line(**fields: Any) -> bytes:
    """A JSON line: the valid event with ``fields`` changed (None drops a field)."""
    values = {**VALID, **fields}
    return json.dumps({k: v for k, v in values.items() if v is not None}).encode() + b"\n"


def parsed(**fields: Any) -> Event | LineError:
    return parse_line(7, line(**fields))


def code(result: Event | LineError) -> str:
    assert isinstance(result, LineError), result
    assert result.line == 7
    return result.code


# --- valid forms -----------------------------------------------------------------------------


def test_a_valid_line_is_an_event_in_utc() -> None:
    assert parsed() == Event("evt-1", "42", "delivered", AT_UTC, None, None)
    assert parsed().at.tzinfo is dt.UTC


@pytest.mark.parametrize(
    "given",
    [
        "2026-12-01T09:00:00Z",
        "2026-12-01T09:00:00+00:00",
        "2026-12-01T10:00:00+01:00",
        "2026-12-01T04:00:00-05:00",
        "2026-12-01T10:00+01:00",  # no seconds: ISO 8601, though not RFC 3339
        "2026-12-01 10:00:00+01:00",
    ],
)
def test_every_offset_gives_the_same_utc_time(given: str) -> None:
    event = parsed(at=given)
    assert isinstance(event, Event) and event.at == AT_UTC and event.at.tzinfo is dt.UTC


def test_fractions_of_a_second_are_kept() -> None:
    event = parsed(at="2026-12-01T09:00:00.250Z")
    assert isinstance(event, Event) and event.at == AT_UTC.replace(microsecond=250_000)


def test_every_type_is_read() -> None:
    assert events.EVENT_TYPES == (
        "sent", "delivered", "opened", "clicked", "reviewed",
        "bounced", "failed", "complained", "unsubscribed",
    )  # fmt: skip
    assert events.STEPS == ("sent", "delivered", "opened", "clicked", "reviewed")
    for kind in events.EVENT_TYPES:
        assert parsed(type=kind) == Event("evt-1", "42", kind, AT_UTC)


def test_a_number_for_an_id_is_read_as_its_digits() -> None:
    event = parsed(event_id=123, request_id=42)
    assert isinstance(event, Event) and (event.event_id, event.request_id) == ("123", "42")


def test_request_ids_are_kept_as_given() -> None:
    """Matching them to requests is the loader's job: a non-numeric one is unknown there."""
    for given in ("abc", "", "007", "99999999999999999999"):
        event = parsed(request_id=given)
        assert isinstance(event, Event) and event.request_id == given


def test_unknown_fields_are_ignored() -> None:
    assert parsed(campaign="december", opens=3) == parsed()


def test_the_same_line_twice_gives_the_same_event() -> None:
    """Skipping the second one is the loader's job (by event_id)."""
    first, second = parse_line(1, line()), parse_line(2, line())
    assert isinstance(first, Event) and first == second


# --- rating ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rating", [1, 2, 3, 4, 5, None])
def test_a_review_carries_its_rating(rating: int | None) -> None:
    event = parsed(type="reviewed", rating=rating)
    assert isinstance(event, Event) and event.rating == rating


@pytest.mark.parametrize("rating", [0, 6, 9, -1, 4.5, "5", True, [5]])
def test_a_rating_that_is_not_1_to_5_is_refused(rating: object) -> None:
    assert code(parsed(type="reviewed", rating=rating)) == "invalid_rating"


def test_a_rating_on_another_type_is_ignored() -> None:
    event = parsed(type="opened", rating=9)
    assert isinstance(event, Event) and event.rating is None


# --- reason ----------------------------------------------------------------------------------


def test_a_bounce_reason_is_kept_with_its_addresses_masked() -> None:
    reason = f"550 5.1.1 <{SECRET}>: mailbox unknown; see postmaster@mx.example.net"
    event = parsed(type="bounced", reason=reason)
    assert isinstance(event, Event)
    assert event.reason == "550 5.1.1 <j***@example.org>: mailbox unknown; see p***@mx.example.net"
    failed = parsed(type="failed", reason=f"rejected {SECRET}")
    assert isinstance(failed, Event) and failed.reason == "rejected j***@example.org"


def test_a_reason_is_cut_to_255_characters_after_masking() -> None:
    event = parsed(type="bounced", reason="x" * 250 + " " + SECRET)
    assert isinstance(event, Event)
    assert len(event.reason or "") == 255 and "jane" not in (event.reason or "")
    assert (event.reason or "").endswith(" j***")


def test_a_reason_on_another_type_is_dropped() -> None:
    event = parsed(type="delivered", reason=f"ok {SECRET}")
    assert isinstance(event, Event) and event.reason is None


def test_a_reason_that_is_not_text_is_kept_as_json_masked() -> None:
    event = parsed(type="bounced", reason={"code": 550, "to": SECRET})
    assert isinstance(event, Event)
    assert event.reason == '{"code": 550, "to": "j***@example.org"}'


def test_an_empty_reason_is_none() -> None:
    event = parsed(type="bounced", reason="   ")
    assert isinstance(event, Event) and event.reason is None


def test_a_reason_the_database_cannot_store_is_cleaned() -> None:
    raw = b'{"event_id": "e", "request_id": "1", "type": "failed", '
    raw += b'"at": "2026-12-01T09:00:00Z", "reason": "a\\u0000b\\ud800c"}\n'
    event = parse_line(1, raw)
    assert isinstance(event, Event) and event.reason == "ab?c"


# --- event_id --------------------------------------------------------------------------------


def test_an_event_id_of_100_characters_is_read_and_101_refused() -> None:
    event = parsed(event_id="e" * 100)
    assert isinstance(event, Event) and event.event_id == "e" * 100
    assert code(parsed(event_id="e" * 101)) == "invalid_event_id"
    assert isinstance(parsed(event_id="é" * 100), Event), "characters, not bytes"


@pytest.mark.parametrize("event_id", ["", "   ", ["e"], {"id": 1}, 1.5, True])
def test_an_empty_or_odd_event_id_is_refused(event_id: object) -> None:
    assert code(parsed(event_id=event_id)) == "invalid_event_id"


@pytest.mark.parametrize("escape", [b"\\u0000", b"\\ud800"])
def test_an_event_id_the_database_cannot_store_is_refused(escape: bytes) -> None:
    raw = b'{"event_id": "e' + escape + b'", "request_id": "1", "type": "sent", '
    raw += b'"at": "2026-12-01T09:00:00Z"}\n'
    assert parse_line(1, raw).code == "invalid_event_id"  # type: ignore[union-attr]


# --- errors, each with its code --------------------------------------------------------------


@pytest.mark.parametrize("missing", ["event_id", "request_id", "type", "at"])
def test_each_missing_field_is_named(missing: str) -> None:
    error = parsed(**{missing: None})
    assert code(error) == "missing_field"
    assert error.message == f"missing field: {missing}"  # type: ignore[union-attr]
    null = parse_line(7, line().replace(b'"type": "delivered"', b'"type": null'))
    assert code(null) == "missing_field"


def test_every_missing_field_is_named_at_once() -> None:
    error = parse_line(3, b'{"event_id": "e1"}\n')
    assert isinstance(error, LineError) and error.code == "missing_field"
    assert error.message == "missing field: request_id, type, at"


def test_an_unknown_type_is_named_when_it_is_a_plain_word() -> None:
    error = parsed(type="delivred")
    assert code(error) == "unknown_type"
    assert "'delivred'" in error.message  # type: ignore[union-attr]
    for kind in ("Delivered", SECRET, 3, ["sent"]):
        error = parsed(type=kind)
        assert code(error) == "unknown_type"
        assert "jane" not in error.message  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "given",
    ["2026-12-01T10:00:00", "2026-12-01", "yesterday", "01/12/2026 10:00+01:00", "", 1764579600],
)
def test_a_time_without_offset_or_not_iso_is_refused(given: object) -> None:
    assert code(parsed(at=given)) == "invalid_time"


def test_a_time_without_offset_says_so() -> None:
    error = parsed(at="2026-12-01T10:00:00")
    assert "no offset" in error.message  # type: ignore[union-attr]


def test_a_time_out_of_range_in_utc_is_refused() -> None:
    assert code(parsed(at="0001-01-01T00:30:00+01:00")) == "invalid_time"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json at all\n",
        b'{"event_id": "e1", "request_id": \n',
        b'["e1", "42", "sent"]\n',
        b"42\n",
    ],
)
def test_a_line_that_is_not_a_json_object_is_refused(raw: bytes) -> None:
    assert code(parse_line(7, raw)) == "invalid_json"


def test_deep_nesting_is_invalid_json_not_a_crash() -> None:
    assert code(parse_line(7, b"[" * 60_000 + b"\n")) == "invalid_json"


def test_a_line_that_is_not_utf8_is_refused() -> None:
    raw = line().replace(b"delivered", b"d\xe9livered")
    assert code(parse_line(7, raw)) == "not_utf8"
    assert code(parse_line(7, b"\xff\xfe{}\n")) == "not_utf8"


def test_the_last_line_cut_short_is_truncated() -> None:
    whole = line()
    assert code(parse_line(7, whole[:30])) == "truncated_line"
    assert code(parse_line(7, whole[:30] + b"\n")) == "invalid_json", "a newline: not the end"
    assert isinstance(parse_line(7, whole.rstrip(b"\n")), Event), "whole, only no newline"
    assert code(parse_line(7, "é".encode()[:1])) == "truncated_line"


def test_no_message_repeats_the_line() -> None:
    """A broken line may hold anything: its message never quotes it."""
    lines = [
        SECRET.encode() + b"\n",
        b'{"event_id": "' + SECRET.encode() + b'", ' + b"\n",
        line(event_id=SECRET * 5),
        line(type=SECRET),
        line(at=SECRET),
        line(at="2026-12-01T10:00:00 " + SECRET),
        line(type="reviewed", rating=SECRET),
        line(request_id=None, reason=SECRET),
        b'{"at": "' + SECRET.encode() + b'"}\n',
        SECRET.encode() + b"\xff\n",
        SECRET.encode(),
    ]
    for raw in lines:
        result = parse_line(1, raw)
        assert isinstance(result, LineError), raw
        assert "jane" not in result.message and "example" not in result.message, result


def test_every_error_code_is_documented() -> None:
    assert set(events.ERROR_CODES) == {
        "not_utf8", "invalid_json", "missing_field", "unknown_type", "invalid_time",
        "invalid_rating", "invalid_event_id", "line_too_long", "truncated_line",
    }  # fmt: skip


# --- reading a file --------------------------------------------------------------------------


class Watched(io.BytesIO):
    """A stream that remembers the most bytes one read handed out."""

    largest = 0

    def readline(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        piece = super().readline(size)
        self.largest = max(self.largest, len(piece))
        return piece

    def read(self, size: int | None = -1) -> bytes:
        piece = super().read(size)
        self.largest = max(self.largest, len(piece))
        return piece


def test_lines_are_numbered_as_in_the_file_blank_ones_skipped() -> None:
    data = b"\xef\xbb\xbf" + line() + b"\n  \n" + line(event_id="e2").replace(b"\n", b"\r\n")
    data += line(event_id="e3").rstrip(b"\n")
    read = list(read_lines(io.BytesIO(data)))
    assert [number for number, _ in read] == [1, 4, 5]
    results = [parse_line(number, raw) for number, raw in read]
    assert [r.event_id for r in results if isinstance(r, Event)] == ["evt-1", "e2", "e3"]


def test_an_over_long_line_is_an_error_and_the_next_line_reads() -> None:
    stream = Watched(b'{"event_id": "' + b"x" * 300_000 + b'"}\n' + line())
    read = list(read_lines(stream))
    assert [number for number, _ in read] == [1, 2]
    assert code(parse_line(7, read[0][1])) == "line_too_long"
    assert isinstance(parse_line(2, read[1][1]), Event)
    assert stream.largest <= events.MAX_LINE_BYTES + 2


def test_a_huge_file_without_a_newline_is_read_in_bounded_pieces() -> None:
    stream = Watched(b"\x00garbage" * 1_000_000)  # 8 MB, not one newline
    read = list(read_lines(stream))
    assert len(read) == 1 and len(read[0][1]) == events.MAX_LINE_BYTES + 1
    assert code(parse_line(7, read[0][1])) == "line_too_long"
    assert stream.largest <= events.MAX_LINE_BYTES + 2
    assert stream.tell() == 8_000_000, "read to its end"


def test_a_line_of_exactly_the_limit_is_read() -> None:
    padding = events.MAX_LINE_BYTES - len(line()) + 1
    raw = line(note="p" * (padding - len(', "note": ""')))
    assert len(raw) == events.MAX_LINE_BYTES + 1
    (number, got), = read_lines(io.BytesIO(raw))  # fmt: skip
    assert isinstance(parse_line(number, got), Event)
    assert code(parse_line(7, raw[:-1] + b" \n")) == "line_too_long"
