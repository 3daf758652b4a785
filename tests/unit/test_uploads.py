"""Uploads from the browser (contract section 12), without a server: the staging folder, the
check (the real pipeline's dry run on a SQLite warehouse), safe names, "Import data" decided
once, expiry, the state an upload is in, and what the page shows of it."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pytest

from review_ingest.backoffice import uploads
from review_ingest.core.merchants import load_merchants
from review_ingest.errors import UsageError
from review_ingest.sources import claims, folders
from review_ingest.web import airflow_runs
from review_ingest.web import uploads as upload_pages
from tests.kit.factories import sample_for_yesterday, write_merchants

NOW = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    merchants = load_merchants(write_merchants(tmp_path / "merchants.yaml", {"acme": "website"}))
    monkeypatch.delenv("REVIEW_INGEST_STAGING_HOURS", raising=False)
    return {
        "data": tmp_path / "data",
        "merchants": merchants,
        "url": f"sqlite:///{tmp_path / 'warehouse.db'}",
    }


def receive(env: dict, content: bytes, upload_id: str | None = None) -> tuple[str, Path]:
    """What the web layer does while the form arrives: the bytes in ``.incoming``."""
    upload_id = upload_id or uploads.new_upload_id()
    path = uploads.incoming_path(env["data"], upload_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return upload_id, path


def create(env: dict, content: bytes, name: str = "orders.csv", **kwargs) -> uploads.Upload:
    upload_id, received = receive(env, content)
    return uploads.create(
        env["data"],
        env["merchants"],
        env["url"],
        upload_id=upload_id,
        merchant_id=kwargs.pop("merchant_id", "acme"),
        file_name=name,
        send_now=kwargs.pop("send_now", False),
        received=received,
        **kwargs,
    )


# -- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("orders.csv", "orders.csv"),
        ("../../x.csv", "x.csv"),
        ("C:\\Users\\me\\orders.csv", "orders.csv"),
        ("a\x00b\x1f.csv", "ab.csv"),
        ("<script>alert(1)<\\script>.csv", "script>.csv"),
        ("<b>bold</b>.csv", "b>.csv"),
        ("..", "upload.csv"),
        ("../..", "upload.csv"),
        (".hidden.csv", "hidden.csv"),
        ("  spaced .csv ", "spaced .csv"),
    ],
)
def test_a_browsers_file_name_is_data_never_a_path(raw: str, stored: str) -> None:
    assert uploads.stored_name(raw) == stored
    assert folders.safe_name(stored) == stored


def test_a_long_name_is_cut_to_what_every_file_system_takes_keeping_its_suffix() -> None:
    stored = uploads.stored_name("é" * 300 + ".csv")
    assert len(stored.encode()) <= uploads.MAX_NAME_BYTES and stored.endswith(".csv")


def test_an_empty_name_is_refused_naming_the_field(env: dict) -> None:
    with pytest.raises(uploads.InvalidUpload, match="file") as caught:
        create(env, b"x", name="  ")
    assert caught.value.field == "file"


# -- the check and the staging folder ----------------------------------------------------------


def test_a_checked_upload_is_staged_with_the_pipelines_own_report(env: dict) -> None:
    content = sample_for_yesterday("website").encode()
    upload = create(env, content, name="../orders <1>.csv", send_now=True, now=NOW)

    folder = env["data"] / "staging" / "acme" / upload.upload_id
    assert upload.folder == folder
    assert upload.path == folder / "orders <1>.csv" and upload.path.read_bytes() == content
    assert not uploads.incoming_path(env["data"], upload.upload_id).exists()
    assert upload.report["status"] == "accepted" and upload.report["source"] == "upload"
    assert upload.report["total_rows"] == upload.report["valid_rows"] == 5
    assert upload.report["requests"]["brand"] == 5
    assert upload.report["file_name"] == upload.file_name == "orders <1>.csv"
    assert upload.size_bytes == len(content) and len(upload.sha256) == 64
    assert upload.send_now is True
    assert upload.expires_at == NOW + dt.timedelta(hours=24)
    assert not (env["data"] / "reports").exists(), "a check leaves no report of an import"
    assert uploads.find(env["data"], upload.upload_id) == upload
    assert sorted(p.name for p in folder.iterdir()) == ["orders <1>.csv", "upload.json"]


def test_the_check_sees_the_warehouse_existing_proofs(env: dict) -> None:
    from review_ingest.pipeline.ingest import Ingest

    content = sample_for_yesterday("website")
    first = env["data"].parent / "first.csv"
    first.write_text(content, encoding="utf-8")
    ingest = Ingest(env["data"], env["merchants"], env["url"], data_docs=False)
    assert ingest.import_file(first, "acme", "upload").record.status == "loaded"
    ingest.close()

    again = create(env, content.replace("WEB-100231", "NEW-1").encode())

    assert again.report["status"] == "rejected"
    assert again.report["rejection"]["code"] == "existing_proofs"
    assert len(again.report["existing_proofs"]) == 4
    assert not again.importable


@pytest.mark.parametrize(
    ("content", "code"),
    [(b"", "empty_file"), (b"\x89PNG\r\n\x1a\n\x00\x00\xff", "not_utf8")],
)
def test_a_file_the_check_rejects_is_staged_with_its_rejection(
    env: dict, content: bytes, code: str
) -> None:
    upload = create(env, content)
    assert upload.report["status"] == "rejected" and upload.report["rejection"]["code"] == code
    with pytest.raises(uploads.NotImportable, match="rejected"):
        uploads.queue(upload, user="admin")
    assert upload.queued is None


def test_an_unknown_merchant_is_refused_naming_the_field_and_nothing_is_kept(env: dict) -> None:
    with pytest.raises(uploads.InvalidUpload, match="merchant_id") as caught:
        create(env, b"x", merchant_id="nobody")
    assert caught.value.field == "merchant_id"
    assert not (env["data"] / "staging" / "nobody").exists()


def test_the_warehouse_down_during_the_check_leaves_nothing_half_done(env: dict) -> None:
    env["url"] = "postgresql+psycopg://nobody@127.0.0.1:9/warehouse?connect_timeout=3"
    upload_id, received = receive(env, sample_for_yesterday("website").encode())

    with pytest.raises(uploads.WarehouseUnavailable, match="warehouse"):
        uploads.create(
            env["data"],
            env["merchants"],
            env["url"],
            upload_id=upload_id,
            merchant_id="acme",
            file_name="orders.csv",
            send_now=False,
            received=received,
        )

    assert not received.exists()
    assert not (env["data"] / "staging" / "acme" / upload_id).exists()


def test_unknown_or_malformed_upload_ids_are_unknown(env: dict) -> None:
    for upload_id in ("20261206T100000Z-0123456789ab", "../acme", "*", ""):
        with pytest.raises(uploads.UnknownUpload):
            uploads.find(env["data"], upload_id)
    assert issubclass(uploads.UnknownUpload, UsageError)


# -- "Import data": once ------------------------------------------------------------------------


def test_import_data_is_queued_once_and_the_second_names_the_first_run(env: dict) -> None:
    upload = create(env, sample_for_yesterday("website").encode())
    queued = uploads.queue(upload, user="admin", now=NOW)

    assert queued.dag_id == "orders_upload_import"
    assert queued.dag_run_id == f"upload__{queued.import_id}"
    assert queued.import_id != upload.report["import_id"]
    assert uploads.find(env["data"], upload.upload_id).queued == queued
    with pytest.raises(uploads.AlreadyQueued, match=queued.dag_run_id) as caught:
        uploads.queue(upload, user="someone else")
    assert caught.value.queued == queued
    assert json.loads((upload.folder / "queued.json").read_text())["user"] == "admin"


def test_two_users_at_once_queue_one_import(env: dict) -> None:
    upload = create(env, sample_for_yesterday("website").encode())
    start = threading.Barrier(8)
    won: list[uploads.Queued] = []
    lost: list[uploads.AlreadyQueued] = []

    def click(user: str) -> None:
        start.wait()
        try:
            won.append(uploads.queue(upload, user=user))
        except uploads.AlreadyQueued as exc:
            lost.append(exc)

    threads = [threading.Thread(target=click, args=(f"user{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(won) == 1 and len(lost) == 7
    assert {exc.queued for exc in lost} == {won[0]}


def test_a_queue_whose_run_could_not_start_can_be_tried_again(env: dict) -> None:
    upload = create(env, sample_for_yesterday("website").encode())
    uploads.queue(upload, user="admin")
    uploads.unqueue(upload)
    assert upload.queued is None
    again = uploads.queue(upload, user="admin")
    assert again.dag_run_id == f"upload__{again.import_id}"


def test_an_expired_upload_cannot_be_imported(env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVIEW_INGEST_STAGING_HOURS", "2")
    upload = create(env, sample_for_yesterday("website").encode(), now=NOW)

    assert upload.expires_at == NOW + dt.timedelta(hours=2)
    assert not upload.is_expired(NOW + dt.timedelta(hours=1, minutes=59))
    assert upload.is_expired(NOW + dt.timedelta(hours=2))
    with pytest.raises(uploads.NotImportable, match="expired"):
        uploads.queue(upload, user="admin", now=NOW + dt.timedelta(hours=3))
    assert upload.queued is None


# -- the state an upload is in ----------------------------------------------------------------


def test_the_state_is_derived_from_what_is_on_disk_and_in_the_warehouse(env: dict) -> None:
    upload = create(env, sample_for_yesterday("website").encode())
    state = uploads.state_of

    assert state(upload, imported=None, claimed=False, run_failed=False).state == "checked"
    queued = uploads.queue(upload, user="admin")
    assert state(upload, imported=None, claimed=False, run_failed=False).state == "queued"
    assert state(upload, imported=None, claimed=True, run_failed=False).state == "importing"
    done = state(upload, imported="loaded", claimed=False, run_failed=True)
    assert (done.state, done.import_id, done.status) == ("done", queued.import_id, "loaded")
    failed = state(upload, imported=None, claimed=True, run_failed=True)
    assert failed.state == "failed" and "DAG run" in (failed.reason or "")

    uploads.record_failure(upload, "OperationalError (warehouse down)", final=False)
    assert state(upload, imported=None, claimed=False, run_failed=False).state == "queued"
    uploads.record_failure(upload, "ChangedSinceCheck: not the checked bytes", final=True)
    failed = state(upload, imported=None, claimed=False, run_failed=False)
    assert (failed.state, failed.reason) == ("failed", "ChangedSinceCheck: not the checked bytes")
    uploads.clear_failure(upload)
    assert state(upload, imported=None, claimed=False, run_failed=False).state == "queued"


def test_facts_claims_and_imports_rows_of_the_pre_assigned_import(env: dict) -> None:
    upload = create(env, sample_for_yesterday("website").encode())
    queued = uploads.queue(upload, user="admin")
    assert uploads.claimed(upload) is False

    claim = uploads.claim_staged(upload)

    assert claim is not None and claim.import_id == queued.import_id and claim.source == "upload"
    assert claim.origin == "upload" and claim.name == upload.file_name
    assert not upload.path.exists()
    assert uploads.claimed(upload) is True
    assert uploads.claim_staged(upload) is None, "one process gets the bytes"
    claim.release()
    taken = uploads.claim_staged(upload)
    assert taken is not None and taken.import_id == queued.import_id, "a failed try's claim"
    taken.give_back(upload.folder)
    assert upload.path.is_file() and claims.all_claims(env["data"], "acme") == []


def test_bytes_changed_since_the_check_are_never_imported(env: dict) -> None:
    upload = create(env, sample_for_yesterday("website").encode())
    uploads.queue(upload, user="admin")
    upload.path.write_bytes(b"order_ref;email\nX;y@example.org\n")

    with pytest.raises(uploads.ChangedSinceCheck, match=upload.sha256):
        uploads.claim_staged(upload)

    assert upload.path.is_file(), "given back to its staging folder"
    assert claims.all_claims(env["data"], "acme") == []


def test_the_api_object(env: dict) -> None:
    upload = create(env, sample_for_yesterday("website").encode(), now=NOW)
    shown = uploads.as_dict(
        upload, uploads.state_of(upload, imported=None, claimed=False, run_failed=False)
    )
    assert shown == {
        "upload_id": upload.upload_id,
        "merchant_id": "acme",
        "file_name": "orders.csv",
        "size_bytes": upload.size_bytes,
        "sha256": upload.sha256,
        "send_now": False,
        "state": "checked",
        "report": upload.report,
        "expires_at": "2026-12-07T10:00:00Z",
    }
    queued = uploads.queue(upload, user="admin")
    done = uploads.as_dict(
        upload, uploads.state_of(upload, imported="loaded", claimed=False, run_failed=False)
    )
    assert done["state"] == "done" and done["import_id"] == queued.import_id
    assert done["status"] == "loaded" and done["dag_run_id"] == queued.dag_run_id
    assert done["dag_id"] == "orders_upload_import"


# -- what the page shows ------------------------------------------------------------------------


def test_a_checked_file_that_would_load_shows_its_totals_and_import_data(env: dict) -> None:
    lines = sample_for_yesterday("website").splitlines()
    lines[2] = lines[2].replace("@", "-at-", 1)  # one invalid e-mail
    upload = create(env, ("\n".join(lines) + "\n").encode())
    state = uploads.state_of(upload, imported=None, claimed=False, run_failed=False)

    context = upload_pages.page_context(["acme", "beta"], upload, state, None)

    assert context["merchant_ids"] == ["acme", "beta"]
    assert context["importable"] is True and context["refresh"] is False
    assert context["report"]["error_rows"] == 1 and context["errors_total"] == 1
    assert [e["code"] for e in context["errors"]] == ["invalid_email"]
    assert context["existing_proofs"] == 0 and context["run_href"] is None


def test_once_queued_the_page_links_the_run_and_follows_it(env: dict) -> None:
    upload = create(env, sample_for_yesterday("website").encode())
    queued = uploads.queue(upload, user="admin")
    state = uploads.state_of(upload, imported=None, claimed=False, run_failed=False)

    context = upload_pages.page_context(["acme"], upload, state, None)

    assert context["importable"] is False and context["refresh"] is True
    assert context["run_href"] == f"../dags/orders_upload_import/runs/{queued.dag_run_id}"


def test_a_rejected_file_has_no_import_data(env: dict) -> None:
    upload = create(env, b"")
    state = uploads.state_of(upload, imported=None, claimed=False, run_failed=False)
    context = upload_pages.page_context(["acme"], upload, state, None)
    assert context["importable"] is False and context["rejection"]["code"] == "empty_file"


def test_an_imports_page_links_the_run_that_imported_it(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = {("orders_upload_import", "upload__20261206T101500Z-1a2b3c4d"): "success"}
    monkeypatch.setattr(airflow_runs, "run_state", lambda dag, run: runs.get((dag, run)))

    href = upload_pages.import_run_href("20261206T101500Z-1a2b3c4d", "upload")

    assert href == "../../dags/orders_upload_import/runs/upload__20261206T101500Z-1a2b3c4d"
    assert upload_pages.import_run_href("20261206T101500Z-ffffffff", "upload") is None
    assert upload_pages.import_run_href("20261206T101500Z-1a2b3c4d", "sftp") is None
