"""Faults in the life of a delivery event file (contract section 13): the run is killed for real,
SIGKILL of the process doing the work, at each step, and the next run must leave every event
loaded exactly once, the requests' statuses right, the file's report complete (the committed
one, when the kill came after the commit) and the file in ``processed/``, nothing left in
``incoming/`` or in a claim.

The work runs in a child process (tests/kit/pipeline_child.py); the child kills itself at the
step through a test hook wrapping the real function (``events_mid_load``: after two chunks of
three were loaded in the file's open transaction; ``events_after_commit``: the load committed,
no report written; ``events_before_move``: the report written, the file not moved).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from review_ingest.pipeline import events as pipeline_events
from review_ingest.sources import claims
from review_ingest.store import warehouse
from review_ingest.tasks import request_events
from tests.fixtures.ingest_checks import configure
from tests.kit import pipeline_child
from tests.kit.event_files import (
    drop_events,
    event,
    events_loaded,
    jsonl,
    read_report,
    seed_requests,
    statuses,
)
from tests.kit.warehouse import query

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

REQUESTS = 40
#: Opened again and again: enough events for three chunks of ``CHUNK_EVENTS``.
OPENS = 2 * pipeline_events.CHUNK_EVENTS // REQUESTS + 20
LOAD = "review_ingest.tasks.request_events:load_event_files"
NAME = "mailer-2026-12-01.jsonl"


def big_file(ids: list[int]) -> tuple[bytes, set[str]]:
    """Every request sent, delivered and opened ``OPENS`` times, the even ones reviewed; one
    event repeated and one bad line at the end. The event ids to be loaded."""
    lines: list[dict | str] = []
    for n, request_id in enumerate(ids):
        life = [("sent", 0), ("delivered", 1)] + [("opened", 10 + i) for i in range(OPENS)]
        life += [("reviewed", 500)] if n % 2 == 0 else []
        lines += [event(f"e-{n}-{i}", request_id, kind, at) for i, (kind, at) in enumerate(life)]
    unique = {line["event_id"] for line in lines if isinstance(line, dict)}
    lines += [lines[0], "not json"]
    return jsonl(lines), unique


def left_behind(data: Path) -> list[str]:
    events = data / "events"
    return sorted(
        str(p.relative_to(events))
        for folder in ("incoming", "claims")
        for p in (events / folder).rglob("*")
        if p.is_file()
    )


KILL_POINTS = ["events_mid_load", "events_after_commit", "events_before_move"]


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_an_events_run_killed_at_a_step_then_the_next_run_loads_each_event_once(
    tmp_path, monkeypatch, pg_url, kill_at
):
    data = configure(monkeypatch, tmp_path, pg_url)
    engine = warehouse.engine_for(pg_url)
    refs = [f"A-{i:03d}" for i in range(REQUESTS)]
    ids = seed_requests(engine, pg_url, "acme", refs, "jane.secret@example.org")
    content, unique = big_file([ids[ref] for ref in refs])
    assert len(unique) > 2 * pipeline_events.CHUNK_EVENTS, "three chunks at least"
    drop_events(data, NAME, content)

    child = pipeline_child.start(LOAD, pg_url, out=tmp_path / "killed.json", kill_at=kill_at)
    assert child.wait() == -signal.SIGKILL, f"{child.result()}\n{child.log()}"

    committed = query(pg_url, "SELECT file_id, report FROM event_files")
    assert len(committed) == (0 if kill_at == "events_mid_load" else 1)
    assert len(events_loaded(pg_url)) == (0 if kill_at == "events_mid_load" else len(unique))
    [held] = claims.all_claims(data / "events")
    assert held.name == NAME, "the dead run's claim holds the file"
    reports = data / "events" / "reports"
    assert (reports / f"{NAME}.json").exists() == (kill_at == "events_before_move")

    summary = request_events.load_event_files(pg_url)

    assert summary["files"] == 1 and summary["processed"] == 1
    assert events_loaded(pg_url) == sorted(unique), "every event loaded exactly once"
    assert statuses(pg_url, ids.values()) == {
        ids[ref]: "reviewed" if n % 2 == 0 else "opened" for n, ref in enumerate(refs)
    }
    [(file_id, stored)] = query(pg_url, "SELECT file_id, report FROM event_files")
    report = read_report(data, NAME)
    assert report == json.loads(stored)
    if committed:
        assert (file_id, stored) == committed[0], "the killed run's load, finished, not redone"
    assert report["loaded"] == len(unique) and report["skipped_duplicates"] == 1
    assert report["error_lines"] == 1 and report["errors"][0]["code"] == "invalid_json"
    assert report["by_type"]["reviewed"] == REQUESTS // 2
    assert summary["events_loaded"] == len(unique), "counted as its report counts"
    assert (data / "events" / "processed" / NAME).read_bytes() == content
    assert [p.name for p in (data / "events" / "processed").rglob("*") if p.is_file()] == [NAME]
    assert left_behind(data) == []
    assert sorted(p.name for p in reports.rglob("*") if p.is_file()) == [f"{NAME}.json"]
