"""Uploads from the browser (contract section 12): a file checked exactly as ``review-ingest
import`` judges it (the pipeline's dry run: suites, the warehouse's existing proofs and
opt-outs), kept until "Import data" or its expiry, then imported by a run of
``orders_upload_import`` (``tasks.upload_import``) through the same pipeline as any upload.

One folder per upload, ``<data>/staging/<merchant_id>/<upload_id>/``:

- ``<name>``: the bytes, under a safe name, until the import claims them (``sources.claims``:
  a rename, so that one process only gets them);
- ``upload.json``: the check (``Upload``), written last: a folder without it is a check that
  did not finish, and is not an upload;
- ``queued.json``: "Import data", linked into place (a hard link never replaces a file: of
  two clicks at once, one makes it), naming the DAG run and the ``import_id`` it records;
- ``failed.json``: the last failure of the import's task, with a short reason.

The state is derived, never stored: ``checked`` (no ``queued.json``), ``queued``,
``importing`` (a claim holds the import), ``done`` (the warehouse has the ``imports`` row of
that ``import_id``) or ``failed``. A checked upload expires ``REVIEW_INGEST_STAGING_HOURS``
after its check; ``review_data_retention`` deletes old folders
(``privacy.retention.purge_staging``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from review_ingest import settings
from review_ingest.core import report
from review_ingest.core.merchants import Merchant
from review_ingest.core.outcomes import new_import_id
from review_ingest.errors import PermanentError, UsageError, describe
from review_ingest.sources import claims, folders

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

#: The DAG whose runs import uploads (``dags/orders_upload_import.py``).
IMPORT_DAG_ID = "orders_upload_import"
UPLOAD_ID = folders.UPLOAD_ID
#: A stored name's length at most, in UTF-8 bytes: every file system takes 255.
MAX_NAME_BYTES = 200
DEFAULT_NAME = "upload.csv"
RECORD, QUEUED, FAILED = "upload.json", "queued.json", "failed.json"
#: Where a file being received waits, before its merchant is known: ``<staging>/.incoming/``.
INCOMING = ".incoming"
#: One check at a time in a process: a check's memory (the file's rows, a Great Expectations
#: validation) is paid once, however many people click.
_ONE_CHECK = threading.Lock()


class InvalidUpload(UsageError):
    """A field of the upload form is wrong: ``field`` names it, ``message`` says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownUpload(UsageError):
    """No upload of that id (never made, or deleted after its expiry)."""


class NotImportable(UsageError):
    """ "Import data" refused, changing nothing: the check rejected the file, or it expired."""


class AlreadyQueued(NotImportable):
    """ "Import data" was clicked before: ``queued`` names that DAG run."""

    def __init__(self, queued: Queued) -> None:
        super().__init__(
            f"this upload was already sent to import: DAG run {queued.dag_run_id} of "
            f"{queued.dag_id} (import {queued.import_id})"
        )
        self.queued = queued


class WarehouseUnavailable(RuntimeError):
    """The check could not ask the warehouse; nothing was kept."""


class ChangedSinceCheck(PermanentError):
    """The staged bytes are not the ones checked: they are never imported."""


@dataclass(frozen=True)
class Queued:
    """ "Import data": the DAG run that imports the upload and the import id it records."""

    import_id: str
    dag_id: str
    dag_run_id: str
    user: str
    queued_at: dt.datetime


@dataclass(frozen=True)
class Failure:
    """The import task's last failure; ``final`` when no retry follows."""

    reason: str
    final: bool
    at: dt.datetime


@dataclass(frozen=True)
class UploadState:
    """Where an upload is: ``checked``, ``queued``, ``importing``, ``done`` (``import_id``,
    ``status``) or ``failed`` (``reason``)."""

    state: str
    import_id: str | None = None
    status: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Upload:
    """A checked upload, as ``upload.json`` records it; ``report`` is the check's (section 5)."""

    data_dir: Path
    upload_id: str
    merchant_id: str
    file_name: str
    size_bytes: int
    sha256: str
    send_now: bool
    created_at: dt.datetime
    expires_at: dt.datetime
    report: dict[str, Any]

    @property
    def folder(self) -> Path:
        return upload_folder(self.data_dir, self.merchant_id, self.upload_id)

    @property
    def path(self) -> Path:
        """The staged bytes (gone once the import claimed them)."""
        return self.folder / self.file_name

    @property
    def importable(self) -> bool:
        """The check says the file would load."""
        return self.report["status"] == "accepted"

    @property
    def queued(self) -> Queued | None:
        body = _read_json(self.folder / QUEUED)
        if body is None:
            return None
        return Queued(**{**body, "queued_at": dt.datetime.fromisoformat(body["queued_at"])})

    @property
    def failure(self) -> Failure | None:
        body = _read_json(self.folder / FAILED)
        if body is None:
            return None
        return Failure(body["reason"], bool(body["final"]), dt.datetime.fromisoformat(body["at"]))

    def is_expired(self, now: dt.datetime | None = None) -> bool:
        """A checked upload not queued in time: it cannot be imported any more."""
        return self.queued is None and (now or _now()) >= self.expires_at


# -- paths and names ------------------------------------------------------------------------


def new_upload_id(now: dt.datetime | None = None) -> str:
    """Sortable by time, unique, safe in a path and in a DAG run id."""
    return f"{(now or _now()):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"


def upload_folder(data_dir: Path, merchant_id: str, upload_id: str) -> Path:
    return folders.staging_root(data_dir) / folders.safe_name(merchant_id) / upload_id


def incoming_path(data_dir: Path, upload_id: str) -> Path:
    """Where the web app writes a file while it is received."""
    return folders.staging_root(data_dir) / INCOMING / f"{upload_id}.part"


def stored_name(raw: str) -> str:
    """A file name from a browser, used as data: its last path segment, without control
    characters, surrounding spaces or leading dots, cut to ``MAX_NAME_BYTES`` (its suffix
    kept); ``DEFAULT_NAME`` when nothing is left."""
    name = re.split(r"[/\\]", raw)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".").strip()
    return folders.safe_name(_cut(name) or DEFAULT_NAME)


def _cut(name: str) -> str:
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, dot, suffix = name.rpartition(".")
    kept = f".{suffix}" if dot and stem and len(suffix) <= 10 else ""
    body = stem if kept else name
    room = MAX_NAME_BYTES - len(kept.encode())
    return body.encode()[:room].decode(errors="ignore").rstrip() + kept


# -- the check ------------------------------------------------------------------------------


def create(
    data_dir: Path,
    merchants: dict[str, Merchant],
    warehouse_url: str,
    *,
    upload_id: str,
    merchant_id: str,
    file_name: str,
    send_now: bool,
    received: Path,
    now: dt.datetime | None = None,
) -> Upload:
    """The received file kept as an upload of ``merchant_id``, checked, its check recorded.

    On any failure (a wrong field, the warehouse down) nothing of it is left, ``received``
    included.
    """
    now = (now or _now()).replace(microsecond=0)
    folder: Path | None = None
    try:
        if merchant_id not in merchants:
            raise InvalidUpload("merchant_id", f"no merchant {merchant_id!r} is configured")
        if not file_name.strip():
            raise InvalidUpload("file", "the file has no name")
        if not UPLOAD_ID.fullmatch(upload_id):
            raise ValueError(f"not an upload id: {upload_id!r}")
        target = upload_folder(data_dir, merchant_id, upload_id)
        target.mkdir(parents=True)
        folder = target
        path = folder / stored_name(file_name)
        os.rename(received, path)
        checked = check(path, merchant_id, merchants, warehouse_url, send_now)
        upload = Upload(
            data_dir=data_dir,
            upload_id=upload_id,
            merchant_id=merchant_id,
            file_name=path.name,
            size_bytes=checked["size_bytes"],
            sha256=checked["sha256"],
            send_now=send_now,
            created_at=now,
            expires_at=now + dt.timedelta(hours=settings.staging_hours()),
            report=checked,
        )
        _write_json(folder / RECORD, _record(upload))
    except BaseException:
        received.unlink(missing_ok=True)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    log.info(
        "upload %s of merchant %s (%r, %d bytes): %s",
        upload_id,
        merchant_id,
        upload.file_name,
        upload.size_bytes,
        checked["status"],
    )
    return upload


def check(
    path: Path,
    merchant_id: str,
    merchants: dict[str, Merchant],
    warehouse_url: str,
    send_now: bool,
) -> dict[str, Any]:
    """``review-ingest import``'s judgement of the file, loading nothing: a dry run with source
    ``upload``; section 5's report, status ``accepted`` or ``rejected`` (or
    ``already_imported``). Its report files go to a scratch folder, dropped after."""
    from sqlalchemy.exc import DBAPIError

    from review_ingest.pipeline.ingest import Ingest

    with _ONE_CHECK, tempfile.TemporaryDirectory(prefix=".check-", dir=path.parent) as scratch:
        ingest = Ingest(Path(scratch), merchants, warehouse_url, data_docs=False)
        try:
            outcome = ingest.import_file(
                path, merchant_id, "upload", dry_run=True, send_now=send_now
            )
        except DBAPIError as exc:
            raise WarehouseUnavailable(
                f"the warehouse cannot be reached ({describe(exc)}): nothing was kept, "
                "send the file again later"
            ) from exc
        finally:
            ingest.close()
    return report.to_dict(outcome)


def find(data_dir: Path, upload_id: str) -> Upload:
    """The upload of that id; UnknownUpload when there is none (or the id is malformed)."""
    if UPLOAD_ID.fullmatch(upload_id):
        for record in folders.staging_root(data_dir).glob(f"*/{upload_id}/{RECORD}"):
            body = _read_json(record)
            if body is not None:
                return _upload(data_dir, body)
    raise UnknownUpload(f"no upload {upload_id!r} (unknown, or deleted after its expiry)")


# -- "Import data" --------------------------------------------------------------------------


def queue(upload: Upload, *, user: str, now: dt.datetime | None = None) -> Queued:
    """ "Import data": the first call records the DAG run to start and the import id it will
    record; any later one raises AlreadyQueued naming that run. NotImportable when the check
    rejected the file or the upload expired. Nothing changes when it raises."""
    now = now or _now()
    if (queued := upload.queued) is not None:
        raise AlreadyQueued(queued)
    if not upload.importable:
        raise NotImportable(_not_importable(upload))
    if upload.is_expired(now):
        raise NotImportable(
            f"this upload expired at {upload.expires_at:%Y-%m-%d %H:%M} UTC: check the file again"
        )
    import_id = new_import_id(now)
    queued = Queued(
        import_id=import_id,
        dag_id=IMPORT_DAG_ID,
        dag_run_id=run_id_of(import_id),
        user=user,
        queued_at=now,
    )
    if not _link_json(upload.folder / QUEUED, _queued_record(queued)):
        raise AlreadyQueued(upload.queued or queued)
    log.info("upload %s: import %s queued by %s", upload.upload_id, queued.import_id, user)
    return queued


def run_id_of(import_id: str) -> str:
    """The DAG run of ``IMPORT_DAG_ID`` that records ``import_id``: an import's page finds it."""
    return f"upload__{import_id}"


def _not_importable(upload: Upload) -> str:
    rejection = upload.report.get("rejection") or {}
    if upload.report["status"] == "already_imported":
        earlier = upload.report.get("earlier_import_id")
        return f"these bytes were already imported (import {earlier}): nothing to import"
    return f"the check rejected this file ({rejection.get('code')}): nothing to import"


def unqueue(upload: Upload) -> None:
    """Take back "Import data" when its DAG run could not be started: it may be tried again."""
    (upload.folder / QUEUED).unlink(missing_ok=True)


# -- the import's side ------------------------------------------------------------------------


def claim_staged(upload: Upload) -> claims.Claim | None:
    """The staged bytes, claimed for the queued import (its pre-assigned ``import_id``), or a
    claimable claim of that import taken over (a try that failed or was killed); None when
    another process holds them, or they are gone. ChangedSinceCheck, the bytes given back,
    when they are not the ones checked."""
    queued = upload.queued
    if queued is None:
        raise NotImportable(f"upload {upload.upload_id} was never sent to import")
    taken = claims.claim(
        upload.path,
        upload.data_dir,
        upload.merchant_id,
        origin="upload",
        source="upload",
        import_id=queued.import_id,
        send_now=upload.send_now,
    )
    if taken is None:
        taken = _take_over(upload, queued.import_id)
    if taken is not None and _sha256(taken.path) != upload.sha256:
        taken.give_back(upload.folder)
        raise ChangedSinceCheck(
            f"upload {upload.upload_id}: the staged file {upload.file_name!r} is not the one "
            f"checked (sha256 {upload.sha256}): it was not imported"
        )
    return taken


def _take_over(upload: Upload, import_id: str) -> claims.Claim | None:
    for old in claims.claimable(upload.data_dir, upload.merchant_id, origin="upload"):
        if old.import_id == import_id:
            taken = claims.take_over(old)
            if taken is not None:
                return taken
    return None


def holder(upload: Upload) -> claims.Claim | None:
    """The claim of the upload's import, held or released, if any."""
    queued = upload.queued
    if queued is None:
        return None
    found = claims.all_claims(upload.data_dir, upload.merchant_id)
    return next((c for c in found if c.import_id == queued.import_id), None)


def claimed(upload: Upload) -> bool:
    return holder(upload) is not None


def record_failure(upload: Upload, reason: str, *, final: bool) -> None:
    """The import task's failure, for the upload's state (``failed`` once ``final``)."""
    body = {"reason": reason[:500], "final": final, "at": _now().isoformat()}
    _write_json(upload.folder / FAILED, body)


def clear_failure(upload: Upload) -> None:
    (upload.folder / FAILED).unlink(missing_ok=True)


# -- the state --------------------------------------------------------------------------------


def state_of(
    upload: Upload, *, imported: str | None, claimed: bool, run_failed: bool
) -> UploadState:
    """The state from the facts: ``imported`` the status of the import's ``imports`` row
    (None: no row), ``claimed`` a claim of it exists, ``run_failed`` its DAG run failed."""
    queued = upload.queued
    if queued is None:
        return UploadState("checked")
    if imported is not None:
        return UploadState("done", import_id=queued.import_id, status=imported)
    failure = upload.failure
    if failure is not None and (failure.final or run_failed):
        return UploadState("failed", reason=failure.reason)
    if run_failed:
        return UploadState(
            "failed", reason=f"the DAG run {queued.dag_run_id} failed: see its log in Airflow"
        )
    return UploadState("importing" if claimed else "queued")


def imported_status(engine: Engine, upload: Upload) -> str | None:
    """The status of the upload's import in the warehouse; None until it is recorded."""
    from review_ingest.store import warehouse

    queued = upload.queued
    record = warehouse.import_record(engine, queued.import_id) if queued else None
    return record.status if record else None


def status(upload: Upload, engine: Engine, *, run_failed: bool = False) -> UploadState:
    """The upload's state, from its folder, the claims and the warehouse."""
    return state_of(
        upload,
        imported=imported_status(engine, upload),
        claimed=claimed(upload),
        run_failed=run_failed,
    )


def as_dict(upload: Upload, state: UploadState) -> dict[str, Any]:
    """The API's object (contract section 12)."""
    body: dict[str, Any] = {
        **_identity(upload),
        "state": state.state,
        "report": upload.report,
        "expires_at": _iso(upload.expires_at),
    }
    queued = upload.queued
    if queued is not None:
        body |= {"dag_id": queued.dag_id, "dag_run_id": queued.dag_run_id}
    if state.state == "done":
        body |= {"import_id": state.import_id, "status": state.status}
    if state.state == "failed":
        body["reason"] = state.reason
    return body


# -- records --------------------------------------------------------------------------------


def _identity(upload: Upload) -> dict[str, Any]:
    """What names an upload and its bytes, in the API's object and in its record alike."""
    return {
        "upload_id": upload.upload_id,
        "merchant_id": upload.merchant_id,
        "file_name": upload.file_name,
        "size_bytes": upload.size_bytes,
        "sha256": upload.sha256,
        "send_now": upload.send_now,
    }


def _record(upload: Upload) -> dict[str, Any]:
    return {
        **_identity(upload),
        "created_at": upload.created_at.isoformat(),
        "expires_at": upload.expires_at.isoformat(),
        "report": upload.report,
    }


def _upload(data_dir: Path, body: dict[str, Any]) -> Upload:
    return Upload(
        data_dir=data_dir,
        upload_id=body["upload_id"],
        merchant_id=folders.safe_name(body["merchant_id"]),
        file_name=folders.safe_name(body["file_name"]),
        size_bytes=int(body["size_bytes"]),
        sha256=body["sha256"],
        send_now=bool(body["send_now"]),
        created_at=dt.datetime.fromisoformat(body["created_at"]),
        expires_at=dt.datetime.fromisoformat(body["expires_at"]),
        report=body["report"],
    )


def _queued_record(queued: Queued) -> dict[str, Any]:
    return {
        "import_id": queued.import_id,
        "dag_id": queued.dag_id,
        "dag_run_id": queued.dag_run_id,
        "user": queued.user,
        "queued_at": queued.queued_at.isoformat(),
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _write_json(path: Path, body: dict[str, Any]) -> None:
    """Whole or not at all: written aside, then renamed over."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _link_json(path: Path, body: dict[str, Any]) -> bool:
    """Write ``path`` whole unless it exists; False when it does (another writer was first)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
