"""Every patch of Great Expectations' and pandas' internals, in one place, gated on versions.

Each module is one patch and says what upstream does, why it is patched and when the patch can
go. They are installed only on the versions they were proven on (``gate.PROVEN``); on any other
versions one warning is logged per process, nothing is installed, ``validating`` does nothing
and the pipeline runs on Great Expectations and pandas as they are:

- ``lean_import``: Great Expectations imported without ``scipy.stats`` and ``altair``;
- ``batch_fingerprint``: pandas batches get no fingerprint;
- ``memo``: expectations' configurations and metric ids computed once per validation;
- ``pandas_null_masks``: the null masks of the frame's text columns computed once (pandas);
- ``column_domains``: a column's metrics get a frame of that column.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from review_ingest.quality.gx_compat import (
    batch_fingerprint,
    column_domains,
    gate,
    lean_import,
    memo,
    pandas_null_masks,
)

log = logging.getLogger(__name__)

#: The patches that ``install_all`` installs and ``unpatched`` can take out again.
PATCHES: tuple[ModuleType, ...] = (batch_fingerprint, memo, pandas_null_masks, column_domains)

_warned = False


def load() -> ModuleType:
    """``great_expectations``, imported by ``lean_import`` with every patch installed (on the
    proven versions only)."""
    great_expectations = lean_import.load()
    install_all()
    return great_expectations


def install_all() -> bool:
    """Install every patch if the installed versions are the proven ones; otherwise warn once
    per process and leave Great Expectations and pandas as they are. Whether they are patched."""
    if not gate.proven():
        _warn_unproven()
        return False
    for patch in PATCHES:
        patch.install()
    return True


def _warn_unproven() -> None:
    """One warning per process: which patches are not installed, and the versions behind it."""
    global _warned
    if _warned:
        return
    _warned = True
    names = ", ".join(_name(patch) for patch in (lean_import, *PATCHES))
    log.warning(
        "gx_compat: patches %s not installed: proven on %s, found %s; "
        "running on Great Expectations and pandas unpatched",
        names,
        _versions(gate.PROVEN),
        _versions(gate.found_versions()),
    )


def _name(patch: ModuleType) -> str:
    return patch.__name__.rpartition(".")[2]


def _versions(versions: dict[str, str | None]) -> str:
    return ", ".join(f"{package} {version}" for package, version in versions.items())


@contextmanager
def validating(frame: Any) -> Iterator[None]:
    """The blocks a validation of ``frame`` runs in: each does nothing if its patch is not
    installed."""
    with (
        memo.memoized(),
        pandas_null_masks.memoized(frame),
        column_domains.narrowed(),
    ):
        yield


@contextmanager
def unpatched(patches: tuple[ModuleType, ...] = PATCHES) -> Iterator[None]:
    """Within the block, Great Expectations and pandas without ``patches`` (all of them by
    default; ``lean_import``'s cannot be taken out): those installed are taken out, then put
    back. For tests and benchmarks: it is process-wide."""
    removed = [patch for patch in patches if patch.uninstall()]
    try:
        yield
    finally:
        for patch in removed:
            patch.install()
