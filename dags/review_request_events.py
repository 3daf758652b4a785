"""
### review_request_events

Every 15 minutes, the mailer's event files (contract section 13) are loaded: each complete file
of `<data>/events/incoming/` (JSON Lines, one delivery event a line).

- **load_event_files** claims each file, loads its events in one warehouse transaction with its
  report (an event already loaded is skipped: a file delivered twice changes nothing), writes
  the report `<data>/events/reports/<file name>.json` and moves the file to
  `<data>/events/processed/`, or to `rejected/` when not one line could be read. Lines in error
  are counted and reported by line number; the others load. The task fails, after the other
  files, naming a file that could not be processed; a run killed on the way is finished by the
  next one, each event loaded once.
- **notify_data_team** runs last, whatever happened (a teardown: the run's state stays the
  loader's): one e-mail to `REVIEW_INGEST_ALERT_EMAILS` when files were rejected or the task
  failed, then the outbox sent through `smtp_default`.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag, task, teardown

from review_ingest.tasks.dag_defaults import task_defaults

POOL = os.environ.get("REVIEW_INGEST_WAREHOUSE_POOL", "default_pool")


@dag(
    schedule="*/15 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["review-ingest", "delivery"],
    default_args=task_defaults(),
    doc_md=__doc__,
)
def review_request_events():
    @task(pool=POOL)
    def load_event_files() -> dict:
        from review_ingest.store.connections import warehouse_url_in_airflow
        from review_ingest.tasks import request_events

        return request_events.load_event_files(warehouse_url_in_airflow())

    @teardown
    @task
    def notify_data_team(summary: dict) -> dict:
        from review_ingest.tasks import notifications

        return notifications.after_run(summary)

    summary = load_event_files()
    summary >> notify_data_team(summary)


review_request_events()
