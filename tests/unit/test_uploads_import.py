"""The task of ``orders_upload_import`` (``tasks.upload_import``) called in this process on a
SQLite warehouse: the checked bytes imported once, with the pre-assigned import id, moved like
any upload; failures recorded on the upload. The DAG itself: tests/integration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from review_ingest.backoffice import uploads
from review_ingest.core.merchants import load_merchants
from review_ingest.errors import UsageError
from review_ingest.sources import claims
from review_ingest.store import warehouse
from review_ingest.tasks import upload_import
from tests.kit.factories import sample_for_yesterday, write_merchants
from tests.kit.warehouse import query


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    data = tmp_path / "data"
    merchants_file = write_merchants(tmp_path / "merchants.yaml", {"acme": "website"})
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(data))
    monkeypatch.setenv("REVIEW_INGEST_MERCHANTS", str(merchants_file))
    return {
        "data": data,
        "merchants": load_merchants(merchants_file),
        "url": f"sqlite:///{tmp_path / 'warehouse.db'}",
    }


def staged(env: dict, content: bytes, *, queue: bool = True) -> uploads.Upload:
    upload_id = uploads.new_upload_id()
    received = uploads.incoming_path(env["data"], upload_id)
    received.parent.mkdir(parents=True, exist_ok=True)
    received.write_bytes(content)
    upload = uploads.create(
        env["data"],
        env["merchants"],
        env["url"],
        upload_id=upload_id,
        merchant_id="acme",
        file_name="orders.csv",
        send_now=True,
        received=received,
    )
    if queue:
        uploads.queue(upload, user="admin")
    return upload


def state(env: dict, upload: uploads.Upload) -> uploads.UploadState:
    return uploads.status(upload, warehouse.engine_for(env["url"]))


def test_the_checked_bytes_are_imported_once_with_their_import_id(env: dict) -> None:
    upload = staged(env, sample_for_yesterday("website").encode())
    import_id = upload.queued.import_id

    result = upload_import.import_upload(upload.upload_id, env["url"])

    assert result["status"] == "loaded" and result["import_id"] == import_id
    rows = query(env["url"], "SELECT import_id, source, file_name, sha256, status FROM imports")
    assert rows == [(import_id, "upload", "orders.csv", upload.sha256, "loaded")]
    due = query(env["url"], "SELECT count(*) FROM review_requests WHERE scheduled_at IS NOT NULL")
    assert due == [(5,)]
    moved = env["data"] / "processed" / "acme" / "orders.csv"
    assert moved.read_bytes() == sample_for_yesterday("website").encode()
    report_dir = env["data"] / "reports" / "acme" / import_id
    report = json.loads((report_dir / "report.json").read_text())
    assert report["requests"]["due_now"] == 5, "send_now of the check holds for the import"
    assert (env["data"] / "data_docs" / report["validation"]["data_docs"]).is_file()
    assert claims.all_claims(env["data"]) == [] and not upload.path.exists()
    done = state(env, upload)
    assert (done.state, done.import_id, done.status) == ("done", import_id, "loaded")

    again = upload_import.import_upload(upload.upload_id, env["url"])

    assert again["import_id"] == import_id and again["status"] == "loaded"
    assert query(env["url"], "SELECT count(*) FROM imports") == [(1,)]


def test_another_run_holding_the_import_is_left_alone(env: dict) -> None:
    upload = staged(env, sample_for_yesterday("website").encode())
    held = uploads.claim_staged(upload)
    assert held is not None

    result = upload_import.import_upload(upload.upload_id, env["url"])

    assert result["status"] == "skipped" and result["import_id"] == upload.queued.import_id
    assert held.path.is_file() and query(env["url"], "SELECT count(*) FROM imports") == [(0,)]
    assert state(env, upload).state == "importing"


def test_a_failure_before_the_commit_gives_the_bytes_back_to_staging(
    env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = staged(env, sample_for_yesterday("website").encode())

    def broken(*args, **kwargs):
        raise OSError("disk hiccup")

    with monkeypatch.context() as patch:
        patch.setattr(warehouse, "save", broken)
        with pytest.raises(OSError, match="disk hiccup"):
            upload_import.import_upload(upload.upload_id, env["url"], last_try=False)

        assert upload.path.is_file() and claims.all_claims(env["data"]) == []
        assert not (env["data"] / "uploads").exists(), "never into the 10-minute run's folder"
        assert upload.failure is not None and not upload.failure.final
        assert state(env, upload).state == "queued", "a retry follows"

        with pytest.raises(OSError):
            upload_import.import_upload(upload.upload_id, env["url"], last_try=True)
        failed = state(env, upload)
        assert failed.state == "failed" and "disk hiccup" in (failed.reason or "")

    assert upload_import.import_upload(upload.upload_id, env["url"])["status"] == "loaded"
    assert upload.failure is None and state(env, upload).state == "done"


def test_bytes_changed_since_the_check_fail_at_once_naming_them(env: dict) -> None:
    upload = staged(env, sample_for_yesterday("website").encode())
    upload.path.write_bytes(sample_for_yesterday("website").replace("WEB-", "X-").encode())

    with pytest.raises(uploads.ChangedSinceCheck, match=upload.sha256):
        upload_import.import_upload(upload.upload_id, env["url"], last_try=False)

    assert state(env, upload).state == "failed", "no retry can cure it"
    assert query(env["url"], "SELECT count(*) FROM imports") == [(0,)]


def test_an_upload_never_queued_or_unknown_fails_at_once(env: dict) -> None:
    upload = staged(env, sample_for_yesterday("website").encode(), queue=False)
    with pytest.raises(uploads.NotImportable, match="never sent to import"):
        upload_import.import_upload(upload.upload_id, env["url"])
    assert upload.path.is_file()
    with pytest.raises(uploads.UnknownUpload):
        upload_import.import_upload("20261206T100000Z-0123456789ab", env["url"])
    assert issubclass(uploads.NotImportable, UsageError)


def test_staged_bytes_deleted_after_their_expiry_fail_naming_the_upload(env: dict) -> None:
    upload = staged(env, sample_for_yesterday("website").encode())
    upload.path.unlink()
    with pytest.raises(UsageError, match=f"upload {upload.upload_id}.*no longer staged"):
        upload_import.import_upload(upload.upload_id, env["url"])
