"""An SFTP merchant's inbox (contract sections 6 and 8) through the same pipeline.

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

from review_ingest import settings
from review_ingest.core import report
from review_ingest.core.merchants import Merchant
from review_ingest.core.outcomes import Outcome
from review_ingest.core.report import file_summary
from review_ingest.errors import ConfigError, describe
from review_ingest.pipeline.claimed import process_claim
from review_ingest.pipeline.failures import BatchFailed, each_file
from review_ingest.sources import claims, folders, sftp

log = logging.getLogger(__name__)
T = TypeVar("T")


def staging_dir(merchant_id: str) -> Path:
    return settings.data_dir() / "staging" / "sftp" / folders.safe_name(merchant_id)


@dataclass
class Sessions:
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


def open_inbox(
    sessions: Sessions, ingest: Any, merchants: dict[str, Merchant], merchant_id: str
) -> Inbox:
    """Log in to the merchant's server (or reuse the task's session of its connection), list
    its inbox and the claims left by its earlier runs."""
    merchant = sftp_merchant(merchants, merchant_id)
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
    return Inbox(merchant, client, listed, ready, left)


@dataclass
class Inbox:
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

        def finish_left(claim: claims.Claim) -> dict[str, Any] | None:
            busy.add(claim.name)
            return recover(self.client, ingest, self.merchant, claim, self.listed, busy)

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

        self.results += _each(self.left, self.label, finish_left, self.failed)
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


def run_step(
    failures: dict[str, Exception], inbox: Inbox, action: Callable[[Any], None], ingest: Any
) -> None:
    """One step of a merchant's part; its failure stops that merchant's part only."""
    if inbox.merchant.merchant_id in failures:
        return
    try:
        action(ingest)
    except Exception as exc:  # noqa: BLE001 - the other merchants go on
        record_failure(failures, inbox.merchant.merchant_id, exc)


def record_failure(failures: dict[str, Exception], merchant_id: str, exc: Exception) -> None:
    log.error("merchant %s: its part of the run failed: %s", merchant_id, describe(exc))
    failures[merchant_id] = exc


def _each(
    items: list[T], label: Callable[[T], str], process: Callable[[T], Any], failed: list[str]
) -> list[dict[str, Any]]:
    """``failures.each_file``, its failures added to ``failed`` instead of raised: the next step
    of the run still goes on. A lost server (TransportError) stops the run at once."""
    try:
        return each_file(items, label, process, fatal=(sftp.TransportError,))
    except BatchFailed as exc:
        failed.append(str(exc))
        return []


def sftp_merchant(merchants: dict[str, Merchant], merchant_id: str) -> Merchant:
    merchant = merchants.get(merchant_id)
    if merchant is None or merchant.sftp is None:
        raise ConfigError(f"merchant {merchant_id!r} has no sftp block in the merchants file")
    return merchant


def collect_one(
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


def recover(
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
    """The end of an SFTP file (for ``claimed.process_claim``): its reports and its move on the
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
        result = file_summary(outcome, ingest.data_dir, moved)
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
