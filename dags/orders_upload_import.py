"""
### orders_upload_import

"Import data" of the review UI's import page (contract section 12): each run imports one upload
from the browser, the bytes that were checked and kept in `<data>/staging/<merchant_id>/
<upload_id>/`, through the same pipeline as any upload (claim, suites, warehouse, reports, Data
Docs), with source `upload`; the file then moves to `processed/` or `rejected/`.

Triggered by the review UI only (Param `upload_id`), never scheduled. Unpaused at creation: a
run of a paused DAG waits in the queue, and "Import data" must start at once. Runs of different
uploads go side by side; two runs of one upload import it once (the staged file is claimed by a
rename, with the import id "Import data" chose).

- **import_upload** fails at once, without retries, for an unknown upload, one never sent to
  import, or bytes that are not the ones checked; a transient fault (the warehouse down) is
  retried. Its success updates the Asset `review_requests` with its counts.
- **notify_data_team** runs last, whatever happened (a teardown: the run's state stays the
  import's): one e-mail to `REVIEW_INGEST_ALERT_EMAILS` when the file was rejected or the
  import failed, then the outbox sent through `smtp_default` (the merchant's report on the file
  was queued with its import).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task, teardown

from review_ingest.tasks.assets import REVIEW_REQUESTS_ASSET
from review_ingest.tasks.dag_defaults import task_defaults

POOL = os.environ.get("REVIEW_INGEST_WAREHOUSE_POOL", "default_pool")
REVIEW_REQUESTS = Asset(REVIEW_REQUESTS_ASSET)


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=16,
    tags=["review-ingest", "upload"],
    default_args=task_defaults(),
    doc_md=__doc__,
    params={
        "upload_id": Param(
            "",
            type="string",
            title="Upload id",
            description='Set by the review UI\'s "Import data"',
            minLength=1,
        ),
    },
)
def orders_upload_import():
    @task(pool=POOL, outlets=[REVIEW_REQUESTS])
    def import_upload() -> dict:
        from review_ingest.store.connections import warehouse_url_in_airflow
        from review_ingest.tasks import assets, upload_import

        context = get_current_context()
        ti = context["ti"]
        result = upload_import.import_upload(
            str(context["params"]["upload_id"]),
            warehouse_url_in_airflow(),
            last_try=ti.try_number > ti.max_tries,
        )
        context["outlet_events"][REVIEW_REQUESTS].extra = assets.asset_extra([result])
        return result

    @teardown
    @task
    def notify_data_team(result: dict) -> dict:
        from review_ingest.tasks import notifications

        return notifications.after_run(result)

    result = import_upload()
    result >> notify_data_team(result)


orders_upload_import()
