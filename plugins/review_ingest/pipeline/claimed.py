"""A claimed file's end: imported (or its interrupted import finished), then moved or
published; on a failure, given back or left claimed for the next run (see ``claims``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from review_ingest.core.outcomes import Outcome
from review_ingest.core.report import file_summary
from review_ingest.errors import describe
from review_ingest.sources import claims, folders

if TYPE_CHECKING:
    from review_ingest.pipeline.ingest import Ingest

log = logging.getLogger(__name__)


def process_claim(
    ingest: Ingest,
    claim: claims.Claim,
    finish: Callable[[Ingest, claims.Claim, Outcome, bool], dict[str, Any]],
    *,
    import_new: bool = True,
    give_back_to: Path | None = None,
) -> dict[str, Any] | None:
    """Process a claimed file, then ``finish`` it (move it, publish it) and end the claim.

    When the warehouse already holds the claim's import (a run was killed or failed after its
    commit), that import is finished instead: nothing is recorded again, and ``finish`` gets
    ``finishing`` True. Otherwise the file is imported (unless ``import_new`` is false: then
    None is returned and the claim stays for the caller).

    On a failure the claim is given up: the file goes back to its upload folder (or to
    ``give_back_to``: an upload's staging folder) when the warehouse shows that nothing was
    committed, and otherwise stays in the claim, released, for the next run to finish or retry.
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
        give_up(ingest, claim, give_back_to)
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
    return file_summary(outcome, ingest.data_dir, moved)


def give_up(ingest: Ingest, claim: claims.Claim, give_back_to: Path | None = None) -> None:
    """After a failure: a file whose import was surely not committed goes back where it came
    from (an upload to its folder, or ``give_back_to``; an SFTP copy is deleted, the server
    still has the file); anything else stays claimed, released, for the next run. Never
    raises: the failure itself is the news."""
    from review_ingest.store import warehouse

    try:
        committed = warehouse.import_record(ingest.engine, claim.import_id) is not None
    except Exception as exc:  # noqa: BLE001 - the warehouse may be the failure
        log.warning(
            "import %s: cannot tell whether it was committed: %s", claim.import_id, describe(exc)
        )
        committed = None
    if committed is False and claim.origin == "upload":
        folder = (
            give_back_to
            or folders.upload_path(ingest.data_dir, claim.merchant_id, claim.name).parent
        )
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
