"""The sample files of include/templates/ (contract section 1) and their dated copies."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from zoneinfo import ZoneInfo

import pytest

from review_ingest.core import rules
from review_ingest.core.template_columns import TEMPLATES
from review_ingest.sources.samples import dated_copy, sample_path

PARIS = ZoneInfo("Europe/Paris")


def rows_of(text: str) -> list[dict[str, str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";")
    header = [h.strip().removesuffix("*").strip().lower() for h in next(reader)]
    return [dict(zip(header, row, strict=True)) for row in reader if any(v.strip() for v in row)]


def order_days(text: str) -> list[dt.date]:
    """The calendar day (Europe/Paris) of each row's order_date."""
    days = []
    for row in rows_of(text):
        moment = rules.parse_order_date(row["order_date"].strip(), PARIS)
        assert moment is not None, row["order_date"]
        days.append(moment.date())
    return days


def shape(value: str) -> str:
    return re.sub(r"\d", "9", value)


@pytest.fixture(scope="module")
def ingest(tmp_path_factory):
    from review_ingest.pipeline.ingest import Ingest

    return Ingest(data_dir=tmp_path_factory.mktemp("data"), data_docs=False)


def _assert_clean(outcome) -> None:
    rec = outcome.record
    assert outcome.rejection is None, outcome.rejection
    assert [(e.line, e.column, e.code, e.message) for e in outcome.errors] == []
    assert outcome.duplicates == []
    assert rec.status == "accepted"
    assert rec.total_rows == rec.valid_rows > 0


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_the_sample_passes_its_own_template_as_of_its_latest_order_date(ingest, template):
    data = sample_path(template).read_bytes()
    latest = max(order_days(data.decode("utf-8")))
    outcome = ingest.check(data, f"{template}.csv", template, as_of=latest)
    _assert_clean(outcome)
    assert outcome.record.brand_requests >= 1
    if TEMPLATES[template].with_products:
        assert outcome.record.product_requests == outcome.record.valid_rows


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_the_sample_header_names_every_column_of_its_template(template):
    header = sample_path(template).read_text("utf-8").splitlines()[0].split(";")
    names = [h.strip().removesuffix("*").lower() for h in header]
    assert sorted(names) == sorted(TEMPLATES[template].columns)
    starred = {h.strip().removesuffix("*").lower() for h in header if h.strip().endswith("*")}
    assert starred == set(TEMPLATES[template].mandatory)


@pytest.mark.parametrize("template", list(TEMPLATES))
@pytest.mark.parametrize("day", [dt.date(2027, 6, 1), dt.date(2026, 9, 15)])
def test_dated_copy_moves_every_order_date_by_the_same_days_keeping_formats(template, day):
    """ISO date-times included (2026-11-20T09:15:00+01:00 was once left behind)."""
    original = sample_path(template).read_text("utf-8")
    copy = dated_copy(template, day)
    before, after = rows_of(original), rows_of(copy)
    shift = day - max(order_days(original))
    assert max(order_days(copy)) == day
    assert [d + shift for d in order_days(original)] == order_days(copy)
    assert [shape(r["order_date"]) for r in before] == [shape(r["order_date"]) for r in after]
    # nothing but the dates changes
    for old, new in zip(before, after, strict=True):
        assert {k: v for k, v in old.items() if k != "order_date"} == {
            k: v for k, v in new.items() if k != "order_date"
        }


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_a_dated_copy_passes_its_check_as_of_that_day(ingest, template):
    day = dt.date(2027, 6, 1)
    outcome = ingest.check(dated_copy(template, day).encode(), f"{template}.csv", template, day)
    _assert_clean(outcome)
