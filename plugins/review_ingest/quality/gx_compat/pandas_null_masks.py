"""pandas' null masks of the validated frame's text columns, each computed once per block.

Upstream (pandas 3.1.1): ``StringArray.isna`` (the python-backed string type the validation
frame's text columns have) scans the column's strings for nulls on each call, and Great
Expectations 1.24.1's metrics ask for the same columns' masks again for each expectation.

Why: the strings of a big file lie all over memory, so each scan is slow, and the same masks
are scanned for again and again within one validation. Inside ``memoized(frame)`` the mask of
each text column of ``frame`` is computed once; each caller gets its own copy, and the frame is
not changed while it is validated (pandas' copy-on-write copies anything derived from it that is
written to). The memo belongs to the thread that entered the block and ends with it.

It can go when Great Expectations computes a column's null mask once per validation, or pandas
caches it on the array.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from review_ingest.quality.gx_compat import gate

_local = threading.local()
_patch = gate.Patch()


def install() -> bool:
    """Route ``StringArray.isna`` through the memo, on the proven versions only (imports
    pandas); whether it is."""
    if _patch.installed or not gate.proven():
        return _patch.installed
    from pandas.core.arrays.string_ import StringArray

    _patch.replace(StringArray, "isna", _isna(StringArray.isna))
    return True


def uninstall() -> bool:
    """Put pandas' own ``StringArray.isna`` back; whether it had been replaced."""
    return _patch.restore()


def _isna(computed: Any) -> Any:
    """``StringArray.isna``, memoised inside ``memoized(frame)`` for ``frame``'s columns."""

    def isna(array: Any) -> Any:
        masks: dict[int, list[Any]] | None = getattr(_local, "masks", None)
        entry = masks.get(id(array._ndarray)) if masks else None
        if entry is None or entry[0] is not array._ndarray:
            return computed(array)
        if entry[1] is None:
            entry[1] = computed(array)
        return entry[1].copy()

    return isna


@contextmanager
def memoized(frame: Any) -> Iterator[None]:
    """Within the block, on this thread, each null mask of a text column of ``frame`` (the frame
    being validated) is computed once; a nested block keeps the outer memo, and without the
    patch installed the block does nothing."""
    if not _patch.installed or getattr(_local, "masks", None) is not None:
        yield
        return
    _local.masks = _text_columns(frame)
    try:
        yield
    finally:
        _local.masks = None


def _text_columns(frame: Any) -> dict[int, list[Any]]:
    """The values of each text column of ``frame`` (pandas' python-backed strings), by id, with
    room for its mask; the values are held, so that no other array takes their id."""
    from pandas.core.arrays.string_ import StringArray

    columns = (frame[name].array for name in frame.columns)
    return {id(a._ndarray): [a._ndarray, None] for a in columns if type(a) is StringArray}
