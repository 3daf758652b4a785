"""Importing from the browser (contract section 12): the "Import orders" page and the uploads
API, over ``backoffice.uploads``.

The page works without JavaScript: "Check file" posts the form (multipart, read as it arrives
by ``form_stream``) and is sent on to the upload's own page (``import?upload=<id>``), which shows
the check and "Import data"; that posts a small form and comes back to the same page, which
then follows the import (it reloads itself while the import runs) and links to its DAG run.

Routes that change data go through ``access.ingest_dag_runner()`` (the right to run the ingest
DAGs, and for the UI's cookie this server's ``Origin``), then ``csrf.require_token`` on the
form's token, before any byte of the file is kept. Errors of these routes answer
``{"detail": {"code", "message"}}`` (422: the app's own form, naming the field).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from review_ingest import settings
from review_ingest.backoffice import uploads
from review_ingest.core.merchants import read_merchants
from review_ingest.core.reading import file_too_large
from review_ingest.web import airflow_runs, csrf, form_stream

log = logging.getLogger(__name__)

#: After a refused upload, what is left of its body is read (and dropped) up to this much, so
#: that the browser shows the answer rather than a broken connection.
DRAIN_MAX_BYTES = 32 * 1024 * 1024
#: A form without a file ("Import data") is this small.
SMALL_FORM_BYTES = 8 * 1024
#: Errors listed on the page (the report's ``errors.csv`` route lists them all once imported).
LISTED_ERRORS = 20
_TRUE = ("true", "on", "1", "yes")
_FALSE = ("false", "off", "0", "no", "")

#: Routes that read (the app adds ``access.ingest_dag_reader``).
reading = APIRouter()
#: Routes that change data (the app adds ``access.ingest_dag_runner`` too).
changing = APIRouter()


# --- API -----------------------------------------------------------------------------------


@changing.post(
    "/api/uploads",
    status_code=201,
    tags=["review ingest"],
    responses={
        403: {"description": "may not run the ingest DAGs, or a cross-site form"},
        413: {"description": "over 5 MB: nothing kept"},
        422: {"description": "no file, an empty file name, an unknown merchant_id"},
        503: {"description": "the warehouse cannot be reached: nothing kept"},
    },
)
async def create_upload(request: Request) -> JSONResponse:
    """Check a file as `review-ingest import` would (warehouse included, loading nothing) and
    keep its bytes for "Import data". Multipart form: `merchant_id`, `file`, optional
    `send_now` (`true`/`false`); a form sent with the UI's cookie also `csrf_token` (or the
    header `X-CSRF-Token`)."""
    upload = await _receive(request)
    return JSONResponse(await run_in_threadpool(_shown, request, upload), status_code=201)


@reading.get(
    "/api/uploads/{upload_id}",
    tags=["review ingest"],
    responses={404: {"description": "unknown or expired"}},
)
def get_upload(request: Request, upload_id: str) -> dict[str, Any]:
    """The upload: its check's report and its state (`checked`, `queued`, `importing`, `done`
    with `import_id` and `status`, `failed` with `reason`)."""
    return _shown(request, _live_upload(request, upload_id))


@changing.post(
    "/api/uploads/{upload_id}/import",
    status_code=202,
    tags=["review ingest"],
    responses={
        404: {"description": "unknown upload"},
        409: {"description": "rejected by the check, expired, or sent to import before"},
        503: {"description": "Airflow cannot start the run now: nothing changed"},
    },
)
async def import_upload(request: Request, upload_id: str) -> JSONResponse:
    """ "Import data": starts a run of `orders_upload_import` that imports exactly the checked
    bytes; 202 `{"upload_id", "state": "queued", "dag_id", "dag_run_id"}`."""
    await _small_form_token(request)
    queued = await _queue(request, upload_id)
    body = {
        "upload_id": upload_id,
        "state": "queued",
        "dag_id": queued.dag_id,
        "dag_run_id": queued.dag_run_id,
    }
    return JSONResponse(body, status_code=202)


# --- the page ------------------------------------------------------------------------------


@reading.get("/import", response_class=HTMLResponse, include_in_schema=False)
def import_page(
    request: Request,
    upload: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    if not upload:
        return _page(request)
    try:
        found = _live_upload(request, upload)
    except HTTPException as exc:
        return _page(request, error=_message(exc), status_code=exc.status_code)
    return _page(request, found)


@changing.post("/import", response_class=HTMLResponse, include_in_schema=False)
async def check_from_page(request: Request) -> Response:
    """ "Check file" without JavaScript: on to the upload's page, or this page with the error."""
    try:
        upload = await _receive(request)
    except RequestValidationError as exc:
        return _page(request, error=_validation_message(exc), status_code=422)
    except HTTPException as exc:
        if exc.status_code in (401, 403):
            raise
        return _page(request, error=_message(exc), status_code=exc.status_code)
    return RedirectResponse(f"import?upload={quote(upload.upload_id)}", status_code=303)


@changing.post("/import/queue", response_class=HTMLResponse, include_in_schema=False)
async def import_from_page(request: Request) -> Response:
    """ "Import data" without JavaScript: back to the upload's page, which follows the run."""
    fields = await _small_form_token(request)
    upload_id = fields.get("upload", "")
    try:
        await _queue(request, upload_id)
    except HTTPException as exc:
        if exc.status_code in (401, 403, 404):
            raise
        upload = _known_upload(request, upload_id)
        return await run_in_threadpool(_page, request, upload, _message(exc), exc.status_code)
    return RedirectResponse(f"../import?upload={quote(upload_id)}", status_code=303)


def _page(
    request: Request,
    upload: uploads.Upload | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    context = page_context(
        _merchant_ids(),
        upload,
        _state(request, upload) if upload is not None else None,
        error,
    )
    templates = request.app.state.templates
    return templates.TemplateResponse(request, "upload.html", context, status_code=status_code)


def page_context(
    merchant_ids: list[str],
    upload: uploads.Upload | None,
    state: uploads.UploadState | None,
    error: str | None,
) -> dict[str, Any]:
    """What the page shows: the form, and an upload's check, state and links."""
    context: dict[str, Any] = {
        "root": "",
        "title": "Import orders",
        "merchant_ids": merchant_ids,
        "error": error,
        "upload": upload,
        "state": state,
    }
    if upload is None or state is None:
        return context
    report = upload.report
    queued = upload.queued
    context |= {
        "report": report,
        "rejection": report.get("rejection"),
        "errors": (report.get("errors") or [])[:LISTED_ERRORS],
        "errors_total": report.get("errors_total", len(report.get("errors") or [])),
        "existing_proofs": len(report.get("existing_proofs") or []),
        "importable": state.state == "checked" and upload.importable and not upload.is_expired(),
        "expired": upload.is_expired(),
        "run_href": _run_href(queued) if queued else None,
        "refresh": state.state in ("queued", "importing"),
    }
    return context


def _run_href(queued: uploads.Queued) -> str:
    """The run in Airflow's grid, relative to this page (``/review-ingest/import``)."""
    return f"../dags/{quote(queued.dag_id)}/runs/{quote(queued.dag_run_id)}"


def import_run_href(import_id: str, source: str) -> str | None:
    """The run of ``orders_upload_import`` that recorded ``import_id``, relative to the
    import's page (``/review-ingest/imports/<import_id>``); None for an import made otherwise."""
    if source != "upload":
        return None
    run_id = uploads.run_id_of(import_id)
    if airflow_runs.run_state(uploads.IMPORT_DAG_ID, run_id) is None:
        return None
    return f"../../dags/{quote(uploads.IMPORT_DAG_ID)}/runs/{quote(run_id)}"


# --- what the routes share -----------------------------------------------------------------


async def _receive(request: Request) -> uploads.Upload:
    """The form read as it arrives, its file checked and kept; HTTPException (403, 413, 503)
    or RequestValidationError (422) otherwise, nothing kept."""
    ui = request.app.state.ui
    upload_id = uploads.new_upload_id()
    incoming = uploads.incoming_path(ui.data_dir, upload_id)
    incoming.parent.mkdir(parents=True, exist_ok=True)
    body = request.stream()
    try:
        with open(incoming, "xb") as sink:
            _refuse_declared_size(request)
            form = await form_stream.read_upload_form(
                request.headers.get("content-type"),
                body,
                sink,
                max_file_bytes=settings.MAX_FILE_BYTES,
                before_file=lambda fields: csrf.require_token(request, fields.get(csrf.FIELD)),
            )
        csrf.require_token(request, form.fields.get(csrf.FIELD))
        merchant_id, file_name, send_now = _fields(form)
        return await run_in_threadpool(
            uploads.create,
            ui.data_dir,
            read_merchants(settings.merchants_file()).merchants,
            ui.warehouse_url,
            upload_id=upload_id,
            merchant_id=merchant_id,
            file_name=file_name,
            send_now=send_now,
            received=incoming,
        )
    except form_stream.TooLarge:
        await _drain(body)
        rejection = file_too_large(settings.MAX_FILE_BYTES, at_least=True).rejection
        raise _error(413, rejection.code, rejection.message) from None
    except HTTPException:  # a form token refused before the file was read
        await _drain(body)
        raise
    except (form_stream.BadForm, uploads.InvalidUpload) as exc:
        raise _invalid(exc.field, exc.message) from None
    except uploads.WarehouseUnavailable as exc:
        raise _error(503, "warehouse_unavailable", str(exc)) from None
    finally:
        incoming.unlink(missing_ok=True)


def _refuse_declared_size(request: Request) -> None:
    """A body announced bigger than a file and its form can be: refused before it is read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.MAX_FILE_BYTES + form_stream.MARGIN:
        raise form_stream.TooLarge(f"the form is {int(declared):,} bytes")


async def _drain(body: Any) -> None:
    """Read what is left of a refused body, keeping none of it, up to ``DRAIN_MAX_BYTES``."""
    from starlette.requests import ClientDisconnect

    drained = 0
    try:
        async for chunk in body:
            drained += len(chunk)
            if drained > DRAIN_MAX_BYTES:
                return
    except ClientDisconnect:
        return


def _fields(form: form_stream.UploadForm) -> tuple[str, str, bool]:
    """``merchant_id``, the file's name and ``send_now``, or a 422 naming the field."""
    merchant_id = form.fields.get("merchant_id", "").strip()
    if not merchant_id:
        raise _invalid("merchant_id", "choose a merchant")
    if form.file_name is None:
        raise _invalid("file", "choose a CSV file to check")
    if not form.file_name.strip():
        raise _invalid("file", "the file has no name")
    send_now = form.fields.get("send_now", "").strip().lower()
    if send_now not in _TRUE + _FALSE:
        raise _invalid("send_now", "must be true or false")
    return merchant_id, form.file_name, send_now in _TRUE


async def _small_form_token(request: Request) -> dict[str, str]:
    """The fields of a small urlencoded form (none for an API call), its CSRF token checked
    unless the request needs none or sent it as a header."""
    if csrf.is_checked(request) and not _is_form(request):
        return {}
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > SMALL_FORM_BYTES:
            raise _error(413, "form_too_large", f"this form is over {SMALL_FORM_BYTES} bytes")
    fields = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", errors="replace")).items()}
    csrf.require_token(request, fields.get(csrf.FIELD))
    return fields


def _is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.startswith("application/x-www-form-urlencoded")


async def _queue(request: Request, upload_id: str) -> uploads.Queued:
    """ "Import data": queued once, then the run started; 404, 409 (nothing changed) or 503
    (the queue taken back)."""
    upload = _known_upload(request, upload_id)
    user = getattr(request.state, "review_user", None) or "unknown"
    try:
        queued = uploads.queue(upload, user=user)
    except uploads.AlreadyQueued as exc:
        raise _error(
            409,
            "already_queued",
            str(exc),
            dag_id=exc.queued.dag_id,
            dag_run_id=exc.queued.dag_run_id,
        ) from None
    except uploads.NotImportable as exc:
        raise _error(409, "not_importable", str(exc)) from None
    conf = {"upload_id": upload.upload_id}
    try:
        await run_in_threadpool(airflow_runs.trigger, queued.dag_id, queued.dag_run_id, conf, user)
    except Exception as exc:
        uploads.unqueue(upload)
        log.warning("upload %s: its run could not start: %s", upload.upload_id, exc)
        message = (
            str(exc)
            if isinstance(exc, airflow_runs.RunNotStarted)
            else (f"Airflow could not start the run ({type(exc).__name__}): try again")
        )
        raise _error(503, "run_not_started", message) from None
    return queued


def _known_upload(request: Request, upload_id: str) -> uploads.Upload:
    try:
        return uploads.find(request.app.state.ui.data_dir, upload_id)
    except uploads.UnknownUpload as exc:
        raise _error(404, "unknown_upload", str(exc)) from None


def _live_upload(request: Request, upload_id: str) -> uploads.Upload:
    """The upload, 404 when unknown or expired (checked, never queued, past its time)."""
    upload = _known_upload(request, upload_id)
    if upload.is_expired():
        raise _error(404, "unknown_upload", f"upload {upload_id} expired: check the file again")
    return upload


def _state(request: Request, upload: uploads.Upload) -> uploads.UploadState:
    """The upload's state; while it waits or runs, Airflow is asked whether its run failed
    (a task killed before it could say so)."""
    ui = request.app.state.ui
    state = uploads.status(upload, ui.engine)
    queued = upload.queued
    if state.state in ("queued", "importing") and queued is not None:
        if airflow_runs.run_state(queued.dag_id, queued.dag_run_id) == "failed":
            state = uploads.status(upload, ui.engine, run_failed=True)
    return state


def _shown(request: Request, upload: uploads.Upload) -> dict[str, Any]:
    return uploads.as_dict(upload, _state(request, upload))


def _merchant_ids() -> list[str]:
    return sorted(read_merchants(settings.merchants_file()).merchants)


def _error(status_code: int, code: str, message: str, **more: str) -> HTTPException:
    return HTTPException(status_code, {"code": code, "message": message, **more})


def _invalid(field: str, message: str) -> RequestValidationError:
    """A 422 naming the field, as the app answers a bad parameter."""
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


def _message(exc: HTTPException) -> str:
    detail = exc.detail
    return str(detail.get("message", detail)) if isinstance(detail, dict) else str(detail)


def _validation_message(exc: RequestValidationError) -> str:
    return "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors())
