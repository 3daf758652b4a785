"""SFTP merchants (contract sections 6 and 8): collect each inbox through the same pipeline.

For each complete file of ``<root>/orders/``: download it to local staging, import it with
source ``sftp`` (one warehouse transaction), then publish the outcome on the server (the file
moves to ``orders/processed/`` or ``orders/rejected/`` with its ``.report.json`` and
``.errors.csv``) and move the local copy like an upload. The warehouse commit comes before the
remote move: if the move fails, the next run finds the same bytes already imported and only
finishes the move, publishing the reports of the import that loaded them (the same file name;
the same bytes under another name are a file of their own, reported as already imported).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from review_ingest import folders, report, settings, sftp
from review_ingest.errors import UsageError
from review_ingest.merchants import ConfigError, Merchant, read_merchants
from review_ingest.records import Outcome
from review_ingest.runs import BackfillRequest, BatchFailed, each_file, summary

log = logging.getLogger(__name__)


def sftp_merchants() -> list[str]:
    """The merchants whose inbox ``orders_sftp_ingest`` polls: those with an ``sftp`` block."""
    merchants = read_merchants(settings.merchants_file()).merchants
    return sorted(m for m, merchant in merchants.items() if merchant.sftp is not None)


def staging_dir(merchant_id: str) -> Path:
    return settings.data_dir() / "staging" / "sftp" / folders.safe_name(merchant_id)


def collect_merchant(merchant_id: str, warehouse_url: str) -> dict[str, Any]:
    """Process every complete file of one merchant's inbox; a bad file never stops the others.

    A server that cannot be reached raises (the task fails and is retried); files whose
    processing failed are named in a BatchFailed raised after the others are done.
    """
    from review_ingest.pipeline import Ingest

    merchants = read_merchants(settings.merchants_file()).merchants
    merchant = _sftp_merchant(merchants, merchant_id)
    inbox = merchant.sftp.inbox  # type: ignore[union-attr]
    ingest = Ingest(settings.data_dir(), merchants, warehouse_url)
    try:
        with sftp.connect(merchant.sftp.conn_id) as client:  # type: ignore[union-attr]
            ready = sftp.list_ready(client, inbox, time.time(), settings.min_file_age_seconds())
            log.info("merchant %s: %d file(s) ready in %s", merchant_id, len(ready), inbox)
            results = each_file(
                ready,
                lambda remote: f"merchant {merchant_id} file {remote.name!r}",
                lambda remote: _collect_one(client, ingest, merchant, remote, "sftp"),
                fatal=(sftp.TransportError,),
            )
    finally:
        ingest.finish()  # the Data Docs of the files that were processed
    return {"merchant_id": merchant_id, "files": results}


def _sftp_merchant(merchants: dict[str, Merchant], merchant_id: str) -> Merchant:
    merchant = merchants.get(merchant_id)
    if merchant is None or merchant.sftp is None:
        raise ConfigError(f"merchant {merchant_id!r} has no sftp block in the merchants file")
    return merchant


def _collect_one(
    client: Any, ingest: Any, merchant: Merchant, remote: sftp.RemoteFile, source: str
) -> dict[str, Any]:
    inbox = merchant.sftp.inbox  # type: ignore[union-attr]
    local = sftp.download(client, inbox, remote.name, staging_dir(merchant.merchant_id))
    outcome = ingest.import_file(local, merchant.merchant_id, source)
    return _publish_and_move(client, ingest, merchant, remote.name, local, outcome)


def _publish_and_move(
    client: Any, ingest: Any, merchant: Merchant, name: str, local: Path, outcome: Outcome
) -> dict[str, Any]:
    inbox = merchant.sftp.inbox  # type: ignore[union-attr]
    status = outcome.record.status
    report_json, errors_csv = _reports_to_publish(ingest.data_dir, outcome)
    remote_path = sftp.publish(
        client,
        inbox,
        name,
        "rejected" if status == "rejected" else "processed",
        report_json,
        errors_csv,
        size=outcome.record.size_bytes,
    )
    moved = folders.move_after(
        local, ingest.data_dir, merchant.merchant_id, status, outcome.record.import_id
    )
    result = summary(outcome, ingest.data_dir, moved)
    result["remote_path"] = remote_path
    return result


def _reports_to_publish(data_dir: Path, outcome: Outcome) -> tuple[bytes, bytes]:
    """The ``report.json`` and ``errors.csv`` the merchant sees, without the Data Docs page (a
    path of our server).

    Bytes already imported under the same name are a re-run finishing the move of that import
    (the server dropped between its commit and its move): the merchant gets that import's own
    reports, when they are still on disk. Under another name they are a file of their own,
    reported as already imported, naming the earlier import.
    """
    earlier = _interrupted_import_reports(data_dir, outcome)
    if earlier is not None:
        shown, errors = earlier
    else:
        shown, errors = report.to_dict(outcome), report.errors_csv(outcome).encode("utf-8")
    return report.dumps(report.for_merchant(shown)).encode("utf-8"), errors


def _interrupted_import_reports(
    data_dir: Path, outcome: Outcome
) -> tuple[dict[str, Any], bytes] | None:
    """The reports of the earlier import of these bytes if it was this same file name."""
    if outcome.record.status != "already_imported" or not outcome.earlier_import_id:
        return None
    folder = data_dir / "reports" / outcome.record.merchant_id / outcome.earlier_import_id
    if not ((folder / "report.json").is_file() and (folder / "errors.csv").is_file()):
        return None
    earlier = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    if earlier.get("file_name") != outcome.record.file_name:
        return None
    return earlier, (folder / "errors.csv").read_bytes()


def log_summary(merchant_ids: list[str], results: list[dict[str, Any] | None]) -> dict:
    """One line per file; the merchants whose part failed (no result) are named."""
    parts = [r for r in results or [] if r]
    done = {r["merchant_id"] for r in parts}
    flat = [item for r in parts for item in r["files"]]
    failed = sorted(set(merchant_ids) - done)
    for item in flat:
        log.info(
            "%s/%s: %s -> %s (report %s)",
            item["merchant_id"],
            item["file_name"],
            item["status"],
            item.get("remote_path"),
            item["report"],
        )
    totals = {"merchants": len(merchant_ids), "files": len(flat), "merchants_failed": failed}
    log.info("run totals: %s", json.dumps(totals))
    if failed:
        raise BatchFailed(
            f"SFTP pickup failed for merchant(s) {', '.join(failed)} (see their "
            "collect_merchant task); the other merchants' files were processed"
        )
    return totals


def backfill_sftp(request: BackfillRequest, warehouse_url: str) -> dict[str, Any]:
    """``orders_backfill`` with source ``sftp``: the named file of the merchant's inbox."""
    from review_ingest.pipeline import Ingest

    merchants = read_merchants(settings.merchants_file()).merchants
    merchant = _sftp_merchant(merchants, request.merchant_id)
    inbox = merchant.sftp.inbox  # type: ignore[union-attr]
    ingest = Ingest(settings.data_dir(), merchants, warehouse_url)
    with sftp.connect(merchant.sftp.conn_id) as client:  # type: ignore[union-attr]
        names = {f.name for f in sftp.list_ready(client, inbox, time.time(), 0)}
        if request.file not in names:
            raise UsageError(
                f"orders_backfill: merchant {request.merchant_id!r} has no file "
                f"{request.file!r} in its SFTP inbox {inbox}"
            )
        local = sftp.download(client, inbox, request.file, staging_dir(request.merchant_id))
        outcome = ingest.import_file(
            local,
            request.merchant_id,
            "backfill",
            dry_run=request.dry_run,
            send_now=request.send_now,
        )
        ingest.finish()
        if request.dry_run:
            local.unlink()
            return summary(outcome, ingest.data_dir, None)
        return _publish_and_move(client, ingest, merchant, request.file, local, outcome)
