"""Claims: exactly one run processes a file, and a file left by a killed run is taken over.

Before a run processes a file it renames it into a claim folder of its own,
``<data>/claims/<merchant_id>/<claim_id>/<name>``, beside which ``<claim_id>.json`` says who
holds it and until when. ``rename`` is atomic: when two runs (the upload DAG on two workers, a
backfill) pick the same file, one rename succeeds and the other finds the file gone and skips it.

The claim record also carries the ``import_id`` the run will record. A run killed after its
warehouse commit leaves its claim behind; the next run that takes it over finds that import in
the warehouse, and only finishes it (reports, move) instead of importing the file again.

A claim can be taken over (``claimable``) when

- its holder released it (``<claim_id>.released.json``: a failed try, the file kept), or
- its lease has run out (``lease_until``, ``REVIEW_INGEST_CLAIM_LEASE_SECONDS`` after the claim,
  30 minutes by default: far longer than any file's processing), or
- its holder runs on this machine (same boot and pid namespace) and that process is gone.

Across machines sharing the data folder a process id means nothing: there the lease decides.
Taking over is the same atomic rename, from the old claim folder into a new claim: two runs taking
over the same claim cannot both win. A file is never deleted here except a downloaded SFTP copy
(``discard``), whose original is still on the server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import socket
import stat
import uuid
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from review_ingest import settings
from review_ingest.core.outcomes import new_import_id
from review_ingest.errors import UsageError
from review_ingest.sources.folders import safe_name

log = logging.getLogger(__name__)

#: Where a claimed file came from: the upload folder, or an SFTP inbox (a downloaded copy).
ORIGINS = ("upload", "sftp")
_HELD = ".json"
_RELEASED = ".released.json"


@dataclass(frozen=True)
class Owner:
    """The process holding a claim. ``machine`` (boot id and pid namespace) says where ``pid``
    means something; ``started`` (the process's start time) tells a reused pid apart."""

    host: str
    machine: str | None
    pid: int
    started: int | None

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), this_machine(), pid, process_start(pid))

    def is_gone(self) -> bool:
        """True only when this machine can tell that the process has ended."""
        if self.machine is None or self.machine != this_machine():
            return False
        return not process_alive(self.pid, self.started)


@dataclass(frozen=True)
class Claim:
    """A file held by one run. ``path`` is the file; ``record`` the claim's JSON."""

    data_dir: Path
    merchant_id: str
    claim_id: str
    name: str
    origin: str  # "upload" or "sftp"
    source: str  # the imports.source the run records: upload, sftp or backfill
    import_id: str
    lease_until: dt.datetime
    owner: Owner
    send_now: bool = False
    #: What identifies the original of an SFTP copy: its size, server mtime and SHA-256.
    remote: dict[str, Any] = field(default_factory=dict)
    released: bool = False

    @property
    def folder(self) -> Path:
        return claims_dir(self.data_dir, self.merchant_id) / self.claim_id

    @property
    def path(self) -> Path:
        return self.folder / self.name

    @property
    def record(self) -> Path:
        suffix = _RELEASED if self.released else _HELD
        return claims_dir(self.data_dir, self.merchant_id) / f"{self.claim_id}{suffix}"

    def is_claimable(self, now: dt.datetime | None = None) -> bool:
        """Released, out of its lease, or its holder is gone: another run may take it over."""
        now = now or dt.datetime.now(dt.UTC)
        return self.released or now >= self.lease_until or self.owner.is_gone()

    def release(self) -> None:
        """Let the next run take the file over at once (a failed try): the file stays here.
        A rename, so that it works on a full disk too."""
        if self.released:
            return
        os.rename(self.record, replace(self, released=True).record)
        log.info(
            "merchant %s file %r: claim %s released", self.merchant_id, self.name, self.claim_id
        )

    def give_back(self, folder: Path) -> bool:
        """Move the file back into ``folder`` (its upload folder) and end the claim; False, the
        claim kept, when a file of that name is there again."""
        target = folder / self.name
        folder.mkdir(parents=True, exist_ok=True)
        try:
            os.link(self.path, target)
        except FileExistsError:
            if not os.path.samefile(self.path, target):
                return False
        self.path.unlink()
        self.drop()
        return True

    def discard(self) -> None:
        """Delete the file and end the claim: only for a downloaded copy whose original is
        still on the server."""
        self.path.unlink(missing_ok=True)
        self.drop()

    def drop(self) -> None:
        """End the claim once its file has left the folder (moved to processed/, rejected/...)."""
        with contextlib.suppress(FileNotFoundError):
            self.folder.rmdir()
        for suffix in (_HELD, _RELEASED):
            claims_dir(self.data_dir, self.merchant_id).joinpath(f"{self.claim_id}{suffix}").unlink(
                missing_ok=True
            )


def claims_dir(data_dir: Path, merchant_id: str) -> Path:
    return data_dir / "claims" / safe_name(merchant_id)


def claim(
    source_path: Path,
    data_dir: Path,
    merchant_id: str,
    *,
    origin: str,
    source: str,
    import_id: str | None = None,
    send_now: bool = False,
    remote: dict[str, Any] | None = None,
    lease_seconds: float | None = None,
) -> Claim | None:
    """Move ``source_path`` into a new claim; None when another run took it first (it is gone).

    The record is written first, then the folder is made, then the file is renamed in: a run
    killed on the way leaves a claim without its file, which the next run removes. Raises on
    other errors (a full disk: the file stays where it was).
    """
    if origin not in ORIGINS:
        raise ValueError(f"claim origin must be one of {ORIGINS}, not {origin!r}")
    now = dt.datetime.now(dt.UTC)
    lease = settings.claim_lease_seconds() if lease_seconds is None else lease_seconds
    new = Claim(
        data_dir=data_dir,
        merchant_id=merchant_id,
        claim_id=f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}",
        name=safe_name(source_path.name),
        origin=origin,
        source=source,
        import_id=import_id or new_import_id(now),
        lease_until=now + dt.timedelta(seconds=lease),
        owner=Owner.me(),
        send_now=send_now,
        remote=dict(remote or {}),
    )
    _write_record(new)
    try:
        new.folder.mkdir()
        os.rename(source_path, new.path)
    except FileNotFoundError:
        new.drop()
        return None
    except BaseException:
        new.drop()
        raise
    log.info(
        "merchant %s file %r: claimed as %s (import %s)",
        merchant_id,
        new.name,
        new.claim_id,
        new.import_id,
    )
    return new


def take_over(old: Claim, lease_seconds: float | None = None) -> Claim | None:
    """Move the file of a claimable claim into a new claim of this process, keeping its
    ``import_id`` (it may be committed already); None when another run took it first."""
    new = claim(
        old.path,
        old.data_dir,
        old.merchant_id,
        origin=old.origin,
        source=old.source,
        import_id=old.import_id,
        send_now=old.send_now,
        remote=old.remote,
        lease_seconds=lease_seconds,
    )
    old.drop()  # empty now, whoever took the file
    if new is not None:
        log.info(
            "merchant %s file %r: took over claim %s (%s) as %s",
            old.merchant_id,
            old.name,
            old.claim_id,
            "released" if old.released else f"held by {old.owner.host} pid {old.owner.pid}",
            new.claim_id,
        )
    return new


def claimable(
    data_dir: Path, merchant_id: str | None = None, origin: str | None = None
) -> list[Claim]:
    """Claims that another run may take over, oldest first; claimable claims that hold no file
    (a run killed while making or ending one) are removed on the way."""
    found: list[Claim] = []
    now = dt.datetime.now(dt.UTC)
    for item in all_claims(data_dir, merchant_id):
        if (origin and item.origin != origin) or not item.is_claimable(now):
            continue
        if item.path.is_file():
            found.append(item)
        else:
            item.drop()
    return found


def held(data_dir: Path, merchant_id: str, name: str) -> Claim | None:
    """A claim of a live run holding ``name`` of this merchant's uploads, if any."""
    for item in all_claims(data_dir, merchant_id):
        if item.origin == "upload" and item.name == name and not item.is_claimable():
            return item
    return None


def all_claims(data_dir: Path, merchant_id: str | None = None) -> list[Claim]:
    """Every claim record under ``<data>/claims/`` (of one merchant), oldest first."""
    root = data_dir / "claims"
    folders = [claims_dir(data_dir, merchant_id)] if merchant_id else sorted(root.glob("*"))
    found: list[Claim] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in sorted(folder.glob("*.json")):
            if entry.name.startswith("."):
                continue
            item = _read_record(data_dir, folder.name, entry)
            if item is not None:
                found.append(item)
    return found


def claim_upload(
    data_dir: Path,
    merchant_id: str,
    name: str,
    *,
    source: str = "upload",
    send_now: bool = False,
) -> Claim | None:
    """Claim ``<data>/uploads/<merchant_id>/<name>``; when it is no longer there, take over a
    claimable claim of that name (a run killed or failed on it). None when a live run holds it
    or it is gone."""
    from review_ingest.sources.folders import upload_path

    path = upload_path(data_dir, merchant_id, name)
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(os.lstat(path).st_mode):  # a folder or a link is not an order file
            raise UsageError(f"merchant {merchant_id!r}: {name!r} is not a regular file")
    new = claim(path, data_dir, merchant_id, origin="upload", source=source, send_now=send_now)
    if new is not None:
        return new
    for old in claimable(data_dir, merchant_id, origin="upload"):
        if old.name == name:
            taken = take_over(old)
            if taken is not None:
                return taken
    return None


# -- records --------------------------------------------------------------------------------


def _write_record(item: Claim) -> None:
    """The claim's JSON, whole or not at all (written aside, then renamed)."""
    folder = claims_dir(item.data_dir, item.merchant_id)
    folder.mkdir(parents=True, exist_ok=True)
    body = {
        "claim_id": item.claim_id,
        "merchant_id": item.merchant_id,
        "name": item.name,
        "origin": item.origin,
        "source": item.source,
        "import_id": item.import_id,
        "lease_until": item.lease_until.isoformat(),
        "owner": asdict(item.owner),
        "send_now": item.send_now,
        "remote": item.remote,
    }
    tmp = folder / f".{item.claim_id}.json.tmp"
    try:
        tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        os.rename(tmp, item.record)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_record(data_dir: Path, merchant_id: str, entry: Path) -> Claim | None:
    released = entry.name.endswith(_RELEASED)
    try:
        body = json.loads(entry.read_text(encoding="utf-8"))
        return Claim(
            data_dir=data_dir,
            merchant_id=merchant_id,
            claim_id=body["claim_id"],
            name=safe_name(body["name"]),
            origin=body["origin"],
            source=body["source"],
            import_id=body["import_id"],
            lease_until=dt.datetime.fromisoformat(body["lease_until"]),
            owner=Owner(**body["owner"]),
            send_now=bool(body.get("send_now")),
            remote=dict(body.get("remote") or {}),
            released=released,
        )
    except FileNotFoundError:  # ended meanwhile
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("claim record %s unreadable (%s): left alone", entry, exc)
        return None


# -- is the holder still there? --------------------------------------------------------------


@cache
def this_machine() -> str | None:
    """This kernel's boot and this pid namespace: where a process id names one process.
    None when /proc cannot tell (then only leases count)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}"


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), None when it does not exist."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def process_alive(pid: int, started: int | None) -> bool:
    """Whether ``pid`` runs and is the process that started at ``started`` (not a zombie)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from its third field (state) on; the name may hold spaces."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ESRCH):
            log.debug("cannot read /proc/%d/stat: %s", pid, exc)
        return None
    return text.rpartition(")")[2].split()
