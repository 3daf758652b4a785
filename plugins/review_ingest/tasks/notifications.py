"""The notification tasks: the data team's digest of a DAG run (the last task of every DAG
that processes files), files left waiting, and the outbox sent through Airflow's SMTP
connection ``smtp_default``.

The digest is a teardown task: it runs when every other task is done, whatever their outcome,
reads the run's task states from Airflow, and does not change the run's own state. It and the
flush go through the ``outbox``, so that a message waits there while the SMTP server is down
(Airflow's ``SmtpNotifier`` would send at once, or lose the message). Airflow is imported
inside the functions that read the run or the connection; the others take plain values.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from review_ingest import settings
from review_ingest.errors import ConfigError, describe
from review_ingest.notify import messages, outbox, sending, stuck
from review_ingest.notify.messages import FailedTask

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from review_ingest.pipeline.sftp_inbox import Inbox

log = logging.getLogger(__name__)

SMTP_CONN_ID = "smtp_default"
#: Task states that make a run worth a digest.
FAILED_STATES = frozenset({"failed", "upstream_failed"})


def smtp_settings(conn_id: str = SMTP_CONN_ID) -> sending.SmtpSettings:
    """Airflow's SMTP connection as plain values; ConfigError when it is not defined (the
    messages wait in the outbox until it is)."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        raise ConfigError(
            f"no Airflow connection {conn_id!r} (AIRFLOW_CONN_{conn_id.upper()}): the e-mails "
            "wait in the outbox until it is defined"
        ) from None
    return sending.settings_from_connection(
        conn.host, conn.port, conn.login, conn.password, conn.extra_dejson
    )


def warehouse_engine() -> Engine:
    """The warehouse of the outbox (``review_warehouse``), migrated."""
    from review_ingest.store import warehouse
    from review_ingest.store.connections import warehouse_url_in_airflow

    engine = warehouse.engine_for(warehouse_url_in_airflow())
    warehouse.migrate(engine)
    return engine


def after_run(results: Any = None) -> dict[str, Any]:
    """The teardown of a DAG run that processes files: a digest to the data team when the run
    had rejected files or tasks that did not succeed (``results``: what its file tasks
    returned), then the outbox flushed (this run's merchant reports among its messages)."""
    from airflow.sdk import get_current_context

    ti = get_current_context()["ti"]
    failed = failed_tasks(ti.get_task_breadcrumbs(ti.dag_id, ti.run_id), ti.task_id)
    engine = warehouse_engine()
    now = dt.datetime.now(dt.UTC)
    try:
        queued = queue_digest(engine, ti.dag_id, ti.run_id, rejected_files(results), failed, now)
    except ConfigError:  # REVIEW_INGEST_ALERT_EMAILS is wrong: the merchants' mails go anyway
        flush_outbox(engine)
        raise
    return {"digest_queued": queued, "failed_tasks": len(failed), **flush_outbox(engine)}


def failed_tasks(breadcrumbs: Iterator[Mapping[str, Any]], own_task_id: str) -> list[FailedTask]:
    """The run's task instances that failed, or did not run because an upstream failed."""
    return [
        FailedTask(crumb["task_id"], int(crumb.get("map_index", -1)), str(crumb["state"]))
        for crumb in breadcrumbs
        if crumb["task_id"] != own_task_id and str(crumb["state"]) in FAILED_STATES
    ]


def rejected_files(results: Any) -> list[dict[str, Any]]:
    """The rejected files among a run's results, whatever their shape: a file's summary, a
    task's list of them, a mapped task's lists (None for a failed one), an SFTP task's
    ``{"files": [...]}``, or the event loader's counts."""
    return [f for f in _summaries(results) if f.get("status") == "rejected"]


def _summaries(value: Any) -> Iterator[dict[str, Any]]:
    if value is None or isinstance(value, str | bytes):
        return
    if isinstance(value, Mapping):
        if "file_name" in value and "status" in value:
            yield dict(value)
        elif isinstance(value.get("files"), list):
            yield from _summaries(value["files"])
        elif value.get("rejected"):  # the event loader's counts: its reports name the files
            yield {
                "merchant_id": "mailer events",
                "file_name": f"{value['rejected']} event file(s)",
                "status": "rejected",
                "rejection": "unreadable",
                "import_id": "-",
                "report": str(settings.data_dir() / "events" / "reports"),
            }
    elif isinstance(value, Iterable):  # a list, or Airflow's lazy sequence of mapped results
        for item in value:
            yield from _summaries(item)


def queue_digest(
    engine: Engine,
    dag_id: str,
    run_id: str,
    rejected: Sequence[Mapping[str, Any]],
    failed: Sequence[FailedTask],
    now: dt.datetime,
) -> bool:
    """Queue the run's digest, once per run, when there is something to tell and someone to
    tell it to (``REVIEW_INGEST_ALERT_EMAILS``); whether it was queued now."""
    recipients = settings.alert_emails()
    if not (rejected or failed) or not recipients:
        return False
    message = messages.run_digest(dag_id, run_id, rejected, failed, recipients)
    queued = outbox.enqueue_one(engine, message, now)
    log.info(
        "run %s of %s: %d rejected file(s), %d failed task(s): digest %s",
        run_id,
        dag_id,
        len(rejected),
        len(failed),
        "queued" if queued else "queued before",
    )
    return queued


def flush_outbox(engine: Engine, now: dt.datetime | None = None) -> dict[str, int]:
    """Send what is due through ``smtp_default`` (read only when a message is due)."""
    flushed = sending.flush(engine, smtp_settings, now)
    return {"sent": flushed.sent, "failed": flushed.failed, "unsent": flushed.unsent}


def flush() -> dict[str, int]:
    """``review_notifications.flush_outbox``."""
    return flush_outbox(warehouse_engine())


def queue_alerts(
    engine: Engine,
    files: Sequence[stuck.WaitingFile],
    recipients: Sequence[str],
    now: dt.datetime,
    minutes: int,
) -> int:
    """One alert per waiting file not told before (the outbox keeps one message per file and
    modification time); how many were new."""
    return sum(
        outbox.enqueue_one(engine, messages.stuck_alert(file, now, minutes, recipients), now)
        for file in files
    )


def check_stuck_uploads(now: dt.datetime | None = None) -> int:
    """``review_notifications.check_stuck_files``: an alert per upload waiting longer than
    ``REVIEW_INGEST_STUCK_MINUTES``, told once; how many alerts were queued now."""
    recipients = settings.alert_emails()
    if not recipients:
        return 0
    now = now or dt.datetime.now(dt.UTC)
    minutes = settings.stuck_minutes()
    waiting = stuck.stuck_uploads(settings.data_dir(), now, minutes)
    queued = queue_alerts(warehouse_engine(), waiting, recipients, now, minutes)
    log.info("%d upload(s) waiting over %d minutes, %d told now", len(waiting), minutes, queued)
    return queued


def check_inboxes(engine: Callable[[], Engine], inboxes: Sequence[Inbox], now: dt.datetime) -> int:
    """At the end of an SFTP run, on its open sessions: an alert per file still in an inbox
    longer than ``REVIEW_INGEST_STUCK_MINUTES`` (the run took every complete file, so this one
    was left behind), told once. ``engine`` gives the warehouse, asked for only when a file
    waits. Never fails the run: a setting, a listing or a queueing that fails is logged."""
    try:
        recipients, minutes = settings.alert_emails(), settings.stuck_minutes()
    except ConfigError as exc:
        log.error("SFTP inboxes not checked for waiting files: %s", exc)
        return 0
    if not recipients:
        return 0
    queued = 0
    for inbox in inboxes:
        merchant = inbox.merchant
        if merchant.sftp is None:
            continue
        try:
            waiting = stuck.stuck_in_inbox(
                inbox.client, merchant.merchant_id, merchant.sftp.inbox, now, minutes
            )
            if waiting:
                queued += queue_alerts(engine(), waiting, recipients, now, minutes)
        except Exception as exc:  # noqa: BLE001 - the run's own outcome is the news
            log.warning(
                "merchant %s: inbox not checked for waiting files: %s",
                merchant.merchant_id,
                describe(exc),
            )
    return queued
