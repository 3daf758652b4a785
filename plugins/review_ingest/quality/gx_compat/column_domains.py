"""A column's metrics get a frame of that column, not the whole validation frame.

Upstream (Great Expectations 1.24.1): ``PandasExecutionEngine.get_domain_records`` hands a
column's metric the whole batch frame, and the map metrics filter it row-wise (the column's
nulls, then its failing rows), copying every column of the frame and its index each time.

Why: those copies are a large part of a big file's validation, for one column's values. Inside
``narrowed()`` the frame of a plain column domain (a column of the batch, without row
condition) is that column alone, with the frame's index: all such a metric reads. Any other
domain (a row condition, the table, column pairs) gets the frame as Great Expectations makes
it. The block belongs to the thread that entered it and ends with it.

It can go when Great Expectations' pandas engine gives a column domain that column only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from review_ingest.quality.gx_compat import gate

_local = threading.local()
_patch = gate.Patch()
#: What a plain column domain may set; any other key set (a row condition, a table, column
#: pairs) leaves the domain's frame as Great Expectations makes it.
_COLUMN_DOMAIN = frozenset({"column", "batch_id"})


def install() -> bool:
    """Route ``PandasExecutionEngine.get_domain_records`` through ``narrowed``, on the proven
    versions only (imports GX); whether it is."""
    if _patch.installed or not gate.proven():
        return _patch.installed
    from great_expectations.execution_engine.pandas_execution_engine import (
        PandasExecutionEngine,
    )

    records = PandasExecutionEngine.get_domain_records
    _patch.replace(PandasExecutionEngine, "get_domain_records", _narrowing(records))
    return True


def uninstall() -> bool:
    """Put Great Expectations' own ``get_domain_records`` back; whether it had been replaced."""
    return _patch.restore()


def _narrowing(records: Any) -> Any:
    """``get_domain_records``, giving a plain column domain its column inside ``narrowed()``."""

    def get_domain_records(self: Any, domain_kwargs: dict) -> Any:
        data = records(self, domain_kwargs)
        if getattr(_local, "on", False) and _column_domain(domain_kwargs):
            column = domain_kwargs["column"]
            if column in data.columns:
                return data[[column]]
        return data

    return get_domain_records


def _column_domain(domain_kwargs: dict) -> bool:
    return "column" in domain_kwargs and all(
        value is None for key, value in domain_kwargs.items() if key not in _COLUMN_DOMAIN
    )


@contextmanager
def narrowed() -> Iterator[None]:
    """Within the block, on this thread, a column's metrics get a frame of that column; without
    the patch installed the block does nothing."""
    outer = getattr(_local, "on", False)
    _local.on = _patch.installed
    try:
        yield
    finally:
        _local.on = outer
