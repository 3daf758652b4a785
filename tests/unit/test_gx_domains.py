"""``gx_compat.column_domains``: inside ``narrowed()`` a plain column domain's frame is that
column, with the frame's index; any other domain, outside the block or on another thread, gets
the frame as Great Expectations makes it. ``test_gx_memo`` holds every row rule's results equal
with it."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from review_ingest.quality import gx_compat
from review_ingest.quality.gx_compat import column_domains


@pytest.fixture
def engine() -> Any:
    gx_compat.load()
    import pandas as pd
    from great_expectations.execution_engine.pandas_batch_data import PandasBatchData
    from great_expectations.execution_engine.pandas_execution_engine import (
        PandasExecutionEngine,
    )

    frame = pd.DataFrame(
        {"a": [1, 2, 3], "b": ["x", None, "z"]},
        index=pd.MultiIndex.from_arrays([["f1", "f1", "f2"], [2, 3, 2]], names=["file", "line"]),
    )
    engine = PandasExecutionEngine()
    engine.load_batch_data("batch", PandasBatchData(engine, frame))
    return engine


def columns(engine: Any, **domain: Any) -> list[str]:
    return list(engine.get_domain_records({"batch_id": "batch", **domain}).columns)


def test_a_column_domain_gets_its_column_inside_the_block(engine):
    with column_domains.narrowed():
        records = engine.get_domain_records(
            {"batch_id": "batch", "column": "b", "row_condition": None, "table": None}
        )
        assert list(records.columns) == ["b"]
        assert list(records.index) == [("f1", 2), ("f1", 3), ("f2", 2)]
        assert columns(engine) == ["a", "b"]  # the table
    assert columns(engine, column="b") == ["a", "b"]


def test_a_row_condition_or_another_thread_gets_the_whole_frame(engine):
    seen: list[list[str]] = []
    with column_domains.narrowed():
        thread = threading.Thread(target=lambda: seen.append(columns(engine, column="b")))
        thread.start()
        thread.join()
        with_condition = engine.get_domain_records(
            {
                "batch_id": "batch",
                "column": "b",
                "row_condition": "a>1",
                "condition_parser": "pandas",
            }
        )
    assert seen == [["a", "b"]]
    assert list(with_condition.columns) == ["a", "b"]
    assert list(with_condition["a"]) == [2, 3]
