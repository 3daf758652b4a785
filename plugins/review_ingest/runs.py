"""What each DAG task does, as plain functions the DAG files wire together.

Tasks exchange small JSON values only (paths as strings, per-file summaries); rows go through
files and the warehouse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from review_ingest import claims, folders, settings
from review_ingest.errors import ConfigError, PermanentError, UsageError
from review_ingest.merchants import Merchant, read_merchants
from review_ingest.records import Outcome

if TYPE_CHECKING:
    from review_ingest.pipeline import Ingest

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Few enough batches to stay far under Airflow's limit of 1024 mapped tasks.
MAX_BATCHES = 64


class BatchFailed(RuntimeError):
    """Some files of a batch could not be processed; the others were. Names each one."""


def check_configuration() -> dict[str, Any]:
    """Fail, naming merchant and key, when the merchants file holds a mistake."""
    read = read_merchants(settings.merchants_file())
    if read.problems:
        raise ConfigError("; ".join(read.problems.values()))
    return {"merchants": sorted(read.merchants)}


def plan_upload_batches(max_batches: int = MAX_BATCHES) -> list[list[dict[str, str]]]:
    """The ready upload files, then the files of claims left by failed or killed runs (see
    ``claims``), split into batches for mapped tasks. Items name the file's upload path: the
    task claims it there, or takes over the claim that holds it.

    Files whose merchants share a template, a time zone and an oldest order day come together
    (in their order otherwise, so each merchant's oldest first): a batch's small files then go
    through one validation rather than one per template (0.1-0.2 s each). A batch holds up to
    ``REVIEW_INGEST_BATCH_BYTES`` of files (``split``): 200 small files make one task, not eight
    that each pay a task's own cost.
    """
    data_dir = settings.data_dir()
    pending = folders.ready_uploads(data_dir, settings.min_file_age_seconds())
    left = claims.claimable(data_dir, origin="upload")
    sized = [({"merchant_id": p.merchant_id, "path": str(p.path)}, p.size) for p in pending]
    sized += [
        (
            {
                "merchant_id": c.merchant_id,
                "path": str(folders.upload_path(data_dir, c.merchant_id, c.name)),
            },
            _size(c.path),
        )
        for c in left
    ]
    log.info(
        "%d file(s) ready in %s, %d left in claims by earlier runs",
        len(pending),
        data_dir / "uploads",
        len(left),
    )
    merchants = read_merchants(settings.merchants_file()).merchants
    sized.sort(key=lambda pair: _validated_with(merchants.get(pair[0]["merchant_id"])))
    return split(
        [item for item, _ in sized],
        [size for _, size in sized],
        settings.batch_size(),
        settings.batch_bytes(),
        max_batches,
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _validated_with(merchant: Merchant | None) -> tuple[str, str, int]:
    return merchant.validated_with if merchant else ("", "", 0)


def split(
    items: list[T], sizes: list[int], batch_size: int, batch_bytes: int, max_batches: int
) -> list[list[T]]:
    """The items in their order, in batches of at most ``batch_size`` items and ``batch_bytes``
    bytes (an item bigger than that alone); when that makes more than ``max_batches``, both
    limits double until it does not."""
    while True:
        batches: list[list[T]] = []
        total = 0
        for item, size in zip(items, sizes, strict=True):
            if not batches or len(batches[-1]) >= batch_size or total + size > batch_bytes:
                batches.append([])
                total = 0
            batches[-1].append(item)
            total += size
        if len(batches) <= max_batches:
            return batches
        batch_size, batch_bytes = batch_size * 2, batch_bytes * 2


def ingest_uploads(batch: list[dict[str, str]], warehouse_url: str) -> list[dict[str, Any]]:
    """Process a batch of upload files; one file's failure never stops the others.

    Every file is claimed first, so that the small ones are validated together (one Great
    Expectations run for many files, ``Ingest.validate_together``); then each is imported.
    """
    from review_ingest.pipeline import Ingest, Pending

    read = read_merchants(settings.merchants_file())
    ingest = Ingest(settings.data_dir(), read.merchants, warehouse_url)

    def take(item: dict[str, str]) -> claims.Claim | None:
        merchant_id, name = item["merchant_id"], Path(item["path"]).name
        if merchant_id in read.problems:
            log.warning(
                "merchant %s: configuration error, file %s left in place", merchant_id, name
            )
            return None
        claim = claims.claim_upload(ingest.data_dir, merchant_id, name)
        if claim is None:
            log.info("merchant %s file %s: already taken by another run", merchant_id, name)
        return claim

    taken = [(item, _attempt(take, item)) for item in batch]
    left = [c for _, c in taken if isinstance(c, claims.Claim)]  # claimed, not processed yet

    def one(pair: tuple[dict[str, str], claims.Claim | Exception | None]) -> dict[str, Any] | None:
        claim = pair[1]
        if isinstance(claim, Exception):
            raise claim
        if claim is None:
            return None
        left.remove(claim)
        return process_claim(ingest, claim, move_upload)

    try:
        ingest.validate_together([Pending(c.path, c.merchant_id, c.import_id) for c in left])
        return each_file(
            taken, lambda p: f"merchant {p[0]['merchant_id']} file {Path(p[0]['path']).name!r}", one
        )
    except BaseException:
        # Stopped on the way (the task terminated): the files not reached go back to their
        # folders now, rather than wait in claims for this process to be seen gone.
        for claim in left:
            give_up(ingest, claim)
        raise
    finally:
        ingest.finish(index=False)  # the pages; the DAG run rebuilds the index once


def build_docs_index(parts: list[Any]) -> bool:
    """The Data Docs index, once after a DAG run's mapped tasks, whether they succeeded or
    not (a failed one may have built pages first); nothing when the run had no part.

    Each batch builds only its own pages: the index reads the ``DOCS_INDEX_LIMIT`` latest
    stored results (about 2 s), once per run instead of once per batch. Returns whether it
    was built.
    """
    if not parts:
        return False
    from review_ingest.pipeline import Ingest

    Ingest(settings.data_dir()).validation.build_index()
    return True


def _attempt(action: Callable[[T], Any], item: T) -> Any:
    """``action(item)``, or the exception it raised: ``each_file`` reports it with the file."""
    try:
        return action(item)
    except Exception as exc:  # noqa: BLE001 - raised again for this file only, by each_file
        return exc


def process_claim(
    ingest: Ingest,
    claim: claims.Claim,
    finish: Callable[[Ingest, claims.Claim, Outcome, bool], dict[str, Any]],
    *,
    import_new: bool = True,
) -> dict[str, Any] | None:
    """Process a claimed file, then ``finish`` it (move it, publish it) and end the claim.

    When the warehouse already holds the claim's import (a run was killed or failed after its
    commit), that import is finished instead: nothing is recorded again, and ``finish`` gets
    ``finishing`` True. Otherwise the file is imported (unless ``import_new`` is false: then
    None is returned and the claim stays for the caller).

    On a failure the claim is given up: the file goes back to its upload folder when the
    warehouse shows that nothing was committed, and otherwise stays in the claim, released,
    for the next run to finish or retry.
    """
    try:
        outcome = ingest.finish_import(claim.path, claim.import_id, send_now=claim.send_now)
        finishing = outcome is not None
        if outcome is None:
            if not import_new:
                return None
            outcome = ingest.import_file(
                claim.path,
                claim.merchant_id,
                claim.source,
                send_now=claim.send_now,
                import_id=claim.import_id,
            )
        result = finish(ingest, claim, outcome, finishing)
    except Exception:
        give_up(ingest, claim)
        raise
    except BaseException:
        _quietly(claim.release)
        raise
    claim.drop()
    return result


def move_upload(
    ingest: Ingest, claim: claims.Claim, outcome: Outcome, finishing: bool
) -> dict[str, Any]:
    """An upload's end: into ``processed/`` or ``rejected/``, never overwriting."""
    rec = outcome.record
    moved = folders.move_after(
        claim.path, ingest.data_dir, rec.merchant_id, rec.status, rec.import_id
    )
    return summary(outcome, ingest.data_dir, moved)


def give_up(ingest: Ingest, claim: claims.Claim) -> None:
    """After a failure: a file whose import was surely not committed goes back where it came
    from (an upload to its folder; an SFTP copy is deleted, the server still has the file);
    anything else stays claimed, released, for the next run. Never raises: the failure itself
    is the news."""
    from review_ingest import warehouse

    try:
        committed = warehouse.import_record(ingest.engine, claim.import_id) is not None
    except Exception as exc:  # noqa: BLE001 - the warehouse may be the failure
        log.warning(
            "import %s: cannot tell whether it was committed: %s", claim.import_id, describe(exc)
        )
        committed = None
    if committed is False and claim.origin == "upload":
        folder = folders.upload_path(ingest.data_dir, claim.merchant_id, claim.name).parent
        if _quietly(claim.give_back, folder):
            log.info("merchant %s file %s: back in %s", claim.merchant_id, claim.name, folder)
            return
    if committed is False and claim.origin == "sftp" and _quietly(claim.discard):
        return
    _quietly(claim.release)


def _quietly(action: Callable[..., Any], *args: Any) -> bool:
    """Run a clean-up step while another error propagates: False when it failed or refused."""
    try:
        return action(*args) is not False
    except Exception as exc:  # noqa: BLE001 - the error that brought us here matters more
        log.error("could not give up a claim: %s", describe(exc))
        return False


def each_file(
    items: Iterable[T],
    label: Callable[[T], str],
    process: Callable[[T], dict[str, Any] | None],
    fatal: tuple[type[BaseException], ...] = (),
) -> list[dict[str, Any]]:
    """Process every item; one item's failure never stops the others. Failures are logged, then
    raised together as BatchFailed naming each; a ``fatal`` error (a lost server) stops at once.
    """
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    for item in items:
        try:
            result = process(item)
        except fatal:
            raise
        except Exception as exc:  # noqa: BLE001 - one file must not stop the others
            failures.append(f"{label(item)}: {describe(exc)}")
            log.error("%s failed: %s", label(item), describe(exc))
            continue
        if result is not None:
            results.append(result)
    if failures:
        raise BatchFailed(f"{len(failures)} file(s) failed: " + " | ".join(failures))
    return results


def summary(outcome: Outcome, data_dir: Path, moved: Path | None) -> dict[str, Any]:
    """What a run shows of one file: small enough for XCom."""
    rec = outcome.record
    return {
        "merchant_id": rec.merchant_id,
        "file_name": rec.file_name,
        "import_id": rec.import_id,
        "status": rec.status,
        "rejection": outcome.rejection.code if outcome.rejection else None,
        "total_rows": rec.total_rows,
        "valid_rows": rec.valid_rows,
        "error_rows": rec.error_rows,
        "duplicate_rows": rec.duplicate_rows,
        "brand_requests": rec.brand_requests,
        "product_requests": rec.product_requests,
        "report": str(data_dir / "reports" / rec.merchant_id / rec.import_id),
        "moved_to": str(moved) if moved else None,
    }


#: The Airflow Asset the loading tasks update: the warehouse table of review requests.
REVIEW_REQUESTS_ASSET = "review_requests"


def asset_extra(summaries: list[dict[str, Any]], *, dry_run: bool = False) -> dict[str, Any]:
    """What a loading task attaches to its ``review_requests`` asset event: the counts of its
    files and of the requests it created, and the imports that loaded (for a sender or an
    analytics DAG scheduled on the asset)."""
    loaded = [s for s in summaries if s["status"] == "loaded" and not dry_run]
    return {
        "files": len(summaries),
        "loaded": len(loaded),
        "rejected": sum(s["status"] == "rejected" for s in summaries),
        "already_imported": sum(s["status"] == "already_imported" for s in summaries),
        "brand_requests": sum(s["brand_requests"] for s in loaded),
        "product_requests": sum(s["product_requests"] for s in loaded),
        "import_ids": [s["import_id"] for s in loaded],
        "dry_run": dry_run,
    }


def describe(exc: BaseException) -> str:
    """An exception for a log line: database errors may quote a row (e-mails), so they are
    named by class and SQLSTATE only."""
    orig = getattr(exc, "orig", None)
    if orig is not None:
        state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        return f"{type(exc).__name__} ({type(orig).__name__}, SQLSTATE {state})"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def raise_failures(failures: dict[str, Exception], failed: type[Exception] = BatchFailed) -> None:
    """Fail a task whose merchants' parts failed (by merchant id), after the others were done:
    with that error itself when there is one (noted with its merchant, for the task's log),
    else with ``failed`` naming each merchant, or a ConfigError (not retried) when every one is
    a PermanentError."""
    if not failures:
        return
    if len(failures) == 1:
        [(merchant_id, exc)] = failures.items()
        exc.add_note(f"merchant {merchant_id}: its part of the task failed; the others were done")
        raise exc
    text = " | ".join(f"merchant {m}: {describe(e)}" for m, e in failures.items())
    if all(isinstance(e, PermanentError) for e in failures.values()):
        raise ConfigError(text)
    raise failed(text)


def log_summary(
    batches: list[list[dict[str, str]]], results: list[list[dict[str, Any]] | None]
) -> dict[str, int]:
    """One line per file, then the run's totals; fails naming the files whose batch failed,
    so that the run shows failed while every other file was still processed."""
    flat = [item for batch in results or [] if batch for item in batch]
    totals = {"files": len(flat), "loaded": 0, "rejected": 0, "already_imported": 0}
    for item in flat:
        totals[item["status"]] = totals.get(item["status"], 0) + 1
        log.info(
            "%s/%s: %s%s, %s rows (%s valid, %s errors, %s duplicates), report %s",
            item["merchant_id"],
            item["file_name"],
            item["status"],
            f" ({item['rejection']})" if item["rejection"] else "",
            item["total_rows"],
            item["valid_rows"],
            item["error_rows"],
            item["duplicate_rows"],
            item["report"],
        )
    log.info("run totals: %s", totals)
    reported = {(item["merchant_id"], item["file_name"]) for item in flat}
    missing = [
        f"{f['merchant_id']}/{Path(f['path']).name}"
        for batch in batches or []
        for f in batch
        if (f["merchant_id"], Path(f["path"]).name) not in reported
    ]
    if len([b for b in results or [] if b is not None]) < len(batches or []):
        shown = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise BatchFailed(
            f"some ingest_batch tasks failed (see their logs); files of those batches not "
            f"reported by a successful try: {shown or 'none'}"
        )
    return totals


@dataclass(frozen=True)
class BackfillRequest:
    """The Params of ``orders_backfill``, checked before anything is touched."""

    merchant_id: str
    file: str
    source: str = "upload"
    dry_run: bool = True
    send_now: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any], merchants: dict[str, Merchant]) -> BackfillRequest:
        merchant_id = str(params.get("merchant_id") or "").strip()
        if merchant_id not in merchants:
            raise UsageError(f"orders_backfill: unknown merchant_id {merchant_id!r}")
        file = folders.safe_name(str(params.get("file") or "").strip())
        source = str(params.get("source") or "upload")
        if source not in ("upload", "sftp"):
            raise UsageError(f"orders_backfill: source must be upload or sftp, not {source!r}")
        if source == "sftp" and merchants[merchant_id].sftp is None:
            raise UsageError(f"orders_backfill: merchant {merchant_id!r} has no sftp block")
        return cls(
            merchant_id, file, source, bool(params.get("dry_run")), bool(params.get("send_now"))
        )


def backfill_upload(request: BackfillRequest, warehouse_url: str) -> dict[str, Any]:
    """Import one named file of a merchant's upload folder, with source ``backfill``.

    The file is claimed like any upload: when a run of ``orders_upload_ingest`` holds it, the
    backfill skips it without failing (that run loads it); when a failed or killed run left it
    in a claim, the backfill takes it over. A dry run claims nothing and moves nothing.
    """
    from review_ingest.pipeline import Ingest

    data_dir = settings.data_dir()
    path = folders.upload_path(data_dir, request.merchant_id, request.file)
    merchants = read_merchants(settings.merchants_file()).merchants
    ingest = Ingest(data_dir, merchants, warehouse_url)
    if request.dry_run:
        if not path.is_file():
            raise _no_such_file(request, path)
        outcome = ingest.import_file(
            path, request.merchant_id, "backfill", dry_run=True, send_now=request.send_now
        )
        ingest.finish()
        return summary(outcome, data_dir, None)
    claim = claims.claim_upload(
        data_dir, request.merchant_id, request.file, source="backfill", send_now=request.send_now
    )
    if claim is None:
        other = claims.held(data_dir, request.merchant_id, request.file)
        if other is None:
            raise _no_such_file(request, path)
        log.info(
            "merchant %s file %s: another run holds it (claim %s, import %s): skipped",
            request.merchant_id,
            request.file,
            other.claim_id,
            other.import_id,
        )
        return skipped(request.merchant_id, request.file, other.import_id, data_dir)
    try:
        return process_claim(ingest, claim, move_upload)
    finally:
        ingest.finish()


def _no_such_file(request: BackfillRequest, path: Path) -> UsageError:
    return UsageError(
        f"orders_backfill: merchant {request.merchant_id!r} has no file {request.file!r} "
        f"in {path.parent}"
    )


def skipped(merchant_id: str, file_name: str, import_id: str, data_dir: Path) -> dict[str, Any]:
    """The summary of a file another run was processing: nothing done here."""
    return {
        "merchant_id": merchant_id,
        "file_name": file_name,
        "import_id": import_id,
        "status": "skipped",
        "rejection": None,
        "total_rows": 0,
        "valid_rows": 0,
        "error_rows": 0,
        "duplicate_rows": 0,
        "brand_requests": 0,
        "product_requests": 0,
        "report": str(data_dir / "reports" / merchant_id / import_id),
        "moved_to": None,
    }
