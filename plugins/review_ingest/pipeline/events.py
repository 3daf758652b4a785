"""Delivery event files (contract section 13): each complete file of ``<data>/events/incoming/``
claimed, loaded in one warehouse transaction with its report, then reported and moved.

A file is claimed as order files are (``sources.claims``, under ``<data>/events/claims/``); the
claim's id is the file's ``file_id``. Its events go through ``store.events.load_events`` in
chunks and its report through ``record_file``, all in one transaction: a run killed before the
commit leaves nothing, and the next run loads the file again. A run killed after it leaves the
claim with its report committed: the next run writes that stored report and finishes the move,
loading nothing again. The file is read as a stream, whatever its size.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Engine

from review_ingest.core import events as core_events
from review_ingest.errors import describe
from review_ingest.pipeline.failures import each_file
from review_ingest.sources import claims, folders
from review_ingest.store import events as store_events
from review_ingest.store import warehouse

log = logging.getLogger(__name__)

#: Events per ``load_events`` call: a chunk is a few hundred kilobytes of memory.
CHUNK_EVENTS = 5_000
#: Errors listed in a report; ``error_lines`` counts them all.
MAX_REPORTED_ERRORS = 1_000
#: The claims' "merchant" folder: event files have no merchant.
CLAIMS_FOLDER = "incoming"
READ_BUFFER_BYTES = 1 << 20


def events_dir(data_dir: Path) -> Path:
    """``<data>/events/``: ``incoming/``, ``processed/``, ``rejected/``, ``reports/``, and
    ``claims/`` (files being processed)."""
    return data_dir / "events"


def ready_files(data_dir: Path, min_age_seconds: float, now: float | None = None) -> list[Path]:
    """The complete files of ``incoming/`` (contract section 6's rules), oldest first."""
    now = time.time() if now is None else now
    incoming = events_dir(data_dir) / "incoming"
    if not incoming.is_dir():
        return []
    found: list[tuple[float, str]] = []
    for entry in os.scandir(incoming):
        if not entry.is_file(follow_symlinks=False) or folders.is_partial_name(entry.name):
            continue
        modified = entry.stat(follow_symlinks=False).st_mtime
        if now - modified >= min_age_seconds:
            found.append((modified, entry.path))
    return [Path(path) for _, path in sorted(found)]


def process_incoming(
    data_dir: Path, warehouse_url: str, min_age_seconds: float
) -> list[dict[str, Any]]:
    """Every ready file, then the files left in claims by failed or killed runs: each loaded (or
    its committed load finished), reported and moved. One file's failure never stops the
    others; the run then fails naming each (``BatchFailed``)."""
    engine = warehouse.engine_for(warehouse_url)
    warehouse.migrate(engine)
    root = events_dir(data_dir)
    ready = ready_files(data_dir, min_age_seconds)
    left = claims.claimable(root, CLAIMS_FOLDER)
    log.info(
        "%d event file(s) ready in %s, %d left in claims by earlier runs",
        len(ready),
        root / "incoming",
        len(left),
    )

    def one(item: Path | claims.Claim) -> dict[str, Any] | None:
        claim = _claim(root, item) if isinstance(item, Path) else claims.take_over(item)
        if claim is None:
            log.info("event file %r: already taken by another run", item.name)
            return None
        return process_claim(engine, claim)

    return each_file([*ready, *left], lambda item: f"event file {item.name!r}", one)


def _claim(root: Path, path: Path) -> claims.Claim | None:
    return claims.claim(path, root, CLAIMS_FOLDER, origin="upload", source="events")


def process_claim(engine: Engine, claim: claims.Claim) -> dict[str, Any]:
    """Load a claimed file (or find its load committed by a killed run), write its report, move
    it, end the claim. On a failure the file goes back to ``incoming/`` when nothing was
    committed, and otherwise stays in the claim, released, for the next run to finish."""
    try:
        report = file_report(engine, claim.import_id)
        finishing = report is not None
        if report is None:
            report = load_file(engine, claim.path, claim.import_id)
        result = finish(claim, report)
    except Exception:
        give_up(engine, claim)
        raise
    except BaseException:
        _quietly(claim.release)
        raise
    claim.drop()
    log.info(
        "event file %r: %s%s, %d line(s), %d event(s) loaded, %d skipped as duplicates, "
        "%d line(s) in error; report %s",
        claim.name,
        report["status"],
        " (a killed run's load, finished)" if finishing else "",
        report["lines"],
        report["loaded"],
        report["skipped_duplicates"],
        report["error_lines"],
        result["report"],
    )
    return result


def file_report(engine: Engine, file_id: str) -> dict[str, Any] | None:
    """The report committed for ``file_id``, None when its load was never committed."""
    with engine.connect() as connection:
        return store_events.file_report(connection, file_id)


def load_file(
    engine: Engine, path: Path, file_id: str, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Read, check and load one event file in one transaction, its report recorded with its
    events; the report (contract section 13). The file is streamed: a chunk of events and the
    first errors are all it holds."""
    now = now or dt.datetime.now(dt.UTC)
    tally = Tally()
    with path.open("rb", buffering=0) as raw, engine.begin() as connection:
        hashing = HashingReader(raw)
        stream = io.BufferedReader(hashing, READ_BUFFER_BYTES)
        for chunk in chunks(tally.events(stream), CHUNK_EVENTS):
            tally.counts.merge(store_events.load_events(connection, file_id, chunk, now))
        hashing.read_to_end()
        report = tally.report(path.name, file_id, hashing.hexdigest(), now)
        store_events.record_file(
            connection,
            file_id,
            path.name,
            hashing.hexdigest(),
            hashing.size,
            report["status"],
            report,
            now,
        )
    return report


def finish(claim: claims.Claim, report: dict[str, Any]) -> dict[str, Any]:
    """Write the report, then move the file to ``processed/`` or ``rejected/``, never
    overwriting; the file's summary (paths relative to ``<data>/events/``)."""
    root = claim.data_dir
    written = write_report(root / "reports", claim.name, report)
    moved = folders.move_into(claim.path, root / report["status"], claim.import_id)
    return {
        "file_name": claim.name,
        "file_id": claim.import_id,
        "status": report["status"],
        "lines": report["lines"],
        "loaded": report["loaded"],
        "skipped_duplicates": report["skipped_duplicates"],
        "error_lines": report["error_lines"],
        "report": str(written.relative_to(root)),
        "moved_to": str(moved.relative_to(root)),
    }


def write_report(folder: Path, name: str, report: dict[str, Any]) -> Path:
    """``<folder>/<name>.json``, whole or not at all; a name whose report belongs to another
    file (the same name delivered again) goes into a sub-folder named after the file's id."""
    target = folder / f"{folders.safe_name(name)}.json"
    if _report_of_another(target, report["file_id"]):
        target = folder / report["file_id"] / target.name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _report_of_another(path: Path, file_id: str) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("file_id") != file_id
    except FileNotFoundError:
        return False
    except (OSError, ValueError, AttributeError):
        return True  # not a report of ours: never overwritten


def give_up(engine: Engine, claim: claims.Claim) -> None:
    """After a failure: a file whose load was surely not committed goes back to ``incoming/``;
    anything else stays claimed, released, for the next run. Never raises."""
    try:
        committed: bool | None = file_report(engine, claim.import_id) is not None
    except Exception as exc:  # noqa: BLE001 - the warehouse may be the failure
        log.warning("event file %s: cannot tell whether it was committed: %s", claim.name, exc)
        committed = None
    incoming = claim.data_dir / "incoming"
    if committed is False and _quietly(claim.give_back, incoming):
        log.info("event file %r: back in %s", claim.name, incoming)
        return
    _quietly(claim.release)


def _quietly(action: Callable[..., Any], *args: Any) -> bool:
    """A clean-up step while another error propagates: False when it failed or refused."""
    try:
        return action(*args) is not False
    except Exception as exc:  # noqa: BLE001 - the error that brought us here matters more
        log.error("could not give up an event file's claim: %s", describe(exc))
        return False


class Tally:
    """What a file's report counts, built as its lines stream by: the loader's counts, the
    lines, and the first ``MAX_REPORTED_ERRORS`` errors (every error line is counted)."""

    def __init__(self) -> None:
        self.counts = store_events.EventCounts()
        self.lines = 0
        self.events_read = 0
        self.error_lines = 0
        self.errors: list[dict[str, Any]] = []

    def events(self, stream: BinaryIO) -> Iterator[core_events.Event]:
        """The file's events; its errors are noted here."""
        for number, raw in core_events.read_lines(stream):
            self.lines = max(self.lines, number)
            parsed = core_events.parse_line(number, raw)
            if isinstance(parsed, core_events.LineError):
                self.error_lines += 1
                if len(self.errors) < MAX_REPORTED_ERRORS:
                    self.errors.append(
                        {"line": parsed.line, "code": parsed.code, "message": parsed.message}
                    )
                continue
            self.events_read += 1
            yield parsed

    @property
    def status(self) -> str:
        """``rejected`` when not one of its lines could be read as an event."""
        return "rejected" if self.error_lines and not self.events_read else "processed"

    def report(self, file_name: str, file_id: str, sha256: str, now: dt.datetime) -> dict[str, Any]:
        counts = self.counts
        return {
            "file_name": file_name,
            "file_id": file_id,
            "sha256": sha256,
            "status": self.status,
            "lines": self.lines,
            "by_type": dict(sorted(counts.by_type.items())),
            "loaded": counts.loaded,
            "skipped_duplicates": counts.skipped_duplicates,
            "unknown_request": counts.unknown_request,
            "after_cancel": counts.after_cancel,
            "opted_out": counts.opted_out,
            "error_lines": self.error_lines,
            "errors": self.errors,
            "errors_truncated": self.error_lines > len(self.errors),
            "processed_at": now.astimezone(dt.UTC).isoformat(),
        }


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of ``size`` items (the last one shorter), never an empty one."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class HashingReader(io.RawIOBase):
    """A raw binary stream that hashes (SHA-256) and counts the bytes read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)
        if count:
            self._hash.update(memoryview(buffer)[:count])
            self.size += count
        return count or 0

    def read_to_end(self) -> None:
        """Hash what the reader left unread (a file whose last line it did not need)."""
        block = bytearray(READ_BUFFER_BYTES)
        while self.readinto(block):
            pass

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
