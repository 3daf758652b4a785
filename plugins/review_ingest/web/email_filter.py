"""The e-mail filter as the pages carry it in their links: sealed, never the address itself.

A search by exact e-mail must keep its filter in the paging and "Export CSV" links, yet no page
may show an address in clear (contract section 10). The links therefore carry ``email_token``:
the normalised address encrypted and authenticated (Fernet) with a key derived from Airflow's
``[api] secret_key``, valid ``TOKEN_TTL_SECONDS``. Airflow's access log also redacts the value
of any parameter whose name contains ``token``.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

from review_ingest.web.queries import normalized_email

TOKEN_TTL_SECONDS = 24 * 3600
_KEY_CONTEXT = b"review-ingest e-mail filter\0"


def _fernet(secret: str) -> Fernet:
    key = hashlib.sha256(_KEY_CONTEXT + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(email: str, secret: str) -> str:
    return _fernet(secret).encrypt(normalized_email(email).encode()).decode("ascii")


def unseal(token: str, secret: str) -> str | None:
    """The address sealed in ``token``; None when the token is forged, damaged or expired."""
    try:
        return _fernet(secret).decrypt(token.encode(), ttl=TOKEN_TTL_SECONDS).decode()
    except (InvalidToken, UnicodeError):
        return None
