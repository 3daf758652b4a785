"""Delivery event files through the pipeline on PostgreSQL (contract section 13): a file's events
loaded once in one transaction with its report, the file moved; a file delivered again changes
nothing; incomplete files left alone; unreadable files rejected with their report; a truncated
last line reported while the other lines load; a 100 MB garbage file rejected, read as a
stream (its peak memory: benchmarks/bench_events_memory.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import pytest

from review_ingest.core import events as core_events
from review_ingest.pipeline import events as pipeline_events
from review_ingest.store import cancellations, warehouse
from review_ingest.tasks import request_events
from tests.fixtures.ingest_checks import configure
from tests.kit.event_files import (
    MB,
    drop_events,
    event,
    events_loaded,
    jsonl,
    read_report,
    seed_requests,
    statuses,
    write_garbage,
)
from tests.kit.warehouse import query

pytestmark = pytest.mark.postgres

REFS = ["A-1", "A-2", "A-3", "A-4", "A-5"]


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str) -> Path:
    return configure(monkeypatch, tmp_path, pg_url)


@pytest.fixture
def ids(data: Path, pg_url: str) -> dict[str, int]:
    """Five scheduled requests of acme; A-5's order cancelled (refunded)."""
    engine = warehouse.engine_for(pg_url)
    found = seed_requests(engine, pg_url, "acme", REFS, "jane.secret@example.org")
    cancellations.cancel(
        engine, "imp-acme-A-1", "refunded", ["A-5"], who="test", now=dt.datetime.now(dt.UTC)
    )
    return found


def run(pg_url: str) -> dict:
    return request_events.load_event_files(pg_url)


def nothing_left(data: Path) -> list[str]:
    """Files still in incoming/ or claims/."""
    events = data / "events"
    return sorted(
        str(p.relative_to(events))
        for folder in ("incoming", "claims")
        for p in (events / folder).rglob("*")
        if p.is_file()
    )


def mixed_file(ids: dict[str, int]) -> tuple[bytes, int]:
    """Good events (one repeated, one out of order), unknown requests, an event of a cancelled
    request, and one bad line of each kind; the number of the first bad line."""
    a1, a2, a3, a4, a5 = (ids[ref] for ref in REFS)
    lines = [
        event("e-1", a1, "sent"),
        event("e-2", a1, "delivered", 1),
        event("e-3", a2, "sent"),
        event("e-4", a2, "delivered", 1),
        event("e-5", a2, "opened", 30),
        event("e-6", a2, "reviewed", 40, rating=4),
        event("e-7", a3, "sent"),
        event("e-8", a3, "bounced", 1, reason="550 5.1.1 mailbox unavailable"),
        event("e-9", a4, "delivered", 1),  # before its "sent": the furthest step wins
        event("e-10", a4, "sent"),
        event("e-1", a1, "sent"),  # repeated: the first wins
        event("e-11", 999_999_999, "sent"),  # never existed
        event("e-12", "not-a-number", "sent"),
        event("e-13", a5, "sent"),  # cancelled: loaded, counted after_cancel
    ]
    first_bad = len(lines) + 1
    lines += [
        "this is not JSON",
        json.dumps({"event_id": "e-20", "type": "sent", "at": "2026-12-01T10:00:00+01:00"}),
        event("e-21", a1, "teleported"),
        {**event("e-22", a1, "opened"), "at": "2026-12-01T10:00:00"},
        event("e-23", a2, "reviewed", rating=9),
    ]
    return jsonl(lines), first_bad


def test_a_file_loads_and_moves_to_processed_with_its_report(data, pg_url, ids):
    content, bad = mixed_file(ids)
    drop_events(data, "events-1.jsonl", content)

    summary = run(pg_url)

    assert summary["files"] == 1 and summary["processed"] == 1
    assert summary["events_loaded"] == 11 and summary["error_lines"] == 5
    assert (data / "events" / "processed" / "events-1.jsonl").read_bytes() == content
    assert nothing_left(data) == []
    report = read_report(data, "events-1.jsonl")
    [(file_id, stored, size)] = query(pg_url, "SELECT file_id, report, size_bytes FROM event_files")
    assert json.loads(stored) == report, "the report written is the one committed"
    assert report["file_id"] == file_id and report["status"] == "processed"
    assert (report["sha256"], size) == (hashlib.sha256(content).hexdigest(), len(content))
    assert report["lines"] == bad + 4
    assert report["loaded"] == 11
    assert report["skipped_duplicates"] == 1
    assert report["unknown_request"] == 2
    assert report["after_cancel"] == 1
    assert report["by_type"] == {
        "bounced": 1,
        "delivered": 3,
        "opened": 1,
        "reviewed": 1,
        "sent": 5,
    }
    assert report["opted_out"] == 0
    assert [(e["line"], e["code"]) for e in report["errors"]] == [
        (bad, "invalid_json"),
        (bad + 1, "missing_field"),
        (bad + 2, "unknown_type"),
        (bad + 3, "invalid_time"),
        (bad + 4, "invalid_rating"),
    ]
    assert report["error_lines"] == 5 and report["errors_truncated"] is False
    assert "jane.secret" not in json.dumps(report)
    a1, a2, a3, a4, a5 = (ids[ref] for ref in REFS)
    assert statuses(pg_url, ids.values()) == {
        a1: "delivered",
        a2: "reviewed",
        a3: "not_delivered",
        a4: "delivered",
        a5: "cancelled",
    }
    kept = query(
        pg_url,
        "SELECT request_id, rating, bounce_reason FROM review_requests "
        "WHERE rating IS NOT NULL OR bounce_reason IS NOT NULL ORDER BY request_id",
    )
    assert kept == [(a2, 4, None), (a3, None, "550 5.1.1 mailbox unavailable")]


def test_a_file_delivered_twice_changes_nothing(data, pg_url, ids):
    content, _ = mixed_file(ids)
    drop_events(data, "events.jsonl", content)
    run(pg_url)
    first = read_report(data, "events.jsonl")
    before = (events_loaded(pg_url), statuses(pg_url, ids.values()))

    drop_events(data, "events.jsonl", content)  # the same name, the same bytes, again
    drop_events(data, "events-copy.jsonl", content)  # and under another name
    summary = run(pg_url)

    assert summary["files"] == 2 and summary["events_loaded"] == 0
    assert (events_loaded(pg_url), statuses(pg_url, ids.values())) == before
    assert read_report(data, "events.jsonl") == first, "the first report is never overwritten"
    [again] = (data / "events" / "reports").glob("*/events.jsonl.json")
    for report in (json.loads(again.read_text()), read_report(data, "events-copy.jsonl")):
        assert report["loaded"] == 0 and report["sha256"] == first["sha256"]
        assert report["skipped_duplicates"] == first["loaded"] + first["skipped_duplicates"]
        assert report["file_id"] != first["file_id"]
    moved = sorted(p.relative_to(data / "events") for p in (data / "events").rglob("*.jsonl"))
    assert len(moved) == 3 and all(p.parts[0] == "processed" for p in moved), moved
    assert query(pg_url, "SELECT count(*) FROM event_files")[0][0] == 3


def test_incomplete_files_are_left_alone(data, pg_url, ids, monkeypatch):
    monkeypatch.setenv("REVIEW_INGEST_MIN_FILE_AGE_SECONDS", "120")
    content = jsonl([event("e-1", ids["A-1"], "sent")])
    names = ["a.jsonl.part", "b.jsonl.tmp", "c.jsonl.filepart", ".d.jsonl"]
    for name in names:
        drop_events(data, name, content)
    drop_events(data, "too-young.jsonl", content, age_seconds=5)

    summary = run(pg_url)

    assert summary["files"] == 0
    incoming = sorted(p.name for p in (data / "events" / "incoming").iterdir())
    assert incoming == sorted([*names, "too-young.jsonl"])
    assert events_loaded(pg_url) == []
    assert query(pg_url, "SELECT count(*) FROM event_files")[0][0] == 0


def test_unreadable_files_are_rejected_with_a_report(data, pg_url, ids):
    latin1 = "Café résumé\nà bientôt\n".encode("latin-1")
    csv_text = b"event_id;request_id;type;at\ne-1;1;sent;2026-12-01T10:00:00+01:00\n"
    drop_events(data, "latin1.jsonl", latin1)
    drop_events(data, "orders.csv", csv_text)

    summary = run(pg_url)

    assert (summary["files"], summary["rejected"], summary["events_loaded"]) == (2, 2, 0)
    for name, code in (("latin1.jsonl", "not_utf8"), ("orders.csv", "invalid_json")):
        assert (data / "events" / "rejected" / name).is_file()
        report = read_report(data, name)
        assert report["status"] == "rejected" and report["loaded"] == 0
        assert [(e["line"], e["code"]) for e in report["errors"]] == [(1, code), (2, code)]
    assert not (data / "events" / "processed").exists()
    assert query(pg_url, "SELECT status FROM event_files") == [("rejected",), ("rejected",)]
    assert events_loaded(pg_url) == []


def test_a_truncated_last_line_is_reported_while_the_others_load(data, pg_url, ids):
    good = jsonl([event(f"e-{i}", ids["A-1"], "sent", i) for i in range(3)])
    drop_events(data, "cut.jsonl", good + b'{"event_id": "e-9", "request_id": "1", "ty')

    run(pg_url)

    report = read_report(data, "cut.jsonl")
    assert (report["status"], report["loaded"], report["lines"]) == ("processed", 3, 4)
    assert [(e["line"], e["code"]) for e in report["errors"]] == [(4, "truncated_line")]
    assert events_loaded(pg_url) == ["e-0", "e-1", "e-2"]
    assert (data / "events" / "processed" / "cut.jsonl").is_file()


def test_a_100_mb_garbage_file_is_rejected_and_read_as_a_stream(data, pg_url, tmp_path):
    """Its first line is 2 MB long (over the cap), the others neither UTF-8 nor JSON: rejected,
    its report small, and no line read whole past ``read_lines``' cap."""
    incoming = data / "events" / "incoming"
    incoming.mkdir(parents=True)
    garbage = incoming / "garbage.jsonl"
    lines = write_garbage(garbage, size=100 * MB, long_line=2 * MB)
    old = garbage.stat().st_mtime - 600
    os.utime(garbage, (old, old))
    with garbage.open("rb") as stream:
        sizes = [len(raw) for _, raw in core_events.read_lines(stream)]
    assert sizes[0] == max(sizes) == core_events.MAX_LINE_BYTES + 1, "a line held up to its cap"

    summary = run(pg_url)

    assert (summary["rejected"], summary["events_loaded"]) == (1, 0)
    assert (data / "events" / "rejected" / "garbage.jsonl").stat().st_size == 100 * MB
    report = read_report(data, "garbage.jsonl")
    assert report["status"] == "rejected" and report["lines"] == lines
    assert report["error_lines"] == len(sizes), "every line but the blank ones is an error"
    assert report["errors"][0] == {**report["errors"][0], "line": 1, "code": "line_too_long"}
    assert len(report["errors"]) == pipeline_events.MAX_REPORTED_ERRORS
    assert report["errors_truncated"] is True
    assert (data / "events" / "reports" / "garbage.jsonl.json").stat().st_size < 300_000


def test_an_unsubscribe_opts_the_address_out_for_the_requests_merchant_only(data, pg_url):
    engine = warehouse.engine_for(pg_url)
    acme = seed_requests(engine, pg_url, "acme", ["B-1", "B-2"], "Bob.Secret@example.org")
    beta = seed_requests(engine, pg_url, "beta", ["B-9"], "bob.secret@example.org")
    lines = [event("u-1", acme["B-1"], "sent"), event("u-2", acme["B-1"], "unsubscribed", 9)]
    drop_events(data, "optout.jsonl", jsonl(lines))

    run(pg_url)

    assert read_report(data, "optout.jsonl")["opted_out"] == 1
    assert query(pg_url, "SELECT merchant_id FROM suppressions") == [("acme",)]
    assert statuses(pg_url, [*acme.values(), *beta.values()]) == {
        acme["B-1"]: "sent",
        acme["B-2"]: "withdrawn",
        beta["B-9"]: "scheduled",
    }
