"""The review UI in Airflow (contract sections 10 and 12): mounts the app of
``review_ingest.web`` on the API server at ``/review-ingest`` and adds "Review imports",
"Review requests" and "Import orders" to Airflow's navigation. Everything else is in the
package."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from review_ingest.web.lazy import BuiltOnFirstUse


class ReviewIngestUiPlugin(AirflowPlugin):
    name = "review_ingest_ui"
    # Built on the first request: Airflow loads plugins in task processes too (see web/lazy.py).
    fastapi_apps = [
        {
            "app": BuiltOnFirstUse("review_ingest.web.app:create_app"),
            "url_prefix": "/review-ingest",
            "name": "Review ingest",
        }
    ]
    # Top-level entries of Airflow's navigation; with a url_route, Airflow shows the page inside
    # its own layout (at /plugin/<url_route>, in a frame) rather than in a new tab.
    external_views = [
        {
            "name": "Review imports",
            "href": "review-ingest/imports",
            "url_route": "review-imports",
            "destination": "nav",
            "nav_top_level": True,
            "icon": "review-ingest/static/imports.svg",
        },
        {
            "name": "Review requests",
            "href": "review-ingest/requests",
            "url_route": "review-requests",
            "destination": "nav",
            "nav_top_level": True,
            "icon": "review-ingest/static/requests.svg",
        },
        {
            "name": "Import orders",
            "href": "review-ingest/import",
            "url_route": "import-orders",
            "destination": "nav",
            "nav_top_level": True,
            "icon": "review-ingest/static/import.svg",
        },
    ]
