"""``gx_compat``: every template's suite finds the same results with the patches and without them,
on valid sample files and on files that break every rule; ``unpatched`` puts upstream's code back
and then the patches; on other versions than the proven ones nothing is installed, one warning
is logged and the pipeline validates on Great Expectations as it is. Real suites, real
validations (``Validation.check_files``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from review_ingest.core.merchants import default_merchant
from review_ingest.core.reading import read_file
from review_ingest.core.template_columns import TEMPLATES
from review_ingest.quality import gx_compat
from review_ingest.quality import validation as validation_module
from review_ingest.quality.gx_compat import (
    batch_fingerprint,
    column_domains,
    gate,
    memo,
    pandas_null_masks,
)
from review_ingest.quality.validation import FileRows, Validation
from review_ingest.sources import samples
from tests.unit import test_row_rules

AS_OF = test_row_rules.AS_OF
REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"
#: The files of each run: a template's sample (dated so that it is valid as of ``AS_OF``), the
#: file holding a row per rule (most of them broken), and both in one batch.
RUNS = {"sample": ("sample",), "rules": ("rules",), "both": ("sample", "rules")}


@pytest.fixture(scope="module")
def validation() -> Validation:
    return Validation(docs_dir=None, results_dir=None)


def file_rows(template_id: str, kind: str) -> FileRows:
    """The records of the template's sample or rules file, labelled by ``kind``."""
    if kind == "sample":
        data = samples.dated_copy(template_id, AS_OF).encode("utf-8")
    else:
        data = test_row_rules.DATA[template_id]
    records = read_file(data, TEMPLATES[template_id]).records
    return FileRows(f"import-{kind}", f"{kind}.csv", records)


def check(
    validation: Validation, template_id: str, kinds: tuple[str, ...], monkeypatch: Any
) -> dict[str, Any]:
    """One ``check_files`` of these files: each file's errors as (line, column, code, message),
    the suite's complete result as JSON (before its failing lists are cut) and its batch
    markers."""
    results: list[dict[str, Any]] = []
    cut = validation_module._cut_failing_lists

    def keeping(result: Any) -> None:
        results.append(result.to_json_dict())
        cut(result)

    with monkeypatch.context() as patch:
        patch.setattr(validation_module, "_cut_failing_lists", keeping)
        checks = validation.check_files(
            [file_rows(template_id, kind) for kind in kinds],
            TEMPLATES[template_id],
            default_merchant(template_id),
            AS_OF,
            "run",
        )
    (result,) = results
    markers = result["meta"].pop("batch_markers")
    return {
        "errors": {
            label: [(e.line, e.column, e.code, e.message) for e in found.errors]
            for label, found in checks.items()
        },
        "result": result,
        "markers": sorted(markers),
    }


def installed() -> dict[str, bool]:
    """Whether each patch is installed, by name."""
    return {patch.__name__: patch._patch.installed for patch in gx_compat.PATCHES}


@pytest.mark.parametrize("run", sorted(RUNS))
@pytest.mark.parametrize("template_id", sorted(TEMPLATES))
def test_every_suite_finds_the_same_results_patched_and_unpatched(
    validation, monkeypatch, template_id, run
):
    assert all(installed().values())
    patched = check(validation, template_id, RUNS[run], monkeypatch)
    with gx_compat.unpatched():
        assert not any(installed().values())
        unpatched = check(validation, template_id, RUNS[run], monkeypatch)
    assert all(installed().values())

    assert patched["errors"] == unpatched["errors"]
    assert patched["result"] == unpatched["result"]
    # Only the fingerprint, which the patch turns off, tells them apart.
    assert patched["markers"] == ["ge_load_time"]
    assert unpatched["markers"] == ["ge_load_time", "pandas_data_fingerprint"]
    failed = [r for r in patched["result"]["results"] if not r["success"]]
    if "rules" in RUNS[run]:  # the comparison covers failing rows
        assert len(patched["errors"]["import-rules"]) >= 5
        assert len(failed) >= 5
        assert all(r["result"]["unexpected_index_list"] for r in failed)
    if run == "sample":  # and valid files
        assert patched["errors"] == {"import-sample": []}
        assert failed == []


def upstream_attributes() -> dict[str, Any]:
    """The attributes the patches replace, as they are now."""
    from great_expectations.core.id_dict import IDDict
    from great_expectations.execution_engine import pandas_execution_engine
    from great_expectations.expectations.expectation import Expectation
    from pandas.core.arrays.string_ import StringArray

    return {
        "configuration": vars(Expectation)["configuration"].fget,
        "to_id": vars(IDDict)["to_id"],
        "isna": vars(StringArray)["isna"],
        "get_domain_records": vars(pandas_execution_engine.PandasExecutionEngine)[
            "get_domain_records"
        ],
        "HASH_THRESHOLD": pandas_execution_engine.HASH_THRESHOLD,
    }


def ours(function: Any) -> bool:
    return function.__module__.startswith("review_ingest.quality.gx_compat.")


def test_unpatched_puts_upstream_back_then_the_patches(validation):
    patched = upstream_attributes()
    assert patched.pop("HASH_THRESHOLD") == 0
    assert all(ours(function) for function in patched.values())
    with pytest.raises(RuntimeError), gx_compat.unpatched():
        upstream = upstream_attributes()
        assert upstream.pop("HASH_THRESHOLD") == 1e9
        assert not any(ours(function) for function in upstream.values())
        with gx_compat.validating(None):  # does nothing without the patches
            assert getattr(memo._local, "memo", None) is None
            assert getattr(pandas_null_masks._local, "masks", None) is None
            assert not column_domains._local.on
        raise RuntimeError("a validation failed")
    again = upstream_attributes()
    assert again.pop("HASH_THRESHOLD") == 0
    assert all(ours(function) for function in again.values())


def test_unpatched_takes_out_the_patches_it_is_given(validation):
    with gx_compat.unpatched((memo, pandas_null_masks)):
        assert installed() == {
            batch_fingerprint.__name__: True,
            memo.__name__: False,
            pandas_null_masks.__name__: False,
            column_domains.__name__: True,
        }
    assert all(installed().values())


def test_on_other_versions_nothing_is_installed_one_warning_and_the_same_results(
    validation, monkeypatch, caplog
):
    expected = check(validation, "website", RUNS["both"], monkeypatch)
    other = {**gate.PROVEN, "great_expectations": "1.25.0"}
    caplog.set_level(logging.WARNING, logger=gx_compat.__name__)
    with gx_compat.unpatched(), monkeypatch.context() as patch:
        patch.setattr(gate, "_verdict", None)
        patch.setattr(gx_compat, "_warned", False)
        patch.setattr(gate, "found_versions", lambda: other)
        assert gx_compat.install_all() is False
        assert gx_compat.load() is validation._gx
        assert [p.install() for p in gx_compat.PATCHES] == [False] * len(gx_compat.PATCHES)
        assert not any(installed().values())
        found = check(validation, "website", RUNS["both"], monkeypatch)
    assert all(installed().values())  # the proven versions again: ``unpatched`` put them back

    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    message = warning.getMessage()
    for name in ("lean_import", "batch_fingerprint", "memo", "pandas_null_masks", "column_domains"):
        assert name in message
    assert "great_expectations 1.24.1" in message and "great_expectations 1.25.0" in message
    assert found["errors"] == expected["errors"]
    assert found["result"] == expected["result"]


def test_the_proven_versions_are_the_pins_and_the_installed_ones():
    pins = dict(re.findall(r"^([\w-]+)==(\S+)", REQUIREMENTS.read_text("utf-8"), re.MULTILINE))
    assert {package: pins[package.replace("_", "-")] for package in gate.PROVEN} == gate.PROVEN
    assert gate.found_versions() == gate.PROVEN
    assert gate.proven()
