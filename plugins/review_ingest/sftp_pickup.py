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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from review_ingest import claims, folders, report, settings, sftp
from review_ingest.errors import ConfigError, UsageError
from review_ingest.merchants import Merchant, read_merchants
from review_ingest.records import Outcome
from review_ingest.runs import (
    BackfillRequest,
    BatchFailed,
    describe,
    each_file,
    process_claim,
    raise_failures,
    split,
    summary,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Few enough ``collect_merchants`` tasks to stay far under Airflow's limit of 1024 mapped
#: tasks (``[core] max_map_length``): beyond it the run would collect no merchant at all.
MAX_SFTP_TASKS = 256


def sftp_merchants() -> list[str]:
    """The merchants whose inbox ``orders_sftp_ingest`` polls: those with an ``sftp`` block."""
    merchants = read_merchants(settings.merchants_file()).merchants
    return sorted(m for m, merchant in merchants.items() if merchant.sftp is not None)


def staging_dir(merchant_id: str) -> Path:
    return settings.data_dir() / "staging" / "sftp" / folders.safe_name(merchant_id)


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

    Each merchant's server is logged in to once, and the connection kept until its files are
    published (merchants with the same ``conn_id`` share one: the same login reaches all their
    folders): claims left by a failed or killed run of the merchant come first (see
    ``_recover``), then every ready file is downloaded and claimed. The small files of all the
    merchants are then validated together (``Ingest.validate_together``: one Great
    Expectations run for many files, whatever their merchant), and each file is imported and
    published on its merchant's server. A merchant whose server cannot be reached, or whose
    files could not be processed, is named in the error raised after the others are done
    (``runs.raise_failures``): the task fails, and its retry finishes what is left (claims).
    """
    from review_ingest.pipeline import Ingest, Pending

    merchants = read_merchants(settings.merchants_file()).merchants
    ingest = Ingest(settings.data_dir(), merchants, warehouse_url)
    inboxes: list[_Inbox] = []
    failures: dict[str, Exception] = {}
    try:
        with contextlib.ExitStack() as connections:
            sessions = _Sessions(connections)
            for merchant_id in merchant_ids:
                try:
                    inboxes.append(_open(sessions, ingest, merchants, merchant_id))
                except Exception as exc:  # noqa: BLE001 - the other merchants go on
                    _failed(failures, merchant_id, exc)
            for inbox in inboxes:
                _step(failures, inbox, inbox.take, ingest)
            ingest.validate_together(
                [
                    Pending(claim.path, inbox.merchant.merchant_id, claim.import_id)
                    for inbox in inboxes
                    if inbox.merchant.merchant_id not in failures
                    for claim, _ in inbox.fetched
                ]
            )
            for inbox in inboxes:
                _step(failures, inbox, inbox.process, ingest)
    finally:
        ingest.finish(index=False)  # the pages; the DAG run rebuilds the index once
    raise_failures(failures)
    return {
        "merchants": [inbox.merchant.merchant_id for inbox in inboxes],
        "files": [result for inbox in inboxes for result in inbox.results],
    }


@dataclass
class _Sessions:
    """The SFTP sessions of a task, one per connection id, open as long as ``connections``; a
    connection that failed fails again at once for the next merchant that uses it."""

    connections: contextlib.ExitStack
    opened: dict[str, Any] = field(default_factory=dict)

    def get(self, conn_id: str) -> Any:
        if conn_id not in self.opened:
            try:
                self.opened[conn_id] = self.connections.enter_context(sftp.connect(conn_id))
            except Exception as exc:
                self.opened[conn_id] = exc
                raise
        found = self.opened[conn_id]
        if isinstance(found, Exception):
            raise found
        return found


def _open(
    sessions: _Sessions, ingest: Any, merchants: dict[str, Merchant], merchant_id: str
) -> _Inbox:
    """Log in to the merchant's server (or reuse the task's session of its connection), list
    its inbox and the claims left by its earlier runs."""
    merchant = _sftp_merchant(merchants, merchant_id)
    inbox = merchant.sftp.inbox  # type: ignore[union-attr]
    _clear_old_staging(merchant_id)
    client = sessions.get(merchant.sftp.conn_id)  # type: ignore[union-attr]
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
    return _Inbox(merchant, client, listed, ready, left)


@dataclass
class _Inbox:
    """One merchant's part of a ``collect_merchants`` task, on its open connection."""

    merchant: Merchant
    client: Any
    listed: dict[str, sftp.RemoteFile]
    ready: list[sftp.RemoteFile]
    left: list[claims.Claim]
    fetched: list[tuple[claims.Claim, sftp.RemoteFile]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def label(self, item: claims.Claim | sftp.RemoteFile) -> str:
        return f"merchant {self.merchant.merchant_id} file {item.name!r}"

    def take(self, ingest: Any) -> None:
        """Finish or drop the claims left by earlier runs, then download and claim every ready
        file that none of them holds."""
        busy: set[str] = set()

        def recover(claim: claims.Claim) -> dict[str, Any] | None:
            busy.add(claim.name)
            return _recover(self.client, ingest, self.merchant, claim, self.listed, busy)

        def fetch(remote: sftp.RemoteFile) -> None:
            if remote.name in busy:
                log.info(
                    "merchant %s file %r: left for the next run",
                    self.merchant.merchant_id,
                    remote.name,
                )
                return
            claim = _fetch(self.client, ingest, self.merchant, remote, "sftp")
            if claim is not None:
                self.fetched.append((claim, remote))

        self.results += _each(self.left, self.label, recover, self.failed)
        _each(self.ready, self.label, fetch, self.failed)

    def process(self, ingest: Any) -> None:
        """Import each downloaded file and publish its outcome on the server; then fail naming
        the files that could not be processed, if any."""

        def collect(item: tuple[claims.Claim, sftp.RemoteFile]) -> dict[str, Any] | None:
            claim, remote = item
            publish = _publisher(self.client, self.merchant, {remote.name: remote})
            return process_claim(ingest, claim, publish)

        self.results += _each(self.fetched, lambda item: self.label(item[1]), collect, self.failed)
        if self.failed:
            raise BatchFailed(" | ".join(self.failed))


def _step(
    failures: dict[str, Exception], inbox: _Inbox, action: Callable[[Any], None], ingest: Any
) -> None:
    """One step of a merchant's part; its failure stops that merchant's part only."""
    if inbox.merchant.merchant_id in failures:
        return
    try:
        action(ingest)
    except Exception as exc:  # noqa: BLE001 - the other merchants go on
        _failed(failures, inbox.merchant.merchant_id, exc)


def _failed(failures: dict[str, Exception], merchant_id: str, exc: Exception) -> None:
    log.error("merchant %s: its part of the run failed: %s", merchant_id, describe(exc))
    failures[merchant_id] = exc


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


def log_summary(groups: list[list[str]], results: list[dict[str, Any] | None]) -> dict:
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
