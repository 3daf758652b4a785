"""The tasks of ``orders_sftp_ingest``: the SFTP merchants in groups, one task each."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from typing import Any

from review_ingest import settings
from review_ingest.core.merchants import read_merchants
from review_ingest.pipeline.failures import BatchFailed, raise_failures
from review_ingest.pipeline.sftp_inbox import Inbox, Sessions, open_inbox, record_failure, run_step
from review_ingest.tasks import notifications
from review_ingest.tasks.partition import split

log = logging.getLogger(__name__)

#: Few enough ``collect_merchants`` tasks to stay far under Airflow's limit of 1024 mapped
#: tasks (``[core] max_map_length``): beyond it the run would collect no merchant at all.
MAX_SFTP_TASKS = 256


def sftp_merchants() -> list[str]:
    """The merchants whose inbox ``orders_sftp_ingest`` polls: those with an ``sftp`` block."""
    merchants = read_merchants(settings.merchants_file()).merchants
    return sorted(m for m, merchant in merchants.items() if merchant.sftp is not None)


def list_merchant_groups() -> list[list[str]]:
    """The SFTP merchants of the merchants file, in groups: one mapped task each."""
    return merchant_groups(sftp_merchants())


def merchant_groups(merchant_ids: list[str]) -> list[list[str]]:
    """The SFTP merchants in groups, one ``collect_merchants`` task each: groups of
    ``REVIEW_INGEST_SFTP_MERCHANTS_PER_TASK``, bigger when that would make more than
    ``MAX_SFTP_TASKS`` tasks."""
    per_task = settings.sftp_merchants_per_task()
    return split(merchant_ids, [1] * len(merchant_ids), per_task, per_task, MAX_SFTP_TASKS)


def task_label(merchant_ids: list[str]) -> str:
    """A ``collect_merchants`` task's name in Airflow's UI (its map index): its merchants."""
    shown = ", ".join(merchant_ids[:5])
    return shown if len(merchant_ids) <= 5 else f"{shown} and {len(merchant_ids) - 5} more"


def collect_merchants(merchant_ids: list[str], warehouse_url: str) -> dict[str, Any]:
    """Process every complete file of each merchant's inbox; a bad file never stops the others,
    nor one merchant's server the other merchants.

    One login per ``conn_id``, kept until its merchants' files are published. For each merchant,
    the claims its failed or killed runs left come first (``recover``), then every ready file is
    downloaded and claimed; the small files of all the merchants are validated together
    (``Ingest.validate_together``), then each file is imported and published on its server. A
    merchant that failed is named in the error raised after the others are done
    (``failures.raise_failures``); the task's retry finishes what is left (claims).
    """
    from review_ingest.pipeline.ingest import ClaimedFile, Ingest

    merchants = read_merchants(settings.merchants_file()).merchants
    ingest = Ingest(settings.data_dir(), merchants, warehouse_url)
    inboxes: list[Inbox] = []
    failures: dict[str, Exception] = {}
    try:
        with contextlib.ExitStack() as connections:
            sessions = Sessions(connections)
            for merchant_id in merchant_ids:
                try:
                    inboxes.append(open_inbox(sessions, ingest, merchants, merchant_id))
                except Exception as exc:  # noqa: BLE001 - the other merchants go on
                    record_failure(failures, merchant_id, exc)
            for inbox in inboxes:
                run_step(failures, inbox, inbox.take, ingest)
            ingest.validate_together(
                [
                    ClaimedFile(claim.path, inbox.merchant.merchant_id, claim.import_id)
                    for inbox in inboxes
                    if inbox.merchant.merchant_id not in failures
                    for claim, _ in inbox.fetched
                ]
            )
            for inbox in inboxes:
                run_step(failures, inbox, inbox.process, ingest)
            notifications.check_inboxes(lambda: ingest.engine, inboxes, dt.datetime.now(dt.UTC))
    finally:
        ingest.finish(index=False)  # the pages; the DAG run rebuilds the index once
    raise_failures(failures)
    return {
        "merchants": [inbox.merchant.merchant_id for inbox in inboxes],
        "files": [result for inbox in inboxes for result in inbox.results],
    }


def summarize_sftp(groups: list[list[str]], results: list[dict[str, Any] | None]) -> dict:
    """One line per file; the merchants of any task that failed (no result) are named."""
    parts = [r for r in results or [] if r]
    done = {merchant_id for r in parts for merchant_id in r["merchants"]}
    flat = [item for r in parts for item in r["files"]]
    failed = sorted(m for group in groups for m in group if m not in done)
    for item in flat:
        log.info(
            "%s/%s: %s -> %s (report %s)",
            item["merchant_id"],
            item["file_name"],
            item["status"],
            item.get("remote_path"),
            item["report"],
        )
    merchants = sum(len(group) for group in groups)
    totals = {"merchants": merchants, "files": len(flat), "merchants_failed": failed}
    log.info("run totals: %s", json.dumps(totals))
    if failed:
        raise BatchFailed(
            f"SFTP pickup failed in the collect_merchants task of merchant(s) "
            f"{', '.join(failed)} (its log names the merchant and file that failed); "
            "the other merchants' files were processed"
        )
    return totals
