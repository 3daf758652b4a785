"""A column's metrics get a frame of that column, not the whole validation frame.

For a column's metric, Great Expectations' pandas engine hands over the whole frame
(``get_domain_records``), and the map metrics filter it row-wise at least twice (the column's
nulls, then its failing rows): every column of the frame and its index are copied each time,
about 80 times per validation. Inside ``narrowed()`` the frame of a plain column domain (a
column of the batch, without row condition) is that column alone, with the frame's index: all
such a metric reads. ``check`` of the valid 5 MB file: the validation took 1.41-1.62 s with the
whole frame and 1.02-1.27 s with the column (one process, alternating).

The block belongs to its thread and ends with it, as ``gx_memo``'s does;
``tests/test_gx_memo.py`` holds the results of every row rule of every template equal inside
both blocks and outside.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_local = threading.local()
_installed = False
#: What a plain column domain may set; any other key set (a row condition, a table, column
#: pairs) leaves the domain's frame as Great Expectations makes it.
_COLUMN_DOMAIN = frozenset({"column", "batch_id"})


def install() -> None:
    """Route ``PandasExecutionEngine.get_domain_records`` through ``narrowed`` (idempotent;
    imports GX)."""
    global _installed
    if _installed:
        return
    from great_expectations.execution_engine.pandas_execution_engine import (
        PandasExecutionEngine,
    )

    records = PandasExecutionEngine.get_domain_records

    def get_domain_records(self: Any, domain_kwargs: dict) -> Any:
        data = records(self, domain_kwargs)
        if getattr(_local, "on", False) and _column_domain(domain_kwargs):
            column = domain_kwargs["column"]
            if column in data.columns:
                return data[[column]]
        return data

    PandasExecutionEngine.get_domain_records = get_domain_records
    _installed = True


def _column_domain(domain_kwargs: dict) -> bool:
    return "column" in domain_kwargs and all(
        value is None for key, value in domain_kwargs.items() if key not in _COLUMN_DOMAIN
    )


@contextmanager
def narrowed() -> Iterator[None]:
    """Within the block, on this thread, a column's metrics get a frame of that column."""
    install()
    outer = getattr(_local, "on", False)
    _local.on = True
    try:
        yield
    finally:
        _local.on = outer
