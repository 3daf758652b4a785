"""The Great Expectations suite of each template, as the JSON saved in ``include/expectations/``.

The saved files are what runs; this module is how they are written
(``python -m review_ingest.quality.suites``), and a test keeps the two in step. Each expectation's
``meta`` names the contract's error code and the file's column, so that a failed expectation
becomes row errors without any other table.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from review_ingest.core import rules
from review_ingest.core.template_columns import COLUMNS, TEMPLATES, Template
from review_ingest.settings import EXPECTATIONS_DIR

#: Columns the validation adds beside the file's own, for what a regex cannot judge.
DERIVED = ("email__valid", "order_date__valid", "order_date__day")

_FORMATS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "delay": ("invalid_delay", "expect_column_values_to_match_regex", {"regex": rules.DELAY}),
    "delay_product": (
        "invalid_delay",
        "expect_column_values_to_match_regex",
        {"regex": rules.DELAY},
    ),
    "url_product": ("invalid_url", "expect_column_values_to_match_regex", {"regex": rules.URL}),
    "url_image_product": (
        "invalid_url",
        "expect_column_values_to_match_regex",
        {"regex": rules.URL},
    ),
    "gtin_ean": ("invalid_gtin", "expect_column_values_to_match_regex", {"regex": rules.GTIN}),
    "language": (
        "invalid_language",
        "expect_column_values_to_match_regex",
        {"regex": rules.LANGUAGE},
    ),
}


def _expectation(kind: str, code: str, column: str, **kwargs: Any) -> dict[str, Any]:
    target = kwargs.pop("target", column)
    return {
        "type": kind,
        "kwargs": {"column": target, **kwargs},
        "meta": {"code": code, "column": column},
    }


def _column_expectations(template: Template, column: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if column in template.mandatory:
        found.append(_expectation("expect_column_values_to_not_be_null", "missing_value", column))
    limit = COLUMNS[column].max_length
    if limit:
        found.append(
            _expectation(
                "expect_column_value_lengths_to_be_between",
                "value_too_long",
                column,
                max_value=limit,
            )
        )
    control = rules.CONTROL_WITH_TAB if column == "order_ref" else rules.CONTROL
    found.append(
        _expectation(
            "expect_column_values_to_not_match_regex",
            "invalid_characters",
            column,
            regex=control,
        )
    )
    found.extend(_format_expectations(column))
    return found


def _format_expectations(column: str) -> list[dict[str, Any]]:
    if column == "email":
        return [
            _expectation(
                "expect_column_values_to_be_in_set",
                "invalid_email",
                "email",
                target="email__valid",
                value_set=[True],
            )
        ]
    if column == "order_date":
        return [
            _expectation(
                "expect_column_values_to_be_in_set",
                "invalid_date",
                "order_date",
                target="order_date__valid",
                value_set=[True],
            ),
            _expectation(
                "expect_column_values_to_be_between",
                "future_date",
                "order_date",
                target="order_date__day",
                max_value={"$PARAMETER": "as_of_day"},
            ),
            _expectation(
                "expect_column_values_to_be_between",
                "order_too_old",
                "order_date",
                target="order_date__day",
                min_value={"$PARAMETER": "oldest_day"},
            ),
        ]
    if column in _FORMATS:
        code, kind, kwargs = _FORMATS[column]
        return [_expectation(kind, code, column, **kwargs)]
    return []


def suite_dict(template: Template) -> dict[str, Any]:
    """The suite of one template: a table check, then every column's checks."""
    expectations: list[dict[str, Any]] = [
        {
            "type": "expect_table_columns_to_match_set",
            "kwargs": {"column_set": [*template.columns, *DERIVED], "exact_match": True},
            "meta": {"code": "header", "column": None},
        }
    ]
    for column in template.columns:
        expectations.extend(_column_expectations(template, column))
    return {
        "name": template.id,
        "expectations": expectations,
        "meta": {
            "contract": "shared/spec/IMPORT_CONTRACT.md sections 1 and 3",
            "notes": "Written by `python -m review_ingest.quality.suites`. Suite parameters: "
            "as_of_day and oldest_day are proleptic ordinals of the import's date and of the "
            "oldest date accepted; *__valid and *__day columns are derived by "
            "review_ingest.quality.validation.",
        },
    }


def suite_path(template_id: str, directory: Path = EXPECTATIONS_DIR) -> Path:
    return directory / f"{template_id}.json"


@functools.cache
def suite_sha256(template_id: str) -> str:
    """The SHA-256 of a template's saved suite: which rules judged a file (the audit trail).
    Once per process: the saved suites change with a deployment only."""
    return hashlib.sha256(suite_path(template_id).read_bytes()).hexdigest()


def write_all(directory: Path = EXPECTATIONS_DIR) -> list[Path]:
    written = []
    for template in TEMPLATES.values():
        path = suite_path(template.id, directory)
        path.write_text(json.dumps(suite_dict(template), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else EXPECTATIONS_DIR):
        print(written_path)
