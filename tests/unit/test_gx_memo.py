"""``gx_compat.memo`` and ``gx_compat.pandas_null_masks``: Great Expectations' results are the
same with their memos (and with ``column_domains.narrowed``, as ``check_files`` validates) as
without them, for every row rule of
every template, one file or several; the memo lives only inside its block, on its own thread.
Real suites, real validations.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest

from review_ingest.core.merchants import default_merchant
from review_ingest.core.reading import read_file
from review_ingest.core.template_columns import TEMPLATES
from review_ingest.quality import gx_compat
from review_ingest.quality.gx_compat import memo, pandas_null_masks
from review_ingest.quality.validation import RESULT_FORMAT, FileRows, Validation, build_frame
from tests.unit import test_row_rules


@pytest.fixture(scope="module", autouse=True)
def patched() -> None:
    """Great Expectations loaded and patched, as a ``Validation`` does."""
    gx_compat.load()
    assert all(patch._patch.installed for patch in gx_compat.PATCHES)


@pytest.fixture(scope="module")
def validation() -> Validation:
    return Validation(docs_dir=None, results_dir=None)


def validate(
    validation: Validation, template_id: str, files: int, *, patched: bool = False
) -> dict[str, Any]:
    """The suite's result on ``files`` copies of the template's row-rules file, as JSON; with
    ``patched`` inside ``gx_compat.validating`` given the frame, as ``check_files`` validates."""
    template = TEMPLATES[template_id]
    merchant = default_merchant(template_id)
    records = read_file(test_row_rules.DATA[template_id], template).records
    rows = [FileRows(f"import-{n}", f"rules-{n}.csv", records) for n in range(files)]
    definition = validation._definition(template_id)
    frame = build_frame(rows, template, merchant)
    batch = definition.batch_definition.get_batch(batch_parameters={"dataframe": frame})
    as_of = test_row_rules.AS_OF.toordinal()
    with contextlib.ExitStack() as blocks:
        if patched:
            blocks.enter_context(gx_compat.validating(frame))
        result = batch.validate(
            definition.suite,
            result_format=RESULT_FORMAT,
            expectation_parameters={
                "as_of_day": as_of,
                "oldest_day": as_of - merchant.max_order_age_days,
            },
        )
    found = result.to_json_dict()
    found["meta"]["batch_markers"].pop("ge_load_time")  # when the frame was handed over
    return found


@pytest.mark.parametrize("files", [1, 3])
@pytest.mark.parametrize("template_id", sorted(TEMPLATES))
def test_results_are_the_same_with_the_memo_and_without(validation, template_id, files):
    memoized = validate(validation, template_id, files, patched=True)
    plain = validate(validation, template_id, files)
    assert memoized == plain
    # The file breaks the template's rules: the comparison covers failing rows.
    failed = [r for r in plain["results"] if not r["success"]]
    assert len(failed) >= 5
    assert all(r["result"]["unexpected_index_list"] for r in failed)


def an_expectation(validation: Validation) -> Any:
    return validation._definition("website").suite.expectations[1]


def test_a_configuration_is_built_once_inside_the_block_and_anew_outside(validation):
    expectation = an_expectation(validation)
    with memo.memoized():
        inside = expectation.configuration
        assert expectation.configuration is inside
        with memo.memoized():  # a nested block keeps the outer memo
            assert expectation.configuration is inside
        assert expectation.configuration is inside
    assert expectation.configuration is not inside
    assert expectation.configuration is not expectation.configuration
    assert expectation.configuration == inside


def test_other_threads_do_not_share_the_memo(validation):
    expectation = an_expectation(validation)
    seen: list[Any] = []

    def read_twice() -> None:
        seen.extend([expectation.configuration, expectation.configuration])

    with memo.memoized():
        inside = expectation.configuration
        thread = threading.Thread(target=read_twice)
        thread.start()
        thread.join()
    assert seen[0] is not seen[1]
    assert all(configuration is not inside for configuration in seen)
    assert seen[0] == inside


def test_an_exception_inside_the_block_drops_the_memo(validation):
    expectation = an_expectation(validation)
    with pytest.raises(RuntimeError), memo.memoized():
        inside = expectation.configuration
        raise RuntimeError("a validation failed")
    assert expectation.configuration is not inside
    assert expectation.configuration is not expectation.configuration


def test_plain_keys_tell_apart_what_json_tells_apart():
    key = memo.plain_key
    assert key({"a": 1, "b": [1, "x"]}) == key({"b": [1, "x"], "a": 1})
    different = [0.0, -0.0, 1, True, "1", None, [1], (1,), {"a": 1}, {"a": 1.0}, {"a": "1"}]
    assert len({key(value) for value in different}) == len(different)
    for value in ({1, 2}, {1: "a"}, object(), [b"bytes"]):
        with pytest.raises(memo.NotPlain):
            key(value)


def test_metric_ids_are_those_great_expectations_computes(validation, monkeypatch):
    """Every id a validation takes from the memo is the one ``IDDict.to_id`` computes."""
    from great_expectations.core.id_dict import IDDict
    from great_expectations.validator.metric_configuration import MetricConfiguration

    seen: list[tuple[Any, Any]] = []
    init = MetricConfiguration.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        seen.append((dict(self.metric_domain_kwargs), self.id.metric_domain_kwargs_id))
        seen.append((dict(self.metric_value_kwargs), self.id.metric_value_kwargs_id))

    monkeypatch.setattr(MetricConfiguration, "__init__", recording)
    validate(validation, "website_products", 3, patched=True)
    assert len(seen) > 1000
    assert all(IDDict(kwargs).to_id() == found for kwargs, found in seen)


def test_an_id_is_computed_once_per_content_inside_the_block(monkeypatch):
    from great_expectations.core import id_dict

    calls: list[Any] = []
    convert = id_dict.convert_to_json_serializable

    def counting(data: Any) -> Any:
        calls.append(data)
        return convert(data)

    monkeypatch.setattr(id_dict, "convert_to_json_serializable", counting)
    kwargs = {"column": "email", "mostly": 1.0, "regex": "^a"}
    with memo.memoized():
        first = id_dict.IDDict(kwargs).to_id()
        assert id_dict.IDDict(dict(kwargs)).to_id() == first
        assert len(calls) == 1
        id_dict.IDDict({**kwargs, "value_set": {1, 2}}).to_id()  # not plain: computed
        assert len(calls) == 2
    assert id_dict.IDDict(kwargs).to_id() == first
    assert len(calls) == 3  # outside the block, as Great Expectations does


def test_a_null_mask_of_the_frame_is_computed_once_and_handed_out_as_a_copy():
    import numpy as np
    import pandas as pd

    text = pd.StringDtype("python", na_value=float("nan"))
    frame = pd.DataFrame({"a": ["x", None, "y"], "b": ["1", "2", None]}).astype(text)
    other = pd.array(["z", None], dtype=text)
    with pandas_null_masks.memoized(frame):
        first = frame["a"].isna().to_numpy()
        mask = frame["a"].array.isna()
        mask[:] = True  # a caller's copy: the next one is unchanged
        assert frame["a"].array.isna().tolist() == [False, True, False]
        assert frame["b"].notnull().tolist() == [True, True, False]
        assert other.isna().tolist() == [False, True]  # not of the frame: computed
        stored = [entry[1] for entry in pandas_null_masks._local.masks.values()]
        assert all(isinstance(m, np.ndarray) for m in stored) and len(stored) == 2
    assert first.tolist() == [False, True, False]
    assert pandas_null_masks._local.masks is None


def test_a_validation_computes_each_null_mask_of_its_frame_once(validation, monkeypatch):
    """Without the memo the metrics compute a text column's null mask about ten times."""
    from pandas._libs import missing

    computed: list[int] = []
    isna_string = missing.isna_string

    def counting(values: Any) -> Any:
        computed.append(len(values))
        return isna_string(values)

    monkeypatch.setattr(missing, "isna_string", counting)
    validate(validation, "website_products", 3)
    without = len(computed)
    computed.clear()
    validate(validation, "website_products", 3, patched=True)
    columns = len(TEMPLATES["website_products"].columns)
    assert without > 5 * columns
    assert len(computed) <= without - 4 * columns
