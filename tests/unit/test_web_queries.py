"""The review UI's chart days (review_ingest.web.queries.chart_days): which days a chart shows for
the filters, without a warehouse. The queries themselves: tests/integration/test_web_queries.py."""

from __future__ import annotations

import datetime as dt

import pytest

from review_ingest.web import queries
from review_ingest.web.queries import RequestFilters


@pytest.mark.parametrize(
    ("scheduled_from", "scheduled_to", "first", "count"),
    [
        (None, None, dt.date(2026, 2, 23), queries.MAX_CHART_DAYS),
        (dt.date(2026, 1, 1), None, dt.date(2026, 1, 1), queries.MAX_CHART_DAYS),
        (None, dt.date(2026, 1, 31), dt.date(2026, 1, 1), queries.MAX_CHART_DAYS),
        (dt.date(2026, 1, 1), dt.date(2026, 1, 7), dt.date(2026, 1, 1), 7),
        (dt.date(2026, 1, 1), dt.date(2026, 12, 31), dt.date(2026, 1, 1), queries.MAX_CHART_DAYS),
        (dt.date(2026, 1, 7), dt.date(2026, 1, 1), None, 0),
        (dt.date.max, None, dt.date.max, 1),
        (None, dt.date.min, dt.date.min, 1),
    ],
)
def test_chart_days(
    scheduled_from: dt.date | None, scheduled_to: dt.date | None, first: dt.date | None, count: int
) -> None:
    filters = RequestFilters(scheduled_from=scheduled_from, scheduled_to=scheduled_to)
    days = queries.chart_days(filters, today=dt.date(2026, 3, 10))
    assert len(days) == count
    if days:
        assert days[0] == first
        assert days == [first + dt.timedelta(days=n) for n in range(count)]
