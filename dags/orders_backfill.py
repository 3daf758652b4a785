"""
### orders_backfill

Manual only: a one-time import of one merchant's file, for example the last three months of
orders. It takes `<data>/uploads/<merchant_id>/<file>` (or `<root>/orders/<file>` on the
merchant's SFTP server) and touches no other file. Loaded, the import is recorded with source
`backfill` and the file moves like any other.

The task updates the Asset `review_requests` with its counts (a dry run says so and counts
no request). A file that loads (or is rejected) has its report e-mailed to the merchant's
`notify` list; **notify_data_team** runs last, whatever happened (a teardown: the run's state
stays the import's), e-mails `REVIEW_INGEST_ALERT_EMAILS` when the file was rejected or the
import failed, and sends the outbox through `smtp_default`.

Params: `merchant_id`, `file`, `source` (`upload` or `sftp`), `dry_run` (check and report, load
nothing, move nothing: on by default), `send_now` (treat every delay as 0).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task, teardown

from review_ingest.tasks.assets import REVIEW_REQUESTS_ASSET
from review_ingest.tasks.dag_defaults import task_defaults

REVIEW_REQUESTS = Asset(REVIEW_REQUESTS_ASSET)


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["review-ingest", "backfill"],
    default_args=task_defaults(),
    doc_md=__doc__,
    params={
        "merchant_id": Param(
            "",
            type="string",
            title="Merchant id",
            description="As in include/merchants.yaml",
            minLength=1,
        ),
        "file": Param(
            "",
            type="string",
            title="File name",
            description="The bare name of the file in the merchant's folder",
            minLength=1,
        ),
        "source": Param(
            "upload",
            type="string",
            enum=["upload", "sftp"],
            title="Source",
            description="upload: <data>/uploads/<merchant_id>/; "
            "sftp: <root>/orders/ on the merchant's SFTP server",
        ),
        "dry_run": Param(
            True,
            type="boolean",
            title="Dry run",
            description="Check and report only: load nothing, move nothing",
        ),
        "send_now": Param(
            False,
            type="boolean",
            title="Send now",
            description="Treat every delay and delay_product as 0",
        ),
    },
)
def orders_backfill():
    @task(outlets=[REVIEW_REQUESTS])
    def import_backfill_file() -> dict:
        from review_ingest.store.connections import warehouse_url_in_airflow
        from review_ingest.tasks import assets, backfill

        context = get_current_context()
        result = backfill.import_backfill_file(dict(context["params"]), warehouse_url_in_airflow())
        extra = assets.asset_extra([result], dry_run=bool(context["params"].get("dry_run")))
        context["outlet_events"][REVIEW_REQUESTS].extra = extra
        return result

    @teardown
    @task
    def notify_data_team(result: dict) -> dict:
        from review_ingest.tasks import notifications

        return notifications.after_run(result)

    result = import_backfill_file()
    result >> notify_data_team(result)


orders_backfill()
