"""Importing from the browser (contract section 12) on a real ``airflow api-server``: the uploads
API, the "Import orders" page, access, CSRF and bad input.

The server comes from ``tests/fixtures/api_server.py`` (users ``admin``, ``viewer`` who may read
but not trigger, ``outsider`` who may read no DAG). It runs no scheduler: "Import data" queues a
real DAG run, seen through Airflow's own API, that nothing runs; the import itself is
tests/integration/test_upload_import_dag.py. Its metadata database gets the DAG
``orders_upload_import``, serialised as a DAG processor would.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from review_ingest.core.reading import file_too_large
from review_ingest.settings import MAX_FILE_BYTES
from tests.kit.api_server import ADMIN, OUTSIDER, UI_PREFIX, VIEWER, UiServer
from tests.kit.factories import sample_for_yesterday
from tests.kit.paths import REPO

pytestmark = pytest.mark.ui

MERCHANT = "shop-web"
UPLOADS = UI_PREFIX + "/api/uploads"
EVIL = "http://evil.example"


#: What a DAG processor would do for this one file: the other DAGs stay unknown to the shared
#: server, as its other tests expect.
SERIALIZE_ONE_DAG = """
import sys
from airflow.dag_processing.bundles.manager import DagBundlesManager
from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
from airflow.utils.session import create_session

manager = DagBundlesManager()
with create_session() as session:
    manager.sync_bundles_to_db(session=session)
bundle = manager.get_bundle("dags-folder")
bundle.initialize()
bag = BundleDagBag(sys.argv[1], bundle_path=bundle.path, bundle_name=bundle.name)
assert bag.dags and not bag.import_errors, bag.import_errors
with create_session() as session:
    sync_bag_to_db(bag, bundle.name, bundle_version=None, session=session)
"""


@pytest.fixture(scope="module")
def server(ui_server: UiServer) -> UiServer:
    """The fixture's server, its metadata database holding ``orders_upload_import``."""
    done = subprocess.run(
        [sys.executable, "-c", SERIALIZE_ONE_DAG, str(REPO / "dags" / "orders_upload_import.py")],
        env=ui_server.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return ui_server


def orders(prefix: str | None = None) -> bytes:
    """The website sample dated yesterday, its orders renamed so that no earlier file has them."""
    prefix = prefix or f"U{uuid.uuid4().hex[:6]}"
    return re.sub(r"(?m)^WEB-", f"{prefix}-", sample_for_yesterday("website")).encode()


def with_field(content: bytes, *, row: int, index: int, value: str) -> bytes:
    """``content`` with field ``index`` of line ``row`` (1 is the header) replaced."""
    lines = content.decode().split("\n")
    fields = lines[row - 1].split(";")
    fields[index] = value
    lines[row - 1] = ";".join(fields)
    return "\n".join(lines).encode()


def bearer(server: UiServer, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token(user)}"}


def post_upload(
    server: UiServer,
    content: bytes | None,
    *,
    user: str | None = ADMIN,
    name: str = "orders.csv",
    merchant_id: str | None = MERCHANT,
    **kwargs: Any,
) -> httpx.Response:
    data = {} if merchant_id is None else {"merchant_id": merchant_id}
    data |= kwargs.pop("data", {})
    files = None if content is None else {"file": (name, content, "text/csv")}
    headers = kwargs.pop("headers", {}) | (bearer(server, user) if user else {})
    return httpx.post(
        server.url(UPLOADS), data=data, files=files, headers=headers, timeout=120, **kwargs
    )


def staged(server: UiServer) -> set[str]:
    """Every path under the server's staging folder."""
    root = server.data_dir / "staging"
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def checked(server: UiServer, content: bytes | None = None, **kwargs: Any) -> dict[str, Any]:
    response = post_upload(server, orders() if content is None else content, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()


def upload_state(server: UiServer, upload_id: str) -> dict[str, Any]:
    """What "Import data" left in the upload's folder (``queued.json``)."""
    folder = server.data_dir / "staging" / MERCHANT / upload_id
    return json.loads((folder / "queued.json").read_text())


def start_import(server: UiServer, upload_id: str, user: str = ADMIN) -> httpx.Response:
    return httpx.post(
        server.url(f"{UPLOADS}/{upload_id}/import"), headers=bearer(server, user), timeout=60
    )


# -- the check ---------------------------------------------------------------------------------


def test_a_checked_file_answers_201_with_the_pipelines_report(server: UiServer) -> None:
    content = orders()
    before = staged(server)

    body = checked(server, content, data={"send_now": "true"})

    assert set(body) >= {
        "upload_id",
        "merchant_id",
        "file_name",
        "size_bytes",
        "sha256",
        "state",
        "report",
        "expires_at",
    }
    assert (body["merchant_id"], body["file_name"], body["state"]) == (
        MERCHANT,
        "orders.csv",
        "checked",
    )
    assert body["size_bytes"] == len(content) and body["send_now"] is True
    report = body["report"]
    assert report["status"] == "accepted" and report["source"] == "upload"
    assert report["sha256"] == body["sha256"]
    assert (report["total_rows"], report["valid_rows"], report["error_rows"]) == (5, 5, 0)
    assert report["requests"] == {"brand": 5, "product": 0, "due_now": 5}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["expires_at"])
    folder = server.data_dir / "staging" / MERCHANT / body["upload_id"]
    assert (folder / "orders.csv").read_bytes() == content
    assert {p.name for p in folder.iterdir()} == {"orders.csv", "upload.json"}
    assert staged(server) - before - {MERCHANT, ".incoming"} == {
        f"{MERCHANT}/{body['upload_id']}",
        f"{MERCHANT}/{body['upload_id']}/orders.csv",
        f"{MERCHANT}/{body['upload_id']}/upload.json",
    }

    again = httpx.get(server.url(f"{UPLOADS}/{body['upload_id']}"), headers=bearer(server, VIEWER))
    assert again.status_code == 200 and again.json() == body


def test_the_check_sees_orders_already_in_the_warehouse(server: UiServer) -> None:
    """The fixture loaded the website sample for shop-web: its orders are existing proofs."""
    body = checked(server, orders("WEB"), name="again.csv")
    assert body["report"]["status"] == "already_imported"
    renamed = sample_for_yesterday("website").replace("WEB-100231", "NEW-1").encode()
    body = checked(server, renamed)
    assert body["report"]["rejection"]["code"] == "existing_proofs"
    assert len(body["report"]["existing_proofs"]) == 4
    assert start_import(server, body["upload_id"]).status_code == 409


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "empty_file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\xff\xd8", "not_utf8"),
        (
            "order_ref;email;lastname;firstname;order_date\nA-1;é@x.fr;Noël;Zoé;01-12-2026\n".encode(
                "latin-1"
            ),
            "not_utf8",
        ),
    ],
    ids=["empty", "binary", "latin-1"],
)
def test_a_file_the_check_rejects_is_201_with_its_rejection(
    server: UiServer, content: bytes, code: str
) -> None:
    body = checked(server, content)
    assert body["report"]["status"] == "rejected"
    assert body["report"]["rejection"]["code"] == code
    if code == "not_utf8":
        assert "UTF-8" in body["report"]["rejection"]["message"]
        assert "line" in body["report"]["rejection"]["message"]
    answer = start_import(server, body["upload_id"])
    assert answer.status_code == 409 and "rejected" in answer.json()["detail"]["message"]


def test_over_5_mb_is_413_and_nothing_is_kept(server: UiServer) -> None:
    before = staged(server)
    response = post_upload(server, b"x" * (MAX_FILE_BYTES + 1))
    assert response.status_code == 413, response.text
    expected = file_too_large(MAX_FILE_BYTES, at_least=True).rejection
    assert response.json()["detail"] == {"code": "file_too_large", "message": expected.message}
    assert staged(server) == before


def test_over_5_mb_without_a_length_is_stopped_while_it_is_read(server: UiServer) -> None:
    """A chunked body, so no Content-Length to refuse up front: the reading itself stops."""
    boundary = "b" + uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="merchant_id"\r\n\r\n{MERCHANT}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()

    def chunks() -> Iterator[bytes]:
        yield head
        for _ in range(7):
            yield b"y" * 1024 * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    before = staged(server)
    response = httpx.post(
        server.url(UPLOADS),
        content=chunks(),
        headers={
            **bearer(server, ADMIN),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
        timeout=120,
    )
    assert response.status_code == 413, response.text
    assert response.json()["detail"]["code"] == "file_too_large"
    assert staged(server) == before


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"merchant_id": "nobody"}, "merchant_id"),
        ({"merchant_id": None}, "merchant_id"),
        ({"content": None}, "file"),
        ({"name": ""}, "file"),
        ({"data": {"send_now": "maybe"}}, "send_now"),
    ],
    ids=["unknown merchant", "no merchant", "no file", "empty file name", "bad send_now"],
)
def test_bad_fields_answer_422_naming_the_field(
    server: UiServer, kwargs: dict[str, Any], field: str
) -> None:
    before = staged(server)
    content = kwargs.pop("content", orders())
    response = post_upload(server, content, **kwargs)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"][-1] == field and error["msg"].startswith(f"{field}: ")
    assert staged(server) == before


def test_a_multipart_form_without_its_file_is_422_naming_file(server: UiServer) -> None:
    response = httpx.post(
        server.url(UPLOADS),
        files={"merchant_id": (None, MERCHANT), "note": ("note.txt", b"x", "text/plain")},
        headers=bearer(server, ADMIN),
    )
    assert response.status_code == 422, response.text
    assert [e["loc"][-1] for e in response.json()["detail"]] == ["file"]


@pytest.mark.parametrize(
    ("name", "stored"),
    [("../../x.csv", "x.csv"), ("<script>alert(1)</script>.csv", "script>.csv")],
)
def test_a_browsers_file_name_is_stored_under_a_safe_name(
    server: UiServer, name: str, stored: str
) -> None:
    body = checked(server, name=name)
    assert body["file_name"] == stored == body["report"]["file_name"]
    folder = server.data_dir / "staging" / MERCHANT / body["upload_id"]
    assert (folder / stored).is_file()
    assert (
        not (server.data_dir / "x.csv").exists() and not (server.data_dir.parent / "x.csv").exists()
    )


# -- access ------------------------------------------------------------------------------------


def test_without_a_user_every_upload_route_is_401(server: UiServer) -> None:
    body = checked(server)
    assert post_upload(server, orders(), user=None).status_code == 401
    assert httpx.get(server.url(f"{UPLOADS}/{body['upload_id']}")).status_code == 401
    assert httpx.post(server.url(f"{UPLOADS}/{body['upload_id']}/import")).status_code == 401


def test_a_user_who_may_read_but_not_trigger_gets_403_on_the_posts(server: UiServer) -> None:
    body = checked(server)
    before = staged(server)

    assert post_upload(server, orders(), user=VIEWER).status_code == 403
    assert start_import(server, body["upload_id"], user=VIEWER).status_code == 403
    readable = httpx.get(
        server.url(f"{UPLOADS}/{body['upload_id']}"), headers=bearer(server, VIEWER)
    )
    assert readable.status_code == 200 and readable.json()["state"] == "checked"
    assert staged(server) == before
    page = server.get(UI_PREFIX + "/import", user=VIEWER)
    assert page.status_code == 200 and 'id="check-file"' in page.text


def test_a_user_who_may_not_read_the_ingest_dags_gets_403(server: UiServer) -> None:
    body = checked(server)
    assert post_upload(server, orders(), user=OUTSIDER).status_code == 403
    got = httpx.get(server.url(f"{UPLOADS}/{body['upload_id']}"), headers=bearer(server, OUTSIDER))
    assert got.status_code == 403


# -- CSRF --------------------------------------------------------------------------------------


def page_token(server: UiServer, user: str = ADMIN) -> str:
    """The CSRF token of the import page, as the browser gets it with the UI's cookie."""
    page = httpx.get(
        server.url(UI_PREFIX + "/import"), cookies={"_token": server.token(user)}, timeout=60
    )
    assert page.status_code == 200, page.text[:300]
    return Tags(page.text).one("input", name="csrf_token")["value"]


def test_a_form_posted_from_another_site_is_403_and_changes_nothing(server: UiServer) -> None:
    upload_id = checked(server)["upload_id"]
    before = staged(server)
    cookies = {"_token": server.token(ADMIN)}
    good = page_token(server)
    forged = [
        ({"Origin": EVIL}, {}),
        ({"Origin": EVIL}, {"csrf_token": "1.forged"}),
        ({"Origin": EVIL}, {"csrf_token": good}),
        ({"Origin": server.base_url}, {}),
        ({"Origin": server.base_url}, {"csrf_token": "9999999999.forged"}),
        ({"Referer": EVIL + "/page"}, {"csrf_token": good}),
        ({}, {"csrf_token": good}),
    ]
    for headers, fields in forged:
        files = {"file": ("orders.csv", orders(), "text/csv")}
        data = {**fields, "merchant_id": MERCHANT}
        for path in (UPLOADS, UI_PREFIX + "/import"):
            answer = httpx.post(
                server.url(path), data=data, files=files, headers=headers, cookies=cookies
            )
            assert answer.status_code == 403, (path, headers, fields, answer.text[:200])
        queue = httpx.post(
            server.url(UI_PREFIX + "/import/queue"),
            data={**fields, "upload": upload_id},
            headers=headers,
            cookies=cookies,
        )
        assert queue.status_code == 403, (headers, fields, queue.text[:200])
        api = httpx.post(
            server.url(f"{UPLOADS}/{upload_id}/import"),
            data=fields,
            headers=headers,
            cookies=cookies,
        )
        assert api.status_code == 403, (headers, fields, api.text[:200])
    assert staged(server) == before
    state = httpx.get(server.url(f"{UPLOADS}/{upload_id}"), headers=bearer(server, ADMIN))
    assert state.json()["state"] == "checked"


def test_the_page_itself_checks_and_imports_with_the_cookie(server: UiServer) -> None:
    """The requests a browser sends from the page, without JavaScript."""
    cookies = {"_token": server.token(ADMIN)}
    own = {"Origin": server.base_url}
    client = httpx.Client(base_url=server.base_url, cookies=cookies, timeout=120)
    page = client.get(UI_PREFIX + "/import")
    tags = Tags(page.text)
    for element_id in ("file", "merchant_id", "check-file", "send_now"):
        assert tags.find(id=element_id), element_id
    assert {o["value"] for o in tags.find("option")} >= {MERCHANT, "shop-products"}
    form = tags.one("form", id="check-form")
    assert form["enctype"] == "multipart/form-data" and form["method"] == "post"
    token = tags.one("input", name="csrf_token")["value"]
    bad = with_field(orders(), row=2, index=4, value="<i>31-02-2026</i>")

    checked_page = client.post(
        UI_PREFIX + "/import",
        data={"csrf_token": token, "merchant_id": MERCHANT},
        files={"file": ("<b>orders</b>.csv", bad, "text/csv")},
        headers=own,
    )

    assert checked_page.status_code == 303, checked_page.text[:300]
    location = checked_page.headers["location"]
    assert location.startswith("import?upload=")
    shown = client.get(urljoin(UI_PREFIX + "/import", location))
    assert shown.status_code == 200
    text = shown.text
    assert "<i>" not in text and "<b>" not in text
    assert "&lt;i&gt;31-02-2026&lt;/i&gt;" in text
    tags = Tags(text)
    totals = tags.text_of("check-totals")
    assert "Rows 5" in totals and "Valid 4" in totals and "With errors 1" in totals
    assert "Duplicates 0" in totals and "already imported 0" in totals
    assert "Brand 4" in tags.text_of("check-requests")
    assert "invalid_date" in tags.text_of("check-errors")
    queue_form = tags.one("form", id="import-form")
    assert tags.find("button", id="import-data")
    upload_id = tags.one("input", name="upload")["value"]

    queued = client.post(
        urljoin(UI_PREFIX + "/import", queue_form["action"]),
        data={"csrf_token": token, "upload": upload_id},
        headers=own,
    )

    assert queued.status_code == 303, queued.text[:300]
    after = client.get(urljoin(UI_PREFIX + "/import/queue", queued.headers["location"]))
    tags = Tags(after.text)
    assert tags.one("section", id="upload")["data-state"] == "queued"
    shown = httpx.get(server.url(f"{UPLOADS}/{upload_id}"), headers=bearer(server, ADMIN))
    dag_run_id = shown.json()["dag_run_id"]
    assert dag_run_id == "upload__" + upload_state(server, upload_id)["import_id"]
    run = tags.one("a", id="run-link")["href"]
    assert run == f"../dags/orders_upload_import/runs/{dag_run_id}"
    assert not tags.find("button", id="import-data")
    assert '<meta http-equiv="refresh"' in after.text
    again = client.post(
        UI_PREFIX + "/import/queue", data={"csrf_token": token, "upload": upload_id}, headers=own
    )
    assert again.status_code == 409 and dag_run_id in again.text


def test_a_bearer_request_needs_no_csrf_token(server: UiServer) -> None:
    response = post_upload(server, orders(), headers={"Origin": EVIL})
    assert response.status_code == 201, response.text


# -- "Import data" -------------------------------------------------------------------------------


def test_import_data_starts_one_run_in_airflow_and_a_second_is_409(server: UiServer) -> None:
    upload_id = checked(server)["upload_id"]

    started = start_import(server, upload_id)

    assert started.status_code == 202, started.text
    body = started.json()
    assert body == {
        "upload_id": upload_id,
        "state": "queued",
        "dag_id": "orders_upload_import",
        "dag_run_id": "upload__" + upload_state(server, upload_id)["import_id"],
    }
    run = server.get(f"/api/v2/dags/orders_upload_import/dagRuns/{body['dag_run_id']}", user=ADMIN)
    assert run.status_code == 200, run.text
    assert run.json()["conf"] == {"upload_id": upload_id}
    assert run.json()["state"] == "queued" and run.json()["run_type"] == "manual"
    assert run.json()["triggering_user_name"] == ADMIN
    dag = server.get("/api/v2/dags/orders_upload_import", user=ADMIN).json()
    assert dag["is_paused"] is False
    got = httpx.get(server.url(f"{UPLOADS}/{upload_id}"), headers=bearer(server, ADMIN)).json()
    assert got["state"] == "queued" and got["dag_run_id"] == body["dag_run_id"]

    second = start_import(server, upload_id)

    assert second.status_code == 409
    assert second.json()["detail"]["dag_run_id"] == body["dag_run_id"]
    assert body["dag_run_id"] in second.json()["detail"]["message"]
    runs = server.get("/api/v2/dags/orders_upload_import/dagRuns", user=ADMIN).json()
    assert [r["dag_run_id"] for r in runs["dag_runs"]].count(body["dag_run_id"]) == 1


def test_two_users_importing_at_once_start_one_run(server: UiServer) -> None:
    upload_id = checked(server)["upload_id"]
    start = threading.Barrier(2)
    answers: list[httpx.Response] = []

    def click() -> None:
        start.wait()
        answers.append(start_import(server, upload_id))

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(a.status_code for a in answers) == [202, 409]
    runs = server.get("/api/v2/dags/orders_upload_import/dagRuns", user=ADMIN).json()
    ours = [r for r in runs["dag_runs"] if r["conf"] == {"upload_id": upload_id}]
    assert len(ours) == 1


def test_a_paused_dag_is_503_saying_so_and_nothing_is_queued(server: UiServer) -> None:
    upload_id = checked(server)["upload_id"]
    dag_url = server.url("/api/v2/dags/orders_upload_import")
    paused = httpx.patch(dag_url, json={"is_paused": True}, headers=bearer(server, ADMIN))
    assert paused.status_code == 200, paused.text
    try:
        answer = start_import(server, upload_id)
    finally:
        httpx.patch(dag_url, json={"is_paused": False}, headers=bearer(server, ADMIN))

    assert answer.status_code == 503, answer.text
    assert answer.json()["detail"]["code"] == "run_not_started"
    assert "paused" in answer.json()["detail"]["message"]
    folder = server.data_dir / "staging" / MERCHANT / upload_id
    assert not (folder / "queued.json").exists()
    assert start_import(server, upload_id).status_code == 202, "tried again once unpaused"


def test_unknown_uploads_are_404_and_expired_ones_404_or_409(server: UiServer) -> None:
    for upload_id in ("20261206T100000Z-0123456789ab", "not-an-id"):
        response = httpx.get(server.url(f"{UPLOADS}/{upload_id}"), headers=bearer(server, ADMIN))
        assert response.status_code == 404, (upload_id, response.text)
    assert start_import(server, "20261206T100000Z-0123456789ab").status_code == 404

    upload_id = checked(server)["upload_id"]
    record = server.data_dir / "staging" / MERCHANT / upload_id / "upload.json"
    body = json.loads(record.read_text())
    body["expires_at"] = "2026-01-01T00:00:00+00:00"
    record.write_text(json.dumps(body))

    assert (
        httpx.get(server.url(f"{UPLOADS}/{upload_id}"), headers=bearer(server, ADMIN)).status_code
        == 404
    )
    expired = start_import(server, upload_id)
    assert expired.status_code == 409 and "expired" in expired.json()["detail"]["message"]
    assert not (record.parent / "queued.json").exists()
    page = server.get(UI_PREFIX + f"/import?upload={upload_id}", user=ADMIN)
    assert page.status_code == 404 and "expired" in html.unescape(page.text)


# -- HTML --------------------------------------------------------------------------------------


class Tags(HTMLParser):
    """Start tags with their attributes, and the text inside elements with an id."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self._open: list[tuple[str, str | None]] = []
        self.texts: dict[str, list[str]] = {}
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        self.tags.append((tag, found))
        if tag not in ("input", "meta", "link", "br", "img"):
            self._open.append((tag, found.get("id")))
            if found.get("id"):
                self.texts.setdefault(found["id"], [])

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open:
            if element_id:
                self.texts[element_id].append(data)

    def text_of(self, element_id: str) -> str:
        return " ".join(" ".join(self.texts[element_id]).split())

    def find(self, tag: str | None = None, **attrs: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.tags
            if (tag is None or t == tag) and all(a.get(k) == v for k, v in attrs.items())
        ]

    def one(self, tag: str | None = None, **attrs: str) -> dict[str, str]:
        found = self.find(tag, **attrs)
        assert len(found) == 1, f"{tag} {attrs}: {len(found)} found"
        return found[0]


def test_the_page_without_an_upload_and_with_one(server: UiServer) -> None:
    body = checked(server)
    page = server.get(UI_PREFIX + f"/import?upload={body['upload_id']}", user=ADMIN)
    assert page.status_code == 200
    tags = Tags(page.text)
    assert tags.one("section", id="upload")["data-state"] == "checked"
    assert tags.one("option", value=MERCHANT, selected="")
    assert "Checked: this file would load" in tags.text_of("upload-state")
    assert tags.find("button", id="import-data")
    nav = Tags(server.get(UI_PREFIX + "/imports", user=ADMIN).text)
    assert nav.find("a", href="import")


def test_the_plugin_lists_import_orders(server: UiServer) -> None:
    plugins = server.get("/api/v2/plugins", user=ADMIN, params={"limit": 100}).json()["plugins"]
    views = [v for p in plugins for v in p.get("external_views", [])]
    ours = [v for v in views if v["name"] == "Import orders"]
    assert len(ours) == 1 and ours[0]["href"].rstrip("/").endswith("review-ingest/import")
    icon = server.get(UI_PREFIX + "/static/import.svg")
    assert icon.status_code == 200 and icon.text.startswith("<svg")


def test_the_server_logged_no_error_of_the_upload_routes(server: UiServer) -> None:
    """Last: after every other test of this module."""
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log, server.log_tail(120)
