"""The saved Great Expectations suites are the ones ``quality.suites`` writes, and every
rule of the contract that a suite holds is in each template's suite."""

from __future__ import annotations

import json
import re
import string

import pytest

from review_ingest.core.rules import LANGUAGE, LANGUAGES
from review_ingest.core.template_columns import TEMPLATES
from review_ingest.quality.suites import suite_dict, suite_path


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_saved_suite_is_up_to_date(template):
    saved = json.loads(suite_path(template).read_text(encoding="utf-8"))
    assert saved == suite_dict(TEMPLATES[template]), (
        "include/expectations is stale: run .venv/bin/python -m review_ingest.quality.suites"
    )


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_column_has_its_checks(template):
    t = TEMPLATES[template]
    codes = {(e["meta"]["column"], e["meta"]["code"]) for e in suite_dict(t)["expectations"]}
    for column in t.mandatory:
        assert (column, "missing_value") in codes
    for column in t.columns:
        assert (column, "invalid_characters") in codes
    assert ("email", "invalid_email") in codes
    assert {("order_date", c) for c in ("invalid_date", "future_date", "order_too_old")} <= codes
    assert ("delay", "invalid_delay") in codes and ("language", "invalid_language") in codes
    if t.with_products:
        assert {
            ("url_product", "invalid_url"),
            ("gtin_ean", "invalid_gtin"),
            ("delay_product", "invalid_delay"),
        } <= codes


def test_the_language_regex_is_the_set_of_codes_in_any_case():
    """The suite's regex accepts a code's four spellings and nothing else: no other letters
    that a case-insensitive match would fold to ASCII (Kelvin sign, long s, dotless i)."""
    letters = string.ascii_letters + "\u212a\u017f\u0131\u0130"
    for a in letters:
        for b in letters:
            value = a + b
            expected = value.isascii() and value.lower() in LANGUAGES
            assert (re.search(LANGUAGE, value) is not None) == expected, value
    for value in ("fr\n", "\nfr", " fr", "fr ", "fra", "f", "", "fr|en"):
        assert re.search(LANGUAGE, value) is None, value
