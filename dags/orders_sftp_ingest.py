"""
### orders_sftp_ingest

Daily at 02:00 UTC, every merchant with an `sftp` block in `include/merchants.yaml` has its
inbox `<root>/orders/` collected: complete files (no `.`/`.tmp`/`.part`/`.filepart` names, older
than `REVIEW_INGEST_MIN_FILE_AGE_SECONDS`) are downloaded, run through the same pipeline as
uploads with source `sftp`, then moved on the server to `orders/processed/` or
`orders/rejected/` with `<file>.report.json` and `<file>.errors.csv` beside them.

- **list_sftp_merchants** reads the merchants file.
- **collect_merchant** runs once per merchant (mapped): one merchant's unreachable server or
  wrong credentials fails that merchant's task, never the others'. Each success updates the
  Asset `review_requests` with its counts as the event's extra.
- **build_data_docs_index** rebuilds the Data Docs index once, after every merchant's task
  has built its own pages.
- **summarize** logs each file and names the merchants whose part failed.

The SFTP connection of each merchant (`sftp.conn_id`) must pin the server's `host_key`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task

from review_ingest.errors import task_defaults
from review_ingest.runs import REVIEW_REQUESTS_ASSET

REVIEW_REQUESTS = Asset(REVIEW_REQUESTS_ASSET)


@dag(
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["review-ingest", "sftp"],
    default_args=task_defaults(),
    doc_md=__doc__,
)
def orders_sftp_ingest():
    @task
    def list_sftp_merchants() -> list[str]:
        from review_ingest import sftp_pickup

        return sftp_pickup.sftp_merchants()

    @task(max_active_tis_per_dagrun=8, outlets=[REVIEW_REQUESTS])
    def collect_merchant(merchant_id: str, outlet_events=None) -> dict:
        from review_ingest import runs, sftp_pickup
        from review_ingest.connections import warehouse_url_in_airflow

        result = sftp_pickup.collect_merchant(merchant_id, warehouse_url_in_airflow())
        outlet_events[REVIEW_REQUESTS].extra = runs.asset_extra(result["files"])
        return result

    @task(trigger_rule="all_done", retries=0)  # it reports; a retry changes nothing
    def summarize(merchant_ids: list[str], results: list[dict]) -> dict:
        from review_ingest import sftp_pickup

        return sftp_pickup.log_summary(list(merchant_ids), list(results))

    @task(trigger_rule="all_done")
    def build_data_docs_index(merchant_ids: list[str]) -> bool:
        from review_ingest import runs

        return runs.build_docs_index(list(merchant_ids))

    merchants = list_sftp_merchants()
    results = collect_merchant.expand(merchant_id=merchants)
    results >> build_data_docs_index(merchants)
    summarize(merchants, results)


orders_sftp_ingest()
