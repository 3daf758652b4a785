"""A customer's address as the opt-out list knows it (contract section 11): trimmed,
lower-cased, then SHA-256. The warehouse keeps this hash beside each request so that the work
list can leave out opted-out addresses; ``suppressions`` keeps it instead of the address.
"""

from __future__ import annotations

import hashlib


def normalise(address: str) -> str:
    """Trimmed and lower-cased: ``Jane@Example.com `` and ``jane@example.com`` are one person."""
    return address.strip().lower()


def address_hash(address: str) -> str:
    """The SHA-256 (hex) of the normalised address: what ``suppressions`` keeps."""
    return hashlib.sha256(normalise(address).encode("utf-8")).hexdigest()
