"""
### review_notifications

Every 5 minutes, the e-mails waiting in the warehouse's `outbox` are sent through Airflow's SMTP
connection `smtp_default`, and files left waiting are told to the data team.

- **check_stuck_files**: each complete file of `<data>/uploads/<merchant_id>/` last modified
  more than `REVIEW_INGEST_STUCK_MINUTES` (60) ago gets one alert to
  `REVIEW_INGEST_ALERT_EMAILS`, once per file and modification time (SFTP inboxes are checked
  at the end of each `orders_sftp_ingest` run).
- **flush_outbox** sends every message whose next attempt is due: merchants' reports on their
  files, the runs' digests, these alerts. A message the server does not take waits (5 minutes,
  doubling, at most an hour) and is never lost; the task fails only when `smtp_default` is not
  defined while messages wait.

Every DAG that processes files also flushes the outbox in its last task, `notify_data_team`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from review_ingest.tasks.dag_defaults import task_defaults


@dag(
    schedule="*/5 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["review-ingest", "notifications"],
    default_args=task_defaults(),
    doc_md=__doc__,
)
def review_notifications():
    @task
    def check_stuck_files() -> int:
        from review_ingest.tasks import notifications

        return notifications.check_stuck_uploads()

    @task(trigger_rule="all_done")  # the waiting messages go out whatever the check did
    def flush_outbox() -> dict:
        from review_ingest.tasks import notifications

        return notifications.flush()

    check_stuck_files() >> flush_outbox()


review_notifications()
