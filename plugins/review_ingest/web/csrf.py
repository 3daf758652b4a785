"""Forms that change data come from this server's own pages (contract section 12).

A request authenticated by the Airflow UI's cookie is one a browser sends on its own, from any
site that posts a form here: it must carry this page's CSRF token (the form's hidden field
``csrf_token`` or the header ``X-CSRF-Token``) and an ``Origin`` (else a ``Referer``) that is
this server. A request with a Bearer token was built by a client that holds the token: it needs
neither.

The token is ``<expiry>.<HMAC-SHA256 of the user name and the expiry>``, keyed by Airflow's
``[api] secret_key``: it needs no storage, holds for every API server of a deployment, and is
worth nothing to another user.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from collections.abc import Collection
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

#: The hidden field of a form, and the header of a script's request.
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
#: A page's token stays good this long (a page left open for a working day).
LIFETIME = dt.timedelta(hours=12)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def make_token(user: str, secret: str, now: dt.datetime | None = None) -> str:
    """A token for ``user``'s forms, good for ``LIFETIME``."""
    expires = int(((now or dt.datetime.now(dt.UTC)) + LIFETIME).timestamp())
    return f"{expires}.{_mac(user, expires, secret)}"


def is_valid(token: str | None, user: str, secret: str, now: dt.datetime | None = None) -> bool:
    """Whether ``token`` was made for ``user`` with ``secret`` and has not expired."""
    expires_text, _, mac = (token or "").partition(".")
    if not expires_text.isdigit() or not mac:
        return False
    expires = int(expires_text)
    if expires <= (now or dt.datetime.now(dt.UTC)).timestamp():
        return False
    return hmac.compare_digest(mac, _mac(user, expires, secret))


def _mac(user: str, expires: int, secret: str) -> str:
    key = hashlib.sha256(b"review-ingest csrf\0" + secret.encode()).digest()
    digest = hmac.new(key, f"{user}\0{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def origin_of(url: str | None) -> str | None:
    """``scheme://host[:port]`` of a URL, lower-case, default port left out; None when it has
    none (``null``, a relative URL)."""
    try:
        parts = urlsplit((url or "").strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    shown = "" if port in (None, _DEFAULT_PORTS[parts.scheme]) else f":{port}"
    return f"{parts.scheme}://{parts.hostname}{shown}"


def by_bearer(request: Request) -> bool:
    """Whether the request names its user with ``Authorization: Bearer`` (Airflow then ignores
    the cookie)."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(credentials.strip())


def check_request(request: Request, user: str, secret: str, own_origins: Collection[str]) -> None:
    """Before the body is read: a cookie-authenticated request must come from one of
    ``own_origins``, and a token in the header must be good (403 otherwise). The request is
    marked so that ``require_token`` knows whom the form's token must be for."""
    if by_bearer(request):
        return
    origin = origin_of(request.headers.get("origin")) or origin_of(request.headers.get("referer"))
    if origin is None or origin not in {origin_of(o) for o in own_origins}:
        raise HTTPException(403, "this form must be sent from the review UI's own page")
    request.state.csrf_user = user
    request.state.csrf_secret = secret
    header = request.headers.get(HEADER)
    if header is not None:
        _require(is_valid(header, user, secret))
        request.state.csrf_checked = True


def require_token(request: Request, token: str | None) -> None:
    """403 unless the request needs no token (Bearer), its header token was good, or ``token``
    (the form's field) is good for the user ``check_request`` noted."""
    user = getattr(request.state, "csrf_user", None)
    if user is None and by_bearer(request):
        return
    if getattr(request.state, "csrf_checked", False):
        return
    _require(user is not None and is_valid(token, user, request.state.csrf_secret))
    request.state.csrf_checked = True


def is_checked(request: Request) -> bool:
    """Whether the request needs no more CSRF check (Bearer, or a good token seen)."""
    return getattr(request.state, "csrf_checked", False) or (
        getattr(request.state, "csrf_user", None) is None and by_bearer(request)
    )


def _require(valid: bool) -> None:
    if not valid:
        raise HTTPException(
            403, "missing or expired form token: reload the review UI's page and send again"
        )
