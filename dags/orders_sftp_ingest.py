"""
### orders_sftp_ingest

Daily at 02:00 UTC, every merchant with an `sftp` block in `include/merchants.yaml` has its
inbox `<root>/orders/` collected: complete files (no `.`/`.tmp`/`.part`/`.filepart` names, older
than `REVIEW_INGEST_MIN_FILE_AGE_SECONDS`) are downloaded, run through the same pipeline as
uploads with source `sftp`, then moved on the server to `orders/processed/` or
`orders/rejected/` with `<file>.report.json` and `<file>.errors.csv` beside them.

- **list_sftp_merchants** reads the merchants file and groups the merchants,
  `REVIEW_INGEST_SFTP_MERCHANTS_PER_TASK` (10) to a task, fewer than 256 tasks in all.
- **collect_merchants** runs once per group (mapped; each task is labelled with its
  merchants): one login per merchant, the small files of the whole group validated together.
  One merchant's unreachable server, wrong credentials or failed file never stops the other
  merchants: their files are processed, then the task fails naming that merchant and file.
  Each success updates the Asset `review_requests` with its counts as the event's extra.
- **build_data_docs_index** rebuilds the Data Docs index once, after every task has built
  its own pages.
- **summarize** logs each file and names the merchants of any task that failed.
- **notify_data_team** runs last, whatever happened (a teardown: the run's state stays the
  other tasks'): one e-mail to `REVIEW_INGEST_ALERT_EMAILS` when files were rejected or tasks
  failed, then the outbox sent through `smtp_default` (each merchant's report on its files was
  queued with the file's import). A file still in an inbox after its merchant's part and older
  than `REVIEW_INGEST_STUCK_MINUTES` is told to the data team once, by `collect_merchants`.

The SFTP connection of each merchant (`sftp.conn_id`) must pin the server's `host_key`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task, teardown

from review_ingest.tasks.assets import REVIEW_REQUESTS_ASSET
from review_ingest.tasks.dag_defaults import task_defaults

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
    def list_sftp_merchants() -> list[list[str]]:
        from review_ingest.tasks import sftp_ingest

        return sftp_ingest.list_merchant_groups()

    @task(
        max_active_tis_per_dagrun=8,
        outlets=[REVIEW_REQUESTS],
        map_index_template="{{ merchants }}",
    )
    def collect_merchants(merchant_ids: list[str], outlet_events=None) -> dict:
        from airflow.sdk import get_current_context

        from review_ingest.store.connections import warehouse_url_in_airflow
        from review_ingest.tasks import assets, sftp_ingest

        get_current_context()["merchants"] = sftp_ingest.task_label(merchant_ids)
        result = sftp_ingest.collect_merchants(list(merchant_ids), warehouse_url_in_airflow())
        outlet_events[REVIEW_REQUESTS].extra = assets.asset_extra(result["files"])
        return result

    @task(trigger_rule="all_done", retries=0)  # it reports; a retry changes nothing
    def summarize(groups: list[list[str]], results: list[dict]) -> dict:
        from review_ingest.tasks import sftp_ingest

        return sftp_ingest.summarize_sftp(list(groups), list(results))

    @task(trigger_rule="all_done")
    def build_data_docs_index(groups: list[list[str]]) -> bool:
        from review_ingest.tasks import docs_index

        return docs_index.build_docs_index(list(groups))

    @teardown
    @task
    def notify_data_team(results: list[dict]) -> dict:
        from review_ingest.tasks import notifications

        return notifications.after_run(results)

    groups = list_sftp_merchants()
    results = collect_merchants.expand(merchant_ids=groups)
    index = build_data_docs_index(groups)
    results >> index
    [index, summarize(groups, results)] >> notify_data_team(results)


orders_sftp_ingest()
