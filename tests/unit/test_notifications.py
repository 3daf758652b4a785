"""Notifications without a server: the texts (no customer's address or name, even when the
pipeline's own messages quote one), the dedupe keys, the outbox's rules on a SQLite file, the
files left waiting with an injected clock, and the settings and connection values."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from review_ingest import settings
from review_ingest.core.merchants import Merchant
from review_ingest.core.outcomes import ImportRecord, Outcome, RowError
from review_ingest.errors import ConfigError
from review_ingest.notify import messages, outbox, sending, stuck
from review_ingest.notify.messages import FailedTask, Message, safe_text
from review_ingest.pipeline.ingest import Ingest
from review_ingest.store import warehouse
from review_ingest.store.models import OutboxRow
from review_ingest.tasks import notifications
from tests.kit.factories import drop, sample_for_yesterday

CUSTOMER = "jane.secret@example.org"
NAMES = ("Secretname", "Secretfirst")
STAFF = ("ops@acme.example.com",)
NOW = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.UTC)


def _every_text(message: Message) -> str:
    return "\n".join([message.subject, message.body, message.attachment or ""])


# -- messages: no customer's address or name -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("order_date 'jane.secret@example.org' is not a date", "order_date '(hidden)' is not"),
        ("names 'Secretname', 'jane.secret@example.org'", "names '(hidden)', '(hidden)'"),
        ("sent by jane.secret@example.org today", "sent by j***@example.org today"),
        ("a value 'jane.secret@' cut short", "a value '(hidden)' cut"),
        ("order_date '31-02-2026' is not a date", "order_date '31-02-2026' is not a date"),
    ],
)
def test_safe_text_hides_addresses_and_the_values_beside_them(text, shown):
    assert shown in safe_text(text)
    assert "jane.secret" not in safe_text(text) and "Secretname" not in safe_text(text)


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> Ingest:
    return Ingest(tmp_path_factory.mktemp("data"), data_docs=False)


def test_a_report_never_holds_an_address_the_pipelines_messages_quote(checked):
    """A shifted row puts the customer's address in order_date: the pipeline's message quotes
    it (contract section 5 allows quoting that column); the e-mail must not."""
    rows = [
        "order_ref;email;lastname;firstname;order_date",
        f"W1;{CUSTOMER};{NAMES[0]};{NAMES[1]};{CUSTOMER}",
        f"W2;not-an-address;{NAMES[0]};{NAMES[1]};18-11-2026",
        f"W3;{CUSTOMER};{NAMES[0]};{NAMES[1]}",
    ]
    outcome = checked.check("\n".join(rows).encode(), f"{CUSTOMER}.csv", "website")
    assert any(CUSTOMER in e.message for e in outcome.errors), "the pipeline quotes it"

    message = messages.merchant_report(outcome, STAFF)

    text = _every_text(message)
    assert CUSTOMER not in text and "jane.secret" not in text
    assert not any(name in text for name in NAMES)
    assert "line 2, order_date, invalid_date: order_date '(hidden)' is not a date" in text
    assert "line 3, email, invalid_email" in text and "line 4, -, wrong_field_count" in text
    assert "j***@example.org.csv" in message.subject


def test_a_data_row_taken_for_the_header_leaves_no_name_in_the_report(checked):
    """The header-less file's first row is read as the header: the rejection quotes its
    values ("secretname: did you mean lastname?"), with no address to give them away."""
    row = f"W1;{CUSTOMER};{NAMES[0]};{NAMES[1]};18-11-2026\nW2;x@example.org;A;B;18-11-2026\n"
    outcome = checked.check(row.encode(), "orders.csv", "website")
    assert outcome.rejection and NAMES[0].lower() in outcome.rejection.message

    text = _every_text(messages.merchant_report(outcome, STAFF))

    assert NAMES[0].lower() not in text.lower() and CUSTOMER not in text
    assert "rejected, nothing was loaded (missing_columns)" in text
    assert "order_ref*;email*;lastname*;firstname*;order_date*" in text


def _record(**changed) -> ImportRecord:
    values = dict(
        import_id="20261206T100000Z-1a2b3c4d",
        merchant_id="acme",
        source="upload",
        file_name="orders.csv",
        sha256="0" * 64,
        size_bytes=10,
        template="website",
        status="loaded",
        rejection_code=None,
        received_at=NOW,
        processed_at=NOW,
        total_rows=30_010,
        valid_rows=5,
        error_rows=30_005,
        brand_requests=5,
    )
    return ImportRecord(**{**values, **changed})


def test_a_report_gives_the_counts_the_first_errors_and_a_bounded_errors_csv():
    errors = [RowError(n + 2, "delay", "invalid_delay", f"delay '{n}'") for n in range(30_005)]
    errors[0] = RowError(2, "shop_id", "missing_value", "=HYPERLINK(x)")
    outcome = Outcome(record=_record(), errors=errors)

    message = messages.merchant_report(outcome, STAFF)

    assert message.dedupe_key == "merchant_report:20261206T100000Z-1a2b3c4d"
    assert (message.kind, message.recipients, message.attachment_name) == (
        messages.MERCHANT_REPORT,
        STAFF,
        "errors.csv",
    )
    assert "Rows with errors: 30005 (30005 errors)" in message.body
    assert "Review requests created: 5 (5 brand, 0 product)" in message.body
    assert f"The first {messages.FIRST_ERRORS} errors" in message.body
    assert "line 21, delay, invalid_delay: delay '19'" in message.body
    assert "line 22," not in message.body
    lines = (message.attachment or "").splitlines()
    assert lines[0] == "line;column;code;message"
    assert lines[1] == "2;shop_id;missing_value;'=HYPERLINK(x)", "a formula is defused"
    assert len(lines) == 1 + messages.MAX_ATTACHED_ERRORS
    assert "first 10,000 of the 30,005 errors" in message.body


def test_a_subject_is_one_line_and_fits_its_column():
    outcome = Outcome(record=_record(file_name="a\r\nBcc: x@example.com\n" + "x" * 300))

    subject = messages.merchant_report(outcome, STAFF).subject

    assert "\n" not in subject and "\r" not in subject
    assert len(subject) <= messages.MAX_SUBJECT and "x@example.com" not in subject


def test_the_digest_names_failed_tasks_and_rejected_files_by_code_only():
    rejected = [
        {
            "merchant_id": "acme",
            "file_name": "orders.csv",
            "status": "rejected",
            "rejection": "missing_columns",
            "import_id": "imp-1",
            "report": "/data/reports/acme/imp-1",
        }
    ]
    failed = [FailedTask("ingest_batch", 3, "failed"), FailedTask("summarize", -1, "failed")]

    digest = messages.run_digest("orders_upload_ingest", "manual__x", rejected, failed, STAFF)

    assert digest.dedupe_key == "alert_digest:orders_upload_ingest:manual__x"
    assert "ingest_batch[3]: failed" in digest.body and "summarize: failed" in digest.body
    assert "acme / orders.csv: missing_columns (import imp-1" in digest.body
    assert digest.subject.endswith("1 rejected file(s), 2 failed task(s)")


def test_a_dedupe_key_longer_than_its_column_is_hashed():
    short = messages.dedupe_key("alert_digest", "dag", "run")
    long = messages.dedupe_key("alert_digest", "dag", "r" * 300)

    assert short == "alert_digest:dag:run"
    assert long.startswith("alert_digest:sha256:") and len(long) <= messages.MAX_KEY
    assert long == messages.dedupe_key("alert_digest", "dag", "r" * 300)


# -- files left waiting, with an injected clock ----------------------------------------------


def test_stuck_uploads_are_the_complete_files_older_than_the_limit(tmp_path: Path):
    data = tmp_path / "data"
    now = dt.datetime.now(dt.UTC)
    old = drop(data / "uploads" / "acme", "old.csv", "x", age_seconds=3601)
    drop(data / "uploads" / "acme", "young.csv", "x", age_seconds=3000)
    drop(data / "uploads" / "acme", "old.csv.part", "x", age_seconds=9000)
    drop(data / "uploads" / "acme", ".old.csv", "x", age_seconds=9000)

    waiting = stuck.stuck_uploads(data, now, 60)
    later = stuck.stuck_uploads(data, now + dt.timedelta(minutes=11), 60)

    assert [(f.source, f.merchant_id, f.name) for f in waiting] == [("upload", "acme", "old.csv")]
    assert waiting[0].mtime == old.stat().st_mtime
    assert [f.name for f in later] == ["old.csv", "young.csv"]


def test_a_stuck_alert_is_one_fact_per_file_and_modification_time():
    file = stuck.WaitingFile("upload", "acme", "orders.csv", 1_700_000_000.25, "/data/uploads")
    touched = stuck.WaitingFile("upload", "acme", "orders.csv", 1_700_000_100.0, "/data/uploads")
    later = NOW + dt.timedelta(hours=1)

    first = messages.stuck_alert(file, NOW, 60, STAFF)

    assert first.dedupe_key == messages.stuck_alert(file, later, 60, STAFF).dedupe_key
    assert first.dedupe_key != messages.stuck_alert(touched, NOW, 60, STAFF).dedupe_key
    assert first.kind == messages.STUCK_FILE and "orders.csv" in first.subject


# -- the outbox on a SQLite file --------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = warehouse.engine_for(f"sqlite:///{tmp_path / 'warehouse.db'}")
    warehouse.migrate(engine)
    return engine


def _rows(engine: Engine) -> list[OutboxRow]:
    with engine.connect() as connection:
        return list(connection.execute(select(OutboxRow.__table__)).all())


def test_a_fact_is_queued_once(engine):
    message = Message("stuck_file:x", "stuck_file", STAFF, "s", "b")

    assert outbox.enqueue_one(engine, message, NOW) is True
    assert outbox.enqueue_one(engine, message, NOW + dt.timedelta(hours=1)) is False

    (row,) = _rows(engine)
    assert (row.attempts, row.sent_at, json.loads(row.recipients)) == (0, None, list(STAFF))


def test_a_claimed_message_is_taken_by_one_sender_until_its_claim_ends(engine):
    outbox.enqueue_one(engine, Message("k", "stuck_file", STAFF, "s", "b"), NOW)
    (seen_by_a,) = outbox.pending(engine, NOW)
    (seen_by_b,) = outbox.pending(engine, NOW)

    assert outbox.claim(engine, seen_by_a, NOW) is True
    assert outbox.claim(engine, seen_by_b, NOW) is False, "read before the claim, taken since"
    assert outbox.pending(engine, NOW + dt.timedelta(seconds=outbox.CLAIM_SECONDS - 1)) == []
    (again,) = outbox.pending(engine, NOW + dt.timedelta(seconds=outbox.CLAIM_SECONDS))
    assert again.attempts == 1


def test_a_failed_attempt_waits_longer_each_time_up_to_an_hour(engine):
    outbox.enqueue_one(engine, Message("k", "stuck_file", STAFF, "s", "b"), NOW)
    (message,) = outbox.pending(engine, NOW)
    outbox.claim(engine, message, NOW)

    next_attempt = outbox.mark_failed(engine, message, "refused", NOW)

    assert next_attempt == NOW + dt.timedelta(minutes=5)
    assert outbox.pending(engine, next_attempt - dt.timedelta(seconds=1)) == []
    assert [outbox.retry_delay(n).total_seconds() / 60 for n in range(1, 7)] == [
        5,
        10,
        20,
        40,
        60,
        60,
    ]
    assert outbox.retry_delay(10_000) == outbox.LONGEST_RETRY


def test_an_import_queues_its_merchants_report_in_its_own_transaction(tmp_path: Path):
    merchants = {
        "acme": Merchant("acme", "website", notify=STAFF),
        "quiet": Merchant("quiet", "website"),
    }
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    ingest = Ingest(tmp_path / "data", merchants, url, data_docs=False)
    sample = sample_for_yesterday("website")
    for merchant_id in ("acme", "quiet"):
        drop(tmp_path / "in" / merchant_id, "orders.csv", sample)
    dry = drop(tmp_path / "in" / "dry", "orders.csv", sample + "W9;x@example.org;A;B;x\n")

    loaded = ingest.import_file(tmp_path / "in" / "acme" / "orders.csv", "acme", "upload")
    ingest.import_file(tmp_path / "in" / "quiet" / "orders.csv", "quiet", "upload")
    ingest.import_file(dry, "acme", "backfill", dry_run=True)
    again = ingest.import_file(tmp_path / "in" / "acme" / "orders.csv", "acme", "sftp")

    keys = [(row.dedupe_key, row.kind) for row in _rows(ingest.engine)]
    assert keys == [
        (f"merchant_report:{loaded.record.import_id}", "merchant_report"),
        (f"merchant_report:{again.record.import_id}", "merchant_report"),
    ], "one per recorded file of a merchant with a notify list; none for a dry run"
    (last,) = [
        row for row in _rows(ingest.engine) if row.dedupe_key.endswith(again.record.import_id)
    ]
    assert "already imported" in last.body


# -- settings, the SMTP connection, the run's outcome ----------------------------------------


def test_alert_addresses_are_comma_separated_and_checked(monkeypatch):
    monkeypatch.delenv("REVIEW_INGEST_ALERT_EMAILS", raising=False)
    assert settings.alert_emails() == ()
    monkeypatch.setenv(
        "REVIEW_INGEST_ALERT_EMAILS", " a@example.com, b@example.com,,a@example.com "
    )
    assert settings.alert_emails() == ("a@example.com", "b@example.com")
    monkeypatch.setenv("REVIEW_INGEST_ALERT_EMAILS", "a@example.com; b@example.com")
    with pytest.raises(ConfigError, match="REVIEW_INGEST_ALERT_EMAILS"):
        settings.alert_emails()


def test_stuck_minutes_default_to_an_hour_and_must_be_whole(monkeypatch):
    monkeypatch.delenv("REVIEW_INGEST_STUCK_MINUTES", raising=False)
    assert settings.stuck_minutes() == 60
    monkeypatch.setenv("REVIEW_INGEST_STUCK_MINUTES", "0")
    with pytest.raises(ConfigError, match="REVIEW_INGEST_STUCK_MINUTES"):
        settings.stuck_minutes()


def test_the_smtp_connection_is_read_as_the_smtp_provider_reads_it():
    default = sending.settings_from_connection("mail.example.com", 465, "u", "s3cr3t-pw", {})
    plain = sending.settings_from_connection(
        "127.0.0.1",
        2525,
        None,
        None,
        {"disable_ssl": "true", "disable_tls": True, "from_email": "ri@example.com"},
    )

    assert (default.use_ssl, default.starttls, default.mail_from) == (
        True,
        True,
        "review-ingest@localhost",
    )
    assert (plain.use_ssl, plain.starttls, plain.port, plain.mail_from) == (
        False,
        False,
        2525,
        "ri@example.com",
    )
    assert default.password == "s3cr3t-pw" and "s3cr3t-pw" not in repr(default)


def test_a_messages_id_is_stable_and_its_attachment_is_csv():
    pending = outbox.Pending(
        7,
        "merchant_report:imp",
        "merchant_report",
        STAFF,
        "s",
        "body\n",
        "errors.csv",
        "line;column;code;message\n",
        0,
    )

    email = sending.build_email(pending, "ri@example.com", NOW)
    again = sending.build_email(pending, "ri@example.com", NOW + dt.timedelta(hours=3))

    assert email["Message-ID"] == again["Message-ID"]
    assert email["Message-ID"].endswith("@example.com>")
    (attachment,) = email.iter_attachments()
    assert (attachment.get_content_type(), attachment.get_filename()) == ("text/csv", "errors.csv")


def test_the_runs_failed_tasks_and_rejected_files_are_read_from_any_result_shape():
    crumbs = [
        {"task_id": "ingest_batch", "map_index": 0, "state": "success"},
        {"task_id": "ingest_batch", "map_index": 1, "state": "failed"},
        {"task_id": "summarize", "map_index": -1, "state": "upstream_failed"},
        {"task_id": "notify_data_team", "map_index": -1, "state": "failed"},
    ]
    loaded = {"merchant_id": "a", "file_name": "x.csv", "status": "loaded"}
    rejected = {"merchant_id": "a", "file_name": "y.csv", "status": "rejected"}

    failed = notifications.failed_tasks(iter(crumbs), "notify_data_team")

    assert [t.label for t in failed] == ["ingest_batch[1]", "summarize"]
    assert notifications.rejected_files([[loaded, rejected], None]) == [rejected]
    assert notifications.rejected_files([{"merchants": ["a"], "files": [rejected]}]) == [rejected]
    assert notifications.rejected_files(rejected) == [rejected]
    assert notifications.rejected_files(None) == []
