"""The task of ``review_request_events``: the mailer's event files loaded (contract section 13).

The task returns a small summary for XCom; each file's report is in ``<data>/events/reports/``.
"""

from __future__ import annotations

import logging
from typing import Any

from review_ingest import settings
from review_ingest.pipeline import events

log = logging.getLogger(__name__)


def load_event_files(warehouse_url: str) -> dict[str, Any]:
    """Load, report and move every complete event file (and those a killed run left); fails,
    once the others are done, naming the files that could not be processed."""
    data_dir = settings.data_dir()
    results = events.process_incoming(data_dir, warehouse_url, settings.min_file_age_seconds())
    summary = {
        "files": len(results),
        "processed": sum(r["status"] == "processed" for r in results),
        "rejected": sum(r["status"] == "rejected" for r in results),
        "events_loaded": sum(r["loaded"] for r in results),
        "skipped_duplicates": sum(r["skipped_duplicates"] for r in results),
        "error_lines": sum(r["error_lines"] for r in results),
        "reports": [r["report"] for r in results],
    }
    log.info(
        "run totals: %s (reports in %s)",
        {k: v for k, v in summary.items() if k != "reports"},
        events.events_dir(data_dir) / "reports",
    )
    return summary
