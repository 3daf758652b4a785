"""The Airflow Asset the loading tasks update, and what its events carry.

Imported when the DAG files are parsed: it imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

#: The Airflow Asset the loading tasks update: the warehouse table of review requests.
REVIEW_REQUESTS_ASSET = "review_requests"


def asset_extra(summaries: list[dict[str, Any]], *, dry_run: bool = False) -> dict[str, Any]:
    """What a loading task attaches to its ``review_requests`` asset event: the counts of its
    files and of the requests it created, and the imports that loaded (for a sender or an
    analytics DAG scheduled on the asset)."""
    loaded = [s for s in summaries if s["status"] == "loaded" and not dry_run]
    return {
        "files": len(summaries),
        "loaded": len(loaded),
        "rejected": sum(s["status"] == "rejected" for s in summaries),
        "already_imported": sum(s["status"] == "already_imported" for s in summaries),
        "brand_requests": sum(s["brand_requests"] for s in loaded),
        "product_requests": sum(s["product_requests"] for s in loaded),
        "import_ids": [s["import_id"] for s in loaded],
        "dry_run": dry_run,
    }
