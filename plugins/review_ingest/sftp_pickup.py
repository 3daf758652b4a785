"""SFTP merchants (contract sections 6 and 8): collect each inbox through the same pipeline.

For each complete file of ``<root>/orders/``: download it to local staging, claim the local
copy (``claims``: it moves into ``<data>/claims/<merchant_id>/``, with the import id the run
will record), import it with source ``sftp`` (one warehouse transaction), then publish the
outcome on the server (the file moves to ``orders/processed/`` or ``orders/rejected/`` with its
``.report.json`` and ``.errors.csv``) and move the local copy like an upload. The warehouse
commit comes before the remote move: if the run fails or is killed after it, its claim is left,
and the next run finishes that import (publishing its own reports, moving the file) without
recording anything again. Bytes already imported that arrive again, under any name, are a file
of their own, reported as already imported.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from review_ingest import claims, folders, report, settings, sftp
from review_ingest.errors import ConfigError, UsageError
from review_ingest.merchants import Merchant, read_merchants
from review_ingest.records import Outcome
from review_ingest.runs import BackfillRequest, BatchFailed, each_file, process_claim, summary

log = logging.getLogger(__name__)
T = TypeVar("T")


def sftp_merchants() -> list[str]:
    """The merchants whose inbox ``orders_sftp_ingest`` polls: those with an ``sftp`` block."""
    merchants = read_merchants(settings.merchants_file()).merchants
    return sorted(m for m, merchant in merchants.items() if merchant.sftp is not None)


def staging_dir(merchant_id: str) -> Path:
    return settings.data_dir() / "staging" / "sftp" / folders.safe_name(merchant_id)


def collect_merchant(merchant_id: str, warehouse_url: str) -> dict[str, Any]:
    """Process every complete file of one merchant's inbox; a bad file never stops the others.

    Claims left by a failed or killed run of this merchant come first (see ``_recover``); then
    every ready file is downloaded and claimed, so that the small ones are validated together
    (see ``_collect``). A server that cannot be reached raises (the task fails and is retried;
    the files it had claimed are taken over by the next run); files whose processing failed are
    named in a BatchFailed raised after the others are done.
    """
    from review_ingest.pipeline import Ingest

    merchants = read_merchants(settings.merchants_file()).merchants
    merchant = _sftp_merchant(merchants, merchant_id)
    inbox = merchant.sftp.inbox  # type: ignore[union-attr]
    ingest = Ingest(settings.data_dir(), merchants, warehouse_url)
    _clear_old_staging(merchant_id)
    try:
        with sftp.connect(merchant.sftp.conn_id) as client:  # type: ignore[union-attr]
            now = time.time()
            listed = {f.name: f for f in sftp.list_ready(client, inbox, now, 0)}
            ready = [f for f in listed.values() if now - f.mtime >= settings.min_file_age_seconds()]
            left = claims.claimable(ingest.data_dir, merchant_id, origin="sftp")
            log.info(
                "merchant %s: %d file(s) ready in %s, %d left in claims by earlier runs",
                merchant_id,
                len(ready),
                inbox,
                len(left),
            )
            results, failed = _collect(client, ingest, merchant, left, ready, listed)
    finally:
        ingest.finish(index=False)  # the pages; the DAG run rebuilds the index once
    if failed:
        raise BatchFailed(" | ".join(failed))
    return {"merchant_id": merchant_id, "files": results}


def _collect(
    client: Any,
    ingest: Any,
    merchant: Merchant,
    left: list[claims.Claim],
    ready: list[sftp.RemoteFile],
    listed: dict[str, sftp.RemoteFile],
) -> tuple[list[dict[str, Any]], list[str]]:
    """Claims left by earlier runs first; then every ready file is downloaded and claimed, the
    small ones validated together (one Great Expectations run for many files), and each is
    imported and published. Returns the files' summaries and what failed, by file."""
    from review_ingest.pipeline import Pending

    merchant_id = merchant.merchant_id
    busy: set[str] = set()
    failed: list[str] = []

    def label(item: claims.Claim | sftp.RemoteFile) -> str:
        return f"merchant {merchant_id} file {item.name!r}"

    def recover(claim: claims.Claim) -> dict[str, Any] | None:
        busy.add(claim.name)
        return _recover(client, ingest, merchant, claim, listed, busy)

    def fetch(remote: sftp.RemoteFile) -> dict[str, Any] | None:
        if remote.name in busy:
            log.info("merchant %s file %r: left for the next run", merchant_id, remote.name)
            return None
        claim = _fetch(client, ingest, merchant, remote, "sftp")
        if claim is not None:
            fetched.append((claim, remote))
        return None

    def collect(item: tuple[claims.Claim, sftp.RemoteFile]) -> dict[str, Any] | None:
        claim, remote = item
        return process_claim(ingest, claim, _publisher(client, merchant, {remote.name: remote}))

    fetched: list[tuple[claims.Claim, sftp.RemoteFile]] = []
    results = _each(left, label, recover, failed)
    _each(ready, label, fetch, failed)
    ingest.validate_together([Pending(c.path, merchant_id, c.import_id) for c, _ in fetched])
    results += _each(fetched, lambda item: label(item[1]), collect, failed)
    return results, failed


def _each(
    items: list[T], label: Callable[[T], str], process: Callable[[T], Any], failed: list[str]
) -> list[dict[str, Any]]:
    """``runs.each_file``, its failures added to ``failed`` instead of raised: the next step
    of the run still goes on. A lost server (TransportError) stops the run at once."""
    try:
        return each_file(items, label, process, fatal=(sftp.TransportError,))
    except BatchFailed as exc:
        failed.append(str(exc))
        return []


def _sftp_merchant(merchants: dict[str, Merchant], merchant_id: str) -> Merchant:
    merchant = merchants.get(merchant_id)
    if merchant is None or merchant.sftp is None:
        raise ConfigError(f"merchant {merchant_id!r} has no sftp block in the merchants file")
    return merchant


def _collect_one(
    client: Any,
    ingest: Any,
    merchant: Merchant,
    remote: sftp.RemoteFile,
    source: str,
    send_now: bool = False,
) -> dict[str, Any] | None:
    """Download, claim the local copy, import, publish on the server, move the local copy."""
    claim = _fetch(client, ingest, merchant, remote, source, send_now)
    if claim is None:  # another run of this merchant took the copy: it processes the file
        return None
    return process_claim(ingest, claim, _publisher(client, merchant, {remote.name: remote}))


def _fetch(
    client: Any,
    ingest: Any,
    merchant: Merchant,
    remote: sftp.RemoteFile,
    source: str,
    send_now: bool = False,
) -> claims.Claim | None:
    """Download the file and claim the local copy; None when another run took the copy."""
    inbox = merchant.sftp.inbox  # type: ignore[union-attr]
    local = sftp.download(client, inbox, remote.name, staging_dir(merchant.merchant_id))
    return claims.claim(
        local,
        ingest.data_dir,
        merchant.merchant_id,
        origin="sftp",
        source=source,
        send_now=send_now,
        remote={"size": remote.size, "mtime": remote.mtime},
    )


def _recover(
    client: Any,
    ingest: Any,
    merchant: Merchant,
    left: claims.Claim,
    listed: dict[str, sftp.RemoteFile],
    busy: set[str],
) -> dict[str, Any] | None:
    """A claim left by a failed or killed run: when its import was committed, finish it (publish
    its own reports, move the file on the server and here; nothing is recorded again);
    otherwise drop the local copy and let the inbox's file be processed as usual."""
    claim = claims.take_over(left)
    if claim is None:  # another run took it over
        return None
    result = process_claim(ingest, claim, _publisher(client, merchant, listed), import_new=False)
    if result is None:
        log.info(
            "merchant %s file %r: the interrupted run committed nothing; processed again",
            merchant.merchant_id,
            claim.name,
        )
        claim.discard()
        busy.discard(claim.name)
    return result


def _publisher(
    client: Any, merchant: Merchant, listed: dict[str, sftp.RemoteFile]
) -> Callable[[Any, claims.Claim, Outcome, bool], dict[str, Any]]:
    """The end of an SFTP file (for ``runs.process_claim``): its reports and its move on the
    server, then the local copy into ``processed/`` or ``rejected/``."""
    inbox = merchant.sftp.inbox  # type: ignore[union-attr]

    def finish(ingest: Any, claim: claims.Claim, outcome: Outcome, finishing: bool) -> dict:
        status = outcome.record.status
        report_json, errors_csv = _reports_to_publish(ingest.data_dir, outcome, finishing)
        remote_path = None
        present = listed.get(claim.name)
        if finishing and present is not None and not _is_original(present, claim):
            log.warning(
                "merchant %s file %r: the inbox holds another file of that name (processed on "
                "its own); import %s was published before",
                merchant.merchant_id,
                claim.name,
                outcome.record.import_id,
            )
        else:
            try:
                remote_path = sftp.publish(
                    client,
                    inbox,
                    claim.name,
                    "rejected" if status == "rejected" else "processed",
                    report_json,
                    errors_csv,
                    size=outcome.record.size_bytes,
                )
            except sftp.TransportError as exc:
                if not (finishing and present is None):
                    raise
                # Moved on the server by the interrupted run (its reports went first), and
                # its published copy no longer found: nothing is left to do there.
                log.warning("merchant %s: %s", merchant.merchant_id, exc)
        moved = folders.move_after(
            claim.path, ingest.data_dir, merchant.merchant_id, status, outcome.record.import_id
        )
        result = summary(outcome, ingest.data_dir, moved)
        result["remote_path"] = remote_path
        return result

    return finish


def _is_original(remote: sftp.RemoteFile, claim: claims.Claim) -> bool:
    """Whether the inbox's file is the one the claim's copy was downloaded from."""
    return (remote.size, remote.mtime) == (claim.remote.get("size"), claim.remote.get("mtime"))


def _clear_old_staging(merchant_id: str) -> None:
    """Downloads left in staging by a run killed before it claimed them (a download is claimed
    as soon as it is complete): their originals are still on the server."""
    folder = staging_dir(merchant_id)
    if not folder.is_dir():
        return
    oldest = time.time() - settings.claim_lease_seconds()
    for entry in folder.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if entry.is_file() and entry.stat().st_mtime < oldest:
                entry.unlink()


def _reports_to_publish(
    data_dir: Path, outcome: Outcome, finishing: bool = False
) -> tuple[bytes, bytes]:
    """The ``report.json`` and ``errors.csv`` the merchant sees, without the Data Docs page (a
    path of our server).

    A run finishing an interrupted import (its commit done, its move not: see ``claims``)
    publishes that import's own reports, as they are on disk. Any other file gets its own:
    bytes already imported (under any name) are reported as already imported, naming the
    earlier import.
    """
    earlier = _interrupted_import_reports(data_dir, outcome) if finishing else None
    if earlier is not None:
        shown, errors = earlier
    else:
        shown, errors = report.to_dict(outcome), report.errors_csv(outcome).encode("utf-8")
    return report.dumps(report.for_merchant(shown)).encode("utf-8"), errors


def _interrupted_import_reports(
    data_dir: Path, outcome: Outcome
) -> tuple[dict[str, Any], bytes] | None:
    """The reports on disk of the import being finished."""
    folder = data_dir / "reports" / outcome.record.merchant_id / outcome.record.import_id
    if not ((folder / "report.json").is_file() and (folder / "errors.csv").is_file()):
        return None
    earlier = json.loads((folder / "report.json").read_text(encoding="utf-8"))
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
    """``orders_backfill`` with source ``sftp``: the named file of the merchant's inbox.

    A claim of that file left by a failed or killed run is finished first (``_recover``).
    """
    from review_ingest.pipeline import Ingest

    merchants = read_merchants(settings.merchants_file()).merchants
    merchant = _sftp_merchant(merchants, request.merchant_id)
    inbox = merchant.sftp.inbox  # type: ignore[union-attr]
    ingest = Ingest(settings.data_dir(), merchants, warehouse_url)
    try:
        with sftp.connect(merchant.sftp.conn_id) as client:  # type: ignore[union-attr]
            listed = {f.name: f for f in sftp.list_ready(client, inbox, time.time(), 0)}
            if not request.dry_run:
                busy = {request.file}
                left = claims.claimable(ingest.data_dir, request.merchant_id, origin="sftp")
                for old in (c for c in left if c.name == request.file):
                    result = _recover(client, ingest, merchant, old, listed, busy)
                    if result is not None:
                        return result
            if request.file not in listed:
                raise UsageError(
                    f"orders_backfill: merchant {request.merchant_id!r} has no file "
                    f"{request.file!r} in its SFTP inbox {inbox}"
                )
            if not request.dry_run:
                result = _collect_one(
                    client, ingest, merchant, listed[request.file], "backfill", request.send_now
                )
                if result is None:
                    raise BatchFailed(
                        f"merchant {request.merchant_id}: another run took {request.file!r}"
                    )
                return result
            local = sftp.download(client, inbox, request.file, staging_dir(request.merchant_id))
            outcome = ingest.import_file(
                local, request.merchant_id, "backfill", dry_run=True, send_now=request.send_now
            )
            local.unlink()
            return summary(outcome, ingest.data_dir, None)
    finally:
        ingest.finish()
