"""What a validation keeps after it ends (issue 9, memory): its frame and Great Expectations'
metrics are let go, the next validation of the same template still gets its own result, and the
errors come out the same whatever the size of the chunks they are built in. Real suites.
"""

from __future__ import annotations

import gc
import weakref

import pytest

from review_ingest.core.merchants import default_merchant
from review_ingest.core.outcomes import Record
from review_ingest.core.reading import read_file
from review_ingest.core.template_columns import TEMPLATES
from review_ingest.quality import validation as validation_module
from review_ingest.quality.validation import FileRows, Validation
from tests.unit import test_row_rules

TEMPLATE = "website_products"


@pytest.fixture(scope="module")
def validation() -> Validation:
    return Validation(docs_dir=None, results_dir=None)


def rules_records() -> list[Record]:
    return read_file(test_row_rules.DATA[TEMPLATE], TEMPLATES[TEMPLATE]).records


def check(validation: Validation, records: list[Record]) -> list[tuple[int, str | None, str, str]]:
    rows = [FileRows("import-1", "rules.csv", records)]
    found = validation.check_files(
        rows, TEMPLATES[TEMPLATE], default_merchant(TEMPLATE), test_row_rules.AS_OF, "run"
    )
    return [(e.line, e.column, e.code, e.message) for e in found["import-1"].errors]


def test_the_frame_and_the_metrics_are_let_go_after_the_validation(validation, monkeypatch):
    frames: list[weakref.ref] = []
    build_frame = validation_module.build_frame

    def kept_track_of(*args, **kwargs):
        frame = build_frame(*args, **kwargs)
        frames.append(weakref.ref(frame))
        return frame

    monkeypatch.setattr(validation_module, "build_frame", kept_track_of)
    assert check(validation, rules_records())
    gc.collect()
    assert len(frames) == 1 and frames[0]() is None
    engine = validation._definition(TEMPLATE).batch_definition.data_asset.datasource
    assert not engine.get_execution_engine()._metric_cache


def test_the_next_validation_of_the_template_gets_its_own_result(validation):
    records = rules_records()
    bad_first = check(validation, records)
    valid_only = [r for r in records if r.line not in {line for line, *_ in bad_first}]
    assert valid_only
    assert check(validation, valid_only) == check(Validation(None, None), valid_only)
    assert check(validation, records) == bad_first


def test_errors_are_the_same_whatever_the_chunk_size(validation, monkeypatch):
    records = rules_records()
    whole = check(validation, records)
    assert len(whole) > 7
    monkeypatch.setattr(validation_module, "_CHUNK", 7)
    assert check(validation, records) == whole


def test_an_error_message_is_made_when_it_is_first_read(validation, monkeypatch):
    """``check`` shows the first thousand messages of an all-bad file: the rows' errors are
    made without their messages, each message once when read, as ``rules.message`` words it."""
    from review_ingest.core import rules

    made: list[tuple[str, str | None]] = []
    message = rules.message

    def counting(code: str, column: str | None, value: str | None) -> str:
        made.append((code, column))
        return message(code, column, value)

    monkeypatch.setattr(rules, "message", counting)
    records = rules_records()
    rows = [FileRows("import-1", "rules.csv", records)]
    errors = validation.check_files(
        rows, TEMPLATES[TEMPLATE], default_merchant(TEMPLATE), test_row_rules.AS_OF, "run"
    )["import-1"].errors
    assert len(errors) > 10 and made == []
    values = {r.line: r.values for r in records}
    assert [e.message for e in errors] == [
        message(e.code, e.column, values[e.line].get(e.column)) for e in errors
    ]
    assert len(made) == len(errors)
    for error in errors[:3]:
        error.message  # noqa: B018  (read again)
    assert len(made) == len(errors)  # each kept once made
