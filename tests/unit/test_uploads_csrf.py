"""The CSRF token and origin check of the forms that change data (``web/csrf.py``), on
Starlette requests built in memory: no server."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from review_ingest.web import csrf

NOW = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.UTC)
SECRET = "the-api-secret-key"
SERVER = "http://127.0.0.1:8080"


def request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/review-ingest/api/uploads",
        "headers": raw,
        "query_string": b"",
        "server": ("127.0.0.1", 8080),
        "scheme": "http",
        "state": {},
    }
    return Request(scope)


def test_a_token_holds_for_its_user_until_it_expires() -> None:
    token = csrf.make_token("alice", SECRET, NOW)
    assert csrf.is_valid(token, "alice", SECRET, NOW)
    assert csrf.is_valid(token, "alice", SECRET, NOW + csrf.LIFETIME - dt.timedelta(seconds=1))
    assert not csrf.is_valid(token, "alice", SECRET, NOW + csrf.LIFETIME)
    assert not csrf.is_valid(token, "bob", SECRET, NOW)
    assert not csrf.is_valid(token, "alice", "another-secret", NOW)


@pytest.mark.parametrize("token", [None, "", "x", "123", "123.", ".abc", "9999999999.forged"])
def test_malformed_or_forged_tokens_are_refused(token: str | None) -> None:
    assert not csrf.is_valid(token, "alice", SECRET, NOW)


def test_a_later_expiry_cannot_be_pasted_on_a_token() -> None:
    expires, _, mac = csrf.make_token("alice", SECRET, NOW).partition(".")
    assert not csrf.is_valid(f"{int(expires) + 86400}.{mac}", "alice", SECRET, NOW)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/review-ingest/import?x=1", "http://127.0.0.1:8080"),
        ("HTTPS://Airflow.Example:443/", "https://airflow.example"),
        ("http://airflow.example:80", "http://airflow.example"),
        ("null", None),
        ("", None),
        (None, None),
        ("/review-ingest/import", None),
        ("javascript:alert(1)", None),
        ("http://h:99999/", None),
    ],
)
def test_origin_of(url: str | None, origin: str | None) -> None:
    assert csrf.origin_of(url) == origin


def test_a_cookie_request_from_another_site_is_refused_before_its_body_is_read() -> None:
    forged = request({"Cookie": "_token=jwt", "Origin": "http://evil.example"})
    with pytest.raises(HTTPException) as caught:
        csrf.check_request(forged, "alice", SECRET, [SERVER])
    assert caught.value.status_code == 403


def test_a_cookie_request_without_origin_or_referer_is_refused() -> None:
    with pytest.raises(HTTPException) as caught:
        csrf.check_request(request({"Cookie": "_token=jwt"}), "alice", SECRET, [SERVER])
    assert caught.value.status_code == 403


def test_the_referer_stands_for_a_missing_origin() -> None:
    own = request({"Referer": f"{SERVER}/review-ingest/import"})
    csrf.check_request(own, "alice", SECRET, [SERVER])
    assert not csrf.is_checked(own), "the form's token is still to be seen"


def test_a_cookie_request_from_this_server_needs_the_token_of_its_user() -> None:
    own = request({"Origin": SERVER})
    csrf.check_request(own, "alice", SECRET, [SERVER + "/"])
    for bad in (None, "", csrf.make_token("bob", SECRET)):
        with pytest.raises(HTTPException) as caught:
            csrf.require_token(own, bad)
        assert caught.value.status_code == 403
    csrf.require_token(own, csrf.make_token("alice", SECRET))
    assert csrf.is_checked(own)


def test_the_header_token_is_checked_at_once() -> None:
    good = request({"Origin": SERVER, csrf.HEADER: csrf.make_token("alice", SECRET)})
    csrf.check_request(good, "alice", SECRET, [SERVER])
    assert csrf.is_checked(good)
    csrf.require_token(good, None)
    bad = request({"Origin": SERVER, csrf.HEADER: "1.forged"})
    with pytest.raises(HTTPException):
        csrf.check_request(bad, "alice", SECRET, [SERVER])


def test_a_bearer_request_needs_no_token_and_no_origin() -> None:
    api = request({"Authorization": "Bearer jwt", "Origin": "http://evil.example"})
    csrf.check_request(api, "alice", SECRET, [SERVER])
    csrf.require_token(api, None)
    assert csrf.is_checked(api)


def test_a_request_never_checked_is_refused() -> None:
    with pytest.raises(HTTPException):
        csrf.require_token(request({"Origin": SERVER}), csrf.make_token("alice", SECRET))
