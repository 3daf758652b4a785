"""A person's e-mail address as the personal-data commands take it (contract section 11).

The address is checked, trimmed and lower-cased, then used to find that person's data; it is
never printed, logged, or stored: the opt-out list keeps its SHA-256 only.
"""

from __future__ import annotations

import hashlib
import re

from review_ingest.core import rules
from review_ingest.errors import UsageError

_MERCHANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def normalise(address: str) -> str:
    """Trimmed and lower-cased: ``Jane@Example.com `` and ``jane@example.com`` are one person."""
    return address.strip().lower()


def address_hash(address: str) -> str:
    """The SHA-256 (hex) of the normalised address: what ``suppressions`` keeps."""
    return hashlib.sha256(normalise(address).encode("utf-8")).hexdigest()


def parse(address: str) -> str:
    """The normalised address, or UsageError; the message never repeats what was given."""
    normal = normalise(address)
    if not normal or not rules.is_valid_email(normal):
        raise UsageError("--email: not an e-mail address (the value is not shown)")
    return normal


def parse_merchant_id(merchant_id: str | None) -> str | None:
    """``--merchant``: None (every merchant) or an id of the form the contract allows."""
    if merchant_id is not None and not _MERCHANT_ID.match(merchant_id):
        raise UsageError(
            f"--merchant {merchant_id!r}: not a merchant id (lower-case letters, digits, - and _)"
        )
    return merchant_id
