"""
### review_data_retention

Daily at 03:00 UTC, personal data older than `REVIEW_INGEST_RETENTION_DAYS` (default 365)
goes (contract section 11):

- **start** fixes the run's cutoff (a wrong setting fails here, at once).
- **purge_requests**: `email`, `firstname` and `lastname` of requests scheduled before the
  cutoff become null, in batches of one transaction each (an interrupted run is run again); the
  rows and their `order_ref` stay, so existing proofs are still recognised.
- **purge_files**: order files under `<data>/processed/` and `<data>/rejected/` last modified
  before the cutoff are deleted, every merchant's folder tried.
- **purge_staging**: uploads from the browser staged in `<data>/staging/` longer than
  `REVIEW_INGEST_STAGING_HOURS` (default 24) and never imported are deleted (contract section
  12).
- **purge_data_docs**: Great Expectations' validation results (`<data>/gx/`) and Data Docs
  pages older than `REVIEW_INGEST_DOCS_RETENTION_DAYS` (default 90) are deleted, the reports
  that linked to a deleted page say so instead, and the Data Docs index is built again.
- **purge_sftp** runs once per group of SFTP merchants (mapped, grouped as `orders_sftp_ingest`
  groups them): the order files of `orders/processed/` and `orders/rejected/` on each server;
  one merchant's failure never stops the others, and fails the task naming it.
- **summarize** logs the totals, records them in the audit trail (`audit_log`, actor
  `dag:review_data_retention`) and fails, once the others are done, naming what failed.
- **notify_data_team** runs last, whatever happened (a teardown: the run's state stays the
  other tasks'): one e-mail to `REVIEW_INGEST_ALERT_EMAILS` naming the tasks that failed, if
  any, then the outbox sent through `smtp_default`.

`imports`, `import_errors` and the reports stay: they hold no e-mail or name.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task, teardown

from review_ingest.tasks.dag_defaults import task_defaults


@dag(
    schedule="0 3 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["review-ingest", "personal-data"],
    default_args=task_defaults(),
    doc_md=__doc__,
)
def review_data_retention():
    @task
    def start() -> str:
        from review_ingest.tasks import data_retention

        return data_retention.start()

    @task
    def purge_requests(before: str) -> int:
        from review_ingest.store.connections import warehouse_url_in_airflow
        from review_ingest.tasks import data_retention

        return data_retention.requests_task(before, warehouse_url_in_airflow())

    @task
    def purge_files(before: str) -> dict:
        from review_ingest.tasks import data_retention

        return data_retention.files_task(before)

    @task
    def purge_staging() -> int:
        from review_ingest.tasks import data_retention

        return data_retention.staging_task()

    @task
    def purge_data_docs() -> dict:
        from review_ingest.tasks import data_retention

        return data_retention.docs_task()

    @task
    def list_sftp_merchants() -> list[list[str]]:
        from review_ingest.tasks import sftp_ingest

        return sftp_ingest.list_merchant_groups()

    @task(max_active_tis_per_dagrun=8, map_index_template="{{ merchants }}")
    def purge_sftp(merchant_ids: list[str], before: str) -> dict:
        from airflow.sdk import get_current_context

        from review_ingest.tasks import data_retention, sftp_ingest

        get_current_context()["merchants"] = sftp_ingest.task_label(merchant_ids)
        return data_retention.sftp_task(list(merchant_ids), before)

    @task(trigger_rule="all_done", retries=0)  # it reports; a retry changes nothing
    def summarize(
        before: str, requests, files, groups: list[list[str]], sftp_deleted, staging, docs
    ) -> dict:
        from review_ingest.store.connections import warehouse_url_in_airflow
        from review_ingest.tasks import data_retention

        return data_retention.summarize_purge(
            before,
            requests,
            files,
            list(groups),
            list(sftp_deleted),
            staging=staging,
            warehouse_url=warehouse_url_in_airflow(),
            docs=docs,
        )

    @teardown
    @task
    def notify_data_team() -> dict:
        from review_ingest.tasks import notifications

        return notifications.after_run()

    before = start()
    groups = list_sftp_merchants()
    summary = summarize(
        before,
        purge_requests(before),
        purge_files(before),
        groups,
        purge_sftp.partial(before=before).expand(merchant_ids=groups),
        purge_staging(),
        purge_data_docs(),
    )
    summary >> notify_data_team()


review_data_retention()
