"""
### orders_upload_ingest

Every 10 minutes, every complete order file in `<data>/uploads/<merchant_id>/` is checked,
loaded as review requests, reported on, and moved to `processed/` or `rejected/`.

- **check_configuration** fails, naming merchant and key, when `include/merchants.yaml` is
  wrong; the other merchants' files are processed all the same.
- **list_new_files** splits the ready files into batches, one mapped task each.
- **ingest_batch** runs the pipeline of `review_ingest` on its files (one warehouse transaction
  per file). A rejected file is a normal outcome; the task fails only when a file could not be
  processed, and says which merchant and file. Each success updates the Asset
  `review_requests` with its counts (files, loaded, requests, import ids) as the event's extra.
- **build_data_docs_index** rebuilds the Data Docs index once, after every batch has built
  its own pages (the index reads up to 500 stored results: once per run, not per batch).
- **summarize** logs one line per file and the run's totals, and fails (after the others
  are done) naming the files of any batch that failed.
- **notify_data_team** runs last, whatever happened (a teardown: the run's state stays the
  other tasks'): one e-mail to `REVIEW_INGEST_ALERT_EMAILS` when files were rejected or tasks
  failed, then the outbox sent through `smtp_default` (each merchant's report on its files
  was queued with the file's import).

Reports: `<data>/reports/<merchant_id>/<import_id>/report.html`; Data Docs: `<data>/data_docs/`.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Asset, dag, task, teardown

from review_ingest.tasks.assets import REVIEW_REQUESTS_ASSET
from review_ingest.tasks.dag_defaults import task_defaults

POOL = os.environ.get("REVIEW_INGEST_WAREHOUSE_POOL", "default_pool")
REVIEW_REQUESTS = Asset(REVIEW_REQUESTS_ASSET)


@dag(
    schedule="*/10 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["review-ingest", "upload"],
    default_args=task_defaults(),
    doc_md=__doc__,
)
def orders_upload_ingest():
    @task
    def check_configuration() -> dict:
        from review_ingest.tasks import upload_ingest

        return upload_ingest.check_configuration()

    @task
    def list_new_files() -> list[list[dict]]:
        from review_ingest.tasks import upload_ingest

        return upload_ingest.plan_upload_batches()

    @task(pool=POOL, max_active_tis_per_dagrun=8, outlets=[REVIEW_REQUESTS])
    def ingest_batch(batch: list[dict], outlet_events=None) -> list[dict]:
        from review_ingest.store.connections import warehouse_url_in_airflow
        from review_ingest.tasks import assets, upload_ingest

        results = upload_ingest.ingest_uploads(batch, warehouse_url_in_airflow())
        outlet_events[REVIEW_REQUESTS].extra = assets.asset_extra(results)
        return results

    @task(trigger_rule="all_done", retries=0)  # it reports; a retry changes nothing
    def summarize(batches: list[list[dict]], results: list[list[dict]]) -> dict:
        from review_ingest.tasks import upload_ingest

        return upload_ingest.summarize_uploads(list(batches), list(results))

    @task(trigger_rule="all_done")
    def build_data_docs_index(batches: list[list[dict]]) -> bool:
        from review_ingest.tasks import docs_index

        return docs_index.build_docs_index(list(batches))

    @teardown
    @task
    def notify_data_team(results: list[list[dict]]) -> dict:
        from review_ingest.tasks import notifications

        return notifications.after_run(results)

    configuration = check_configuration()
    batches = list_new_files()
    results = ingest_batch.expand(batch=batches)
    index = build_data_docs_index(batches)
    results >> index
    [configuration, index, summarize(batches, results)] >> notify_data_team(results)


orders_upload_ingest()
