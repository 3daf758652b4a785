"""A person's e-mail address as the personal-data commands take it (contract section 11).

The address is checked, trimmed and lower-cased, then used to find that person's data; it is
never printed, logged, or stored: the opt-out list keeps its SHA-256 only
(``core.address_hash``, the one rule the warehouse's loads use too).
"""

from __future__ import annotations

import re

from review_ingest.core import rules
from review_ingest.core.address_hash import address_hash, normalise
from review_ingest.errors import UsageError

__all__ = ["address_hash", "normalise", "parse", "parse_merchant_id"]

_MERCHANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


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
