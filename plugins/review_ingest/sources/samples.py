"""The sample files of ``include/templates/``, and copies of them dated for today's demo.

The samples hold fixed dates (they pass their checks as of their latest order date); the demo
shifts every date by the same number of days so that the latest one is yesterday, keeping each
date's format, and so always loads.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from review_ingest.settings import INCLUDE_DIR

#: Dates in every accepted form, ISO date-times included ("2026-11-20T09:15"): digits may not
#: touch them, letters may.
_DATES = re.compile(
    r"(?<!\d)(\d{2})([-/])(\d{2})\2(\d{4})(?!\d)|(?<!\d)(\d{4})([-/])(\d{2})\6(\d{2})(?!\d)"
)


def sample_path(template_id: str) -> Path:
    return INCLUDE_DIR / "templates" / f"{template_id}.csv"


def _date_of(match: re.Match[str]) -> dt.date:
    if match.group(1):
        return dt.date(int(match.group(4)), int(match.group(3)), int(match.group(1)))
    return dt.date(int(match.group(5)), int(match.group(7)), int(match.group(8)))


def latest_date(text: str) -> dt.date:
    return max(_date_of(m) for m in _DATES.finditer(text))


def shift_dates(text: str, days: int) -> str:
    """Every date of the text moved by ``days``, each in its own format."""

    def shifted(match: re.Match[str]) -> str:
        day = _date_of(match) + dt.timedelta(days=days)
        if match.group(1):
            sep = match.group(2)
            return f"{day.day:02d}{sep}{day.month:02d}{sep}{day.year:04d}"
        sep = match.group(6)
        return f"{day.year:04d}{sep}{day.month:02d}{sep}{day.day:02d}"

    return _DATES.sub(shifted, text)


def dated_copy(template_id: str, latest: dt.date) -> str:
    """The sample of a template with its latest order date moved to ``latest``."""
    text = sample_path(template_id).read_text(encoding="utf-8")
    return shift_dates(text, (latest - latest_date(text)).days)
