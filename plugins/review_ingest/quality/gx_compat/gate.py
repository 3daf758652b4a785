"""The versions the patches of ``gx_compat`` were proven on, and what each patch replaced.

A patch is installed only when the installed Great Expectations and pandas are the versions it
was proven on (``tests/unit/test_gx_compat.py`` runs every template's suite with and without the
patches and finds the same results): on any other versions Great Expectations runs as it is.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

#: The versions every patch was proven on together: today's pins.
PROVEN: dict[str, str] = {"great_expectations": "1.24.1", "pandas": "3.1.1"}

_verdict: bool | None = None


def found_versions() -> dict[str, str | None]:
    """The installed version of each package of ``PROVEN`` (None if missing), from its
    metadata: nothing is imported to read it."""
    found: dict[str, str | None] = {}
    for package in PROVEN:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def proven() -> bool:
    """Whether the installed versions are those of ``PROVEN``; read once per process."""
    global _verdict
    if _verdict is None:
        _verdict = found_versions() == PROVEN
    return _verdict


class Patch:
    """The attributes one patch replaced, each with its upstream value, to put them back."""

    def __init__(self) -> None:
        self._upstream: list[tuple[Any, str, Any]] = []

    @property
    def installed(self) -> bool:
        return bool(self._upstream)

    def replace(self, owner: Any, name: str, value: Any) -> None:
        """Set ``owner.name`` (a class's or module's own attribute) to ``value``."""
        self._upstream.append((owner, name, vars(owner)[name]))
        setattr(owner, name, value)

    def restore(self) -> bool:
        """Put back every upstream attribute; whether there was any to put back."""
        replaced = self.installed
        for owner, name, value in reversed(self._upstream):
            setattr(owner, name, value)
        self._upstream.clear()
        return replaced
