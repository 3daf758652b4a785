"""The review UI's FastAPI app (contract section 10); ``plugins/review_ingest_ui.py`` mounts it
on Airflow's API server at ``/review-ingest``.

Access goes through Airflow's own auth manager (``access``): every route but ``/static`` and
the OpenAPI schema needs an Airflow user who may read the three ingest DAGs (401 without a user,
403 without that right). A page asked for without a user redirects to Airflow's login, which
brings the user back.

Query parameters are typed, so a bad value answers 422 naming the parameter; the 422 body never
echoes the value (it may be an e-mail). An empty parameter (an HTML form sends every field)
means no filter.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BeforeValidator, StringConstraints
from sqlalchemy import Engine, RowMapping
from starlette.exceptions import HTTPException as StarletteHTTPException

from review_ingest import settings
from review_ingest.store import cancellations, warehouse
from review_ingest.web import (
    access,
    csrf,
    csv_export,
    email_filter,
    files,
    pages,
    queries,
    uploads,
    views,
)

WEB_DIR = Path(__file__).parent
#: Import ids look like ``20261127T101500Z-1a2b3c4d``; anything else is unknown (404).
IMPORT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*$"


def _csrf_context(request: Request) -> dict[str, str]:
    """Every page's ``csrf_token``: its forms that change data send it back (``csrf``)."""
    user = getattr(request.state, "review_user", None)
    if user is None:
        return {}
    return {"csrf_token": csrf.make_token(user, request.app.state.ui.secret)}


templates = Jinja2Templates(directory=WEB_DIR / "templates", context_processors=[_csrf_context])
templates.env.globals.update(quote=quote, utc_text=views.utc_text)


class Ui:
    """What the routes share, found on first use: the warehouse engine and the secret that
    seals e-mail filters. Changing the ``review_warehouse`` connection takes an API server
    restart, as plugin code does."""

    def __init__(self, warehouse_url: Callable[[], str], secret: Callable[[], str]) -> None:
        self._warehouse_url = warehouse_url
        self._secret = secret

    @functools.cached_property
    def warehouse_url(self) -> str:
        return self._warehouse_url()

    @functools.cached_property
    def engine(self) -> Engine:
        engine = warehouse.engine_for(self.warehouse_url)
        warehouse.migrate(engine)  # an empty warehouse works, and gets the UI's indexes
        return engine

    @functools.cached_property
    def secret(self) -> str:
        return self._secret()

    @property
    def data_dir(self) -> Path:
        return settings.data_dir()


def _ui(request: Request) -> Ui:
    return request.app.state.ui


UiDep = Annotated[Ui, Depends(_ui)]


# --- query parameters ----------------------------------------------------------------------


def _blank_is_none(value: object) -> object:
    """Trimmed; an empty field of an HTML form means no filter."""
    if isinstance(value, str):
        return value.strip() or None
    return value


Blank = BeforeValidator(_blank_is_none)
MerchantId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
OrderRef = Annotated[str, StringConstraints(max_length=64, pattern=NO_CONTROL_CHARACTERS)]
Email = Annotated[str, StringConstraints(max_length=254, pattern=NO_CONTROL_CHARACTERS)]
EmailToken = Annotated[str, StringConstraints(max_length=1000, pattern=r"^[A-Za-z0-9_=-]+$")]
ImportIdParam = Annotated[str, StringConstraints(pattern=f"^{IMPORT_ID.pattern}$")]

MerchantParam = Annotated[MerchantId | None, Blank, Query(description="a merchant_id")]


def import_filters(
    merchant_id: MerchantParam = None,
    status: Annotated[queries.ImportStatus | None, Blank, Query()] = None,
    source: Annotated[queries.ImportSource | None, Blank, Query()] = None,
    since: Annotated[
        dt.date | None, Blank, Query(description="first UTC day of processed_at (inclusive)")
    ] = None,
    until: Annotated[
        dt.date | None, Blank, Query(description="last UTC day of processed_at (inclusive)")
    ] = None,
) -> queries.ImportFilters:
    return queries.ImportFilters(merchant_id, status, source, since, until)


def request_filters(
    ui: UiDep,
    merchant_id: MerchantParam = None,
    status: Annotated[
        queries.RequestStatus | None,
        Blank,
        Query(
            description="`scheduled`: not yet sent, scheduled_at in the future; `due`: not yet "
            "sent, scheduled_at past; `sent`, `delivered`, `opened`, `clicked`, `reviewed`: the "
            "furthest step the mailer reported; `not_delivered`: bounced or failed; "
            "`withdrawn`: the customer opted out; `cancelled`: its import or order was cancelled"
        ),
    ] = None,
    request_type: Annotated[queries.RequestType | None, Blank, Query()] = None,
    order_ref: Annotated[OrderRef | None, Blank, Query()] = None,
    email: Annotated[
        Email | None,
        Blank,
        Query(description="exact address, compared trimmed and case-insensitively"),
    ] = None,
    email_token: Annotated[
        EmailToken | None,
        Blank,
        Query(description="the `email` filter sealed by the pages' links (valid 24 h)"),
    ] = None,
    scheduled_from: Annotated[
        dt.date | None, Blank, Query(description="first UTC day of scheduled_at (inclusive)")
    ] = None,
    scheduled_to: Annotated[
        dt.date | None, Blank, Query(description="last UTC day of scheduled_at (inclusive)")
    ] = None,
    import_id: Annotated[
        ImportIdParam | None, Blank, Query(description="the requests of one import")
    ] = None,
) -> queries.RequestFilters:
    if email is None and email_token is not None:
        email = email_filter.unseal(email_token, ui.secret)
        if email is None:
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", "email_token"),
                        "msg": "invalid or expired: search by e-mail again",
                        "type": "value_error",
                    }
                ]
            )
    return queries.RequestFilters(
        merchant_id, status, request_type, order_ref, email, scheduled_from, scheduled_to, import_id
    )


def paging(
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = queries.DEFAULT_LIMIT,
    offset: Annotated[
        int,
        Query(
            ge=0,
            le=queries.MAX_OFFSET,
            description=f"rows to skip, at most {queries.MAX_OFFSET:,}: deeper, narrow the "
            "filters (the CSV export gives every row)",
        ),
    ] = 0,
) -> queries.Paging:
    return queries.Paging(limit, offset)


ImportFiltersDep = Annotated[queries.ImportFilters, Depends(import_filters)]
RequestFiltersDep = Annotated[queries.RequestFilters, Depends(request_filters)]
PagingDep = Annotated[queries.Paging, Depends(paging)]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _import_row(ui: Ui, import_id: str) -> RowMapping:
    """The ``imports`` row of ``import_id``; 404 when there is none (or the id is malformed)."""
    row = queries.get_import(ui.engine, import_id) if IMPORT_ID.fullmatch(import_id) else None
    if row is None:
        raise HTTPException(404, "unknown import")
    return row


def _report_file(ui: Ui, row: RowMapping, name: str) -> Path:
    path = files.report_file(ui.data_dir, row["merchant_id"], row["import_id"], name)
    if path is None:
        raise HTTPException(404, f"no {name} for this import")
    return path


# --- API -----------------------------------------------------------------------------------

api = APIRouter(prefix="/api", tags=["review ingest"])


@api.get("/imports", response_model=views.ImportList)
def list_imports(ui: UiDep, filters: ImportFiltersDep, page: PagingDep) -> views.ImportList:
    """Files seen, newest first: every `imports` column (contract section 4)."""
    return views.import_list(queries.list_imports(ui.engine, filters, page))


@api.get(
    "/imports/{import_id}",
    response_model=views.Report,
    responses={404: {"description": "unknown import, or no report"}},
)
def import_report(ui: UiDep, import_id: str) -> Response:
    """The file's `report.json` (contract section 5), as the pipeline wrote it."""
    row = _import_row(ui, import_id)
    return FileResponse(_report_file(ui, row, "report.json"), media_type="application/json")


@api.get(
    "/imports/{import_id}/errors.csv",
    response_class=FileResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "line;column;code;message"},
        404: {"description": "unknown import, or no errors.csv"},
    },
)
def import_errors_csv(ui: UiDep, import_id: str) -> Response:
    """The file's `errors.csv`: every row error, `line;column;code;message`."""
    row = _import_row(ui, import_id)
    return FileResponse(
        _report_file(ui, row, "errors.csv"),
        media_type="text/csv; charset=utf-8",
        filename=f"{row['import_id']}.errors.csv",
    )


@api.get("/requests", response_model=views.RequestList)
def list_requests(ui: UiDep, filters: RequestFiltersDep, page: PagingDep) -> views.RequestList:
    """Review requests, latest `scheduled_at` first; e-mails masked, never a name."""
    now = _now()
    return views.request_list(queries.list_requests(ui.engine, filters, page, now), now)


@api.get("/requests/funnel", response_model=views.Funnel)
def requests_funnel(ui: UiDep, filters: RequestFiltersDep) -> views.Funnel:
    """What happened to the matching requests (contract section 13): scheduled or due, sent,
    delivered, opened, reviewed, each with the requests that reached it or a later step and
    its rates; the not delivered and their most frequent bounce reasons. Counts are exact."""
    return views.funnel(queries.status_counts(ui.engine, filters, _now()))


@api.get(
    "/requests.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "; separated, header line"}},
)
def export_requests(ui: UiDep, filters: RequestFiltersDep) -> StreamingResponse:
    """Every matching request as CSV (the columns of `/api/requests`), streamed."""
    now = _now()
    lines = csv_export.request_lines(queries.iter_requests(ui.engine, filters, now), now)
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="review-requests.csv"'},
    )


# --- pages ---------------------------------------------------------------------------------

html = APIRouter(default_response_class=HTMLResponse, include_in_schema=False)


@html.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("overview", status_code=303)


@html.get("/overview")
def overview_page(request: Request, ui: UiDep, merchant_id: MerchantParam = None) -> Response:
    context = pages.overview_context(ui.engine, merchant_id, _now().date())
    return templates.TemplateResponse(request, "overview.html", context)


@html.get("/imports")
def imports_page(
    request: Request, ui: UiDep, filters: ImportFiltersDep, page: PagingDep
) -> Response:
    context = pages.imports_context(ui.engine, filters, page)
    return templates.TemplateResponse(request, "imports.html", context)


@html.get("/imports/{import_id}")
def import_page(request: Request, ui: UiDep, import_id: str) -> Response:
    return _import_page(request, ui, _import_row(ui, import_id))


def _import_page(
    request: Request, ui: Ui, row: RowMapping, cancel_error: str | None = None
) -> Response:
    """An import's page; 422 with ``cancel_error`` when its cancel form was refused."""
    path = files.report_file(ui.data_dir, row["merchant_id"], row["import_id"], "report.json")
    report = json.loads(path.read_text(encoding="utf-8")) if path else None
    done = queries.list_cancellations(ui.engine, row["import_id"])
    funnel = None
    if row["status"] == "loaded":
        of_import = queries.RequestFilters(import_id=row["import_id"])
        funnel = views.funnel(queries.status_counts(ui.engine, of_import, _now()))
    context = pages.import_context(row, report, done, funnel) | {
        "cancel_error": cancel_error,
        "run_href": uploads.import_run_href(row["import_id"], row["source"]),
    }
    context |= _data_docs_gone(ui, report, context.get("data_docs_href"))
    status = 200 if cancel_error is None else 422
    return templates.TemplateResponse(request, "import.html", context, status_code=status)


def _data_docs_gone(ui: Ui, report: dict | None, href: str | None) -> dict[str, str | None]:
    """No link to a Data Docs page that is not on disk: what to say instead."""
    page = ((report or {}).get("validation") or {}).get("data_docs")
    if not href or files.data_docs_file(ui.data_dir, page) is not None:
        return {}
    note = files.deleted_docs_note(ui.data_dir, page, _now())
    return {"data_docs_href": None, "data_docs_gone": note or "Data Docs page not available"}


@html.get("/requests")
def requests_page(
    request: Request, ui: UiDep, filters: RequestFiltersDep, page: PagingDep
) -> Response:
    context = pages.requests_context(ui.engine, filters, page, _now(), ui.secret)
    return templates.TemplateResponse(request, "requests.html", context)


@html.get("/data-docs/{path:path}")
def data_docs(ui: UiDep, path: str) -> Response:
    """A file of ``<data>/data_docs/``; never one outside it."""
    found = files.data_docs_file(ui.data_dir, path)
    if found is None:
        note = files.deleted_docs_note(ui.data_dir, path, _now())
        if note:  # a link to a page that retention deleted (a report's, a bookmark)
            return HTMLResponse(f"<!doctype html><title>Gone</title><p>{note}</p>", 410)
        raise HTTPException(404, "no such Data Docs file")
    return FileResponse(found)


# --- cancelling an import (contract section 12) --------------------------------------------

#: ``create_app`` adds to these routes the right to run the ingest DAGs and the check that a
#: cookie-authenticated request comes from this server (``access.ingest_dag_runner``).
cancelling = APIRouter()


@cancelling.post(
    "/api/imports/{import_id}/cancel",
    response_model=views.Cancellation,
    tags=["review ingest"],
    responses={
        403: {"description": "may not run the ingest DAGs, or a form from elsewhere"},
        404: {"description": "unknown import"},
        422: {"description": "a reason not allowed, or a bad body (the field is named)"},
    },
)
def cancel_import(
    request: Request, ui: UiDep, import_id: str, body: views.CancelRequest
) -> views.Cancellation:
    """Cancel the import's requests not yet due, or only those of `order_refs` (then `reason`
    is one of `refunded`, `order_cancelled`, `test_order`, `duplicate_order`). Requests already
    due stay. Cancelling again cancels nothing more."""
    csrf.require_token(request, None)
    row = _import_row(ui, import_id)
    try:
        done = _cancel(request, ui, row, body.reason, body.order_refs, dry_run=body.dry_run)
    except cancellations.CancelRefused as exc:
        loc = ("body", exc.field)
        error = {"loc": loc, "msg": str(exc), "type": "value_error"}
        raise RequestValidationError([error]) from None
    return views.Cancellation.model_validate(done.as_dict())


@cancelling.post("/imports/{import_id}/cancel", include_in_schema=False)
def cancel_import_form(
    request: Request,
    ui: UiDep,
    import_id: str,
    reason: Annotated[str, Form()] = "",
    order_refs: Annotated[str, Form(description="one per line")] = "",
    csrf_token: Annotated[str | None, Form(alias=csrf.FIELD)] = None,
) -> Response:
    """The import page's form: back to the page (303), or the page with the refusal (422)."""
    csrf.require_token(request, csrf_token)
    row = _import_row(ui, import_id)
    refs = [line for line in order_refs.splitlines() if line.strip()] or None
    try:
        _cancel(request, ui, row, reason, refs, dry_run=False)
    except cancellations.CancelRefused as exc:
        return _import_page(request, ui, row, cancel_error=str(exc))
    return RedirectResponse(f"../{quote(row['import_id'])}", status_code=303)


def _cancel(
    request: Request,
    ui: Ui,
    row: RowMapping,
    reason: str,
    order_refs: list[str] | None,
    *,
    dry_run: bool,
) -> cancellations.CancelResult:
    """Cancel as the request's Airflow user (noted by ``access.ingest_dag_reader``)."""
    try:
        return cancellations.cancel(
            ui.engine,
            row["import_id"],
            reason,
            order_refs,
            who=request.state.review_user,
            now=_now(),
            dry_run=dry_run,
        )
    except cancellations.UnknownImport:
        raise HTTPException(404, "unknown import") from None


# --- errors --------------------------------------------------------------------------------


async def _invalid_input(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad parameter, without the value given (it may be an e-mail)."""
    detail = [
        {
            "loc": list(error["loc"]),
            "msg": f"{error['loc'][-1]}: {error['msg']}",
            "type": error["type"],
        }
        for error in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """A page asked for without a user goes to Airflow's login instead of a 401."""
    if exc.status_code == 401 and _is_page(request):
        return RedirectResponse(access.login_url(_next_url(request)), status_code=303)
    return await http_exception_handler(request, exc)


def _is_page(request: Request) -> bool:
    route_path = getattr(request.scope.get("route"), "path", "")
    return not route_path.startswith("/api/")


def _next_url(request: Request) -> str:
    """This page's path and query, for the login to bring the user back."""
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


# --- the app -------------------------------------------------------------------------------


def create_app() -> FastAPI:
    """The app, wired to Airflow's auth manager (``access``), the ``review_warehouse``
    connection (else ``settings.warehouse_url()``) and Airflow's ``[api] secret_key``."""
    from review_ingest.store.connections import warehouse_url_in_airflow

    app = FastAPI(
        title="Review ingest",
        description=_API_DESCRIPTION,
        version="1",
        docs_url=None,  # Swagger UI and ReDoc load their scripts from a CDN
        redoc_url=None,
    )
    app.state.ui = Ui(warehouse_url_in_airflow, access.secret_key)
    app.state.templates = templates
    readers_only = [Depends(access.ingest_dag_reader())]
    runners = [*readers_only, Depends(access.ingest_dag_runner())]
    app.include_router(api, dependencies=readers_only)
    app.include_router(html, dependencies=readers_only)
    app.include_router(uploads.reading, dependencies=readers_only)
    app.include_router(uploads.changing, dependencies=runners)
    app.include_router(cancelling, dependencies=runners)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    app.add_exception_handler(RequestValidationError, _invalid_input)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    return app


_API_DESCRIPTION = f"""\
The imports, their reports and the review requests (contract section 10).

Every route needs an Airflow user (`Authorization: Bearer <token>` from Airflow's
`POST /auth/token`, or the Airflow UI's session cookie) who may read the DAGs
{", ".join(f"`{d}`" for d in access.INGEST_DAG_IDS)}: 401 without a user, 403 without that access.
Routes that change data (`POST`: uploads and their import, section 12) also need the right to
create runs of {", ".join(f"`{d}`" for d in access.RUN_DAG_IDS)}; sent with the UI's cookie, they
need this server's `Origin` and the page's CSRF token (form field `csrf_token` or header
`X-CSRF-Token`), else 403. A Bearer token needs neither.

Lists answer `{{"total", "total_is_lower_bound", "has_more", "items"}}`. `limit` is 1 to
{queries.MAX_LIMIT} (default {queries.DEFAULT_LIMIT}), `offset` 0 to {queries.MAX_OFFSET:,}.
`total` is exact up to {queries.TOTAL_CAP:,} matching rows; above, counting stops,
`total_is_lower_bound` is true and there are at least `total` rows. E-mails are masked
(`a***@example.com`); first and last names never appear.
"""
