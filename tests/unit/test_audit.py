"""The audit trail's rules on plain values: the canonical JSON, the hash formula the README gives
an auditor, the actors, and the walk of a chain (``check_chain``) over entries held in a list.
The database, the commands and concurrency: tests/integration/test_audit*.py."""

from __future__ import annotations

import datetime as dt
import hashlib
from zoneinfo import ZoneInfo

import pytest

from review_ingest.errors import UsageError
from review_ingest.store import audit
from review_ingest.store.audit import GENESIS, Anchor, check_chain

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def chain(count: int) -> list[dict]:
    """``count`` entries chained as ``append`` chains them, as ``export`` gives them."""
    entries, prev = [], GENESIS
    for entry_id in range(1, count + 1):
        entry = {
            "entry_id": entry_id,
            "recorded_at": audit.time_text(NOW + dt.timedelta(seconds=entry_id)),
            "action": "import",
            "subject": f"imp-{entry_id}",
            "actor": "dag:orders_upload_ingest",
            "details": {"valid_rows": entry_id, "status": "loaded"},
            "prev_hash": prev,
        }
        entry["entry_hash"] = prev = audit.entry_hash(entry)
        entries.append(entry)
    return entries


def test_the_hash_is_sha256_of_the_canonical_json_the_readme_gives():
    entry = {
        "entry_id": 7,
        "recorded_at": "2026-03-10T12:00:00.000000Z",
        "action": "erase",
        "subject": None,
        "actor": "cli:anna",
        "details": {"merchant_id": "café", "requests_deleted": 2, "ok": True, "list": [1, None]},
        "prev_hash": GENESIS,
    }
    # Written out by hand: keys sorted at every level, no spaces, UTF-8 as it is.
    text = (
        '{"action":"erase","actor":"cli:anna","details":{"list":[1,null],"merchant_id":"café",'
        '"ok":true,"requests_deleted":2},"entry_id":7,"prev_hash":"' + GENESIS + '",'
        '"recorded_at":"2026-03-10T12:00:00.000000Z","subject":null}'
    )

    assert audit.canonical(entry) == text
    assert audit.entry_hash(entry) == hashlib.sha256(text.encode("utf-8")).hexdigest()
    # An exported entry carries its own hash: it is left out of what is hashed.
    assert audit.entry_hash({**entry, "entry_hash": "whatever"}) == audit.entry_hash(entry)


@pytest.mark.parametrize(
    "value",
    [{"rate": 0.5}, {"nested": [{"x": 1.0}]}, {1: "a key that is not a string"}],
    ids=["float", "nested-float", "int-key"],
)
def test_canonical_json_refuses_what_other_languages_would_write_differently(value):
    with pytest.raises(TypeError):
        audit.canonical(value)


def test_recorded_at_is_utc_with_microseconds_and_a_naive_time_is_refused():
    paris = dt.datetime(2026, 3, 10, 13, 0, 0, 5, tzinfo=ZoneInfo("Europe/Paris"))
    assert audit.time_text(paris) == "2026-03-10T12:00:00.000005Z"
    with pytest.raises(ValueError, match="naive"):
        audit.time_text(dt.datetime(2026, 3, 10, 12, 0))


def test_an_intact_chain_gives_its_count_and_head():
    entries = chain(4)

    result = check_chain(entries)

    assert result.broken is None
    assert (result.entries, result.head) == (4, Anchor(4, entries[-1]["entry_hash"]))
    assert check_chain([]).broken is None and check_chain([]).head is None


@pytest.mark.parametrize("field", ["details", "actor", "recorded_at", "subject", "entry_id"])
def test_a_changed_field_names_its_entry(field):
    entries = chain(5)
    changed = {
        "details": {"valid_rows": 999, "status": "loaded"},
        "actor": "cli:mallory",
        "recorded_at": audit.time_text(NOW),
        "subject": "imp-x",
        "entry_id": 30,
    }
    entries[2][field] = changed[field]

    broken = check_chain(entries).broken

    assert broken is not None
    assert broken.entry_id == entries[2]["entry_id"]
    assert "entry_hash does not match its fields" in broken.problem


def test_a_deleted_middle_entry_names_the_entry_after_it_and_the_missing_id():
    entries = chain(5)
    del entries[2]

    broken = check_chain(entries).broken

    assert broken is not None and broken.entry_id == 4
    assert "entry 2" in broken.problem and "entry_id 3 missing" in broken.problem


def test_deleted_first_entries_are_seen_from_the_genesis():
    broken = check_chain(chain(5)[2:]).broken

    assert broken is not None and broken.entry_id == 3
    assert "genesis" in broken.problem
    assert check_chain(chain(5)[2:], first_prev=None).broken is None, "an export from the middle"


def test_a_deleted_tail_shows_only_against_an_anchor():
    entries = chain(5)
    anchor = Anchor(5, entries[-1]["entry_hash"])

    assert check_chain(entries[:3]).broken is None, "nothing follows the tail to betray it"
    broken = check_chain(entries[:3], anchor=anchor).broken
    assert broken is not None and broken.entry_id == 5
    assert "the log ends at entry 3" in broken.problem
    assert check_chain(entries, anchor=anchor).broken is None
    assert check_chain(entries, anchor=Anchor(2, entries[1]["entry_hash"])).broken is None


def test_a_chain_rewritten_from_an_entry_on_shows_against_an_anchor_after_it():
    entries = chain(5)
    anchor = Anchor(4, entries[3]["entry_hash"])
    rewritten = entries[:2]
    for entry in entries[2:]:  # changed, then every later hash recomputed
        entry = {**entry, "prev_hash": rewritten[-1]["entry_hash"]}
        if entry["entry_id"] == 3:
            entry["details"] = {"valid_rows": 0, "status": "rejected"}
        entry["entry_hash"] = audit.entry_hash(entry)
        rewritten.append(entry)

    assert check_chain(rewritten).broken is None
    broken = check_chain(rewritten, anchor=anchor).broken
    assert broken is not None and broken.entry_id == 4 and "rewritten" in broken.problem


def test_an_anchor_is_entry_id_colon_hash():
    digest = "ab" * 32
    assert audit.parse_anchor(f" 12:{digest.upper()} ") == Anchor(12, digest)
    assert str(Anchor(12, digest)) == f"12:{digest}"
    for wrong in ("12", f"x:{digest}", "12:abc", f"12:{digest}0"):
        with pytest.raises(UsageError, match="ENTRY_ID:ENTRY_HASH"):
            audit.parse_anchor(wrong)


def test_the_actor_is_the_dag_inside_an_airflow_task_else_the_system_user(monkeypatch):
    monkeypatch.setenv("LOGNAME", "support-anna")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "orders_upload_ingest")
    assert audit.process_actor() == "dag:orders_upload_ingest"
    assert audit.system_actor() == "cli:support-anna"
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID")
    assert audit.process_actor() == "cli:support-anna"


def test_an_unknown_action_is_refused_before_anything_is_written():
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.append(None, "delete_everything", None, "cli:x", {}, NOW)  # type: ignore[arg-type]
