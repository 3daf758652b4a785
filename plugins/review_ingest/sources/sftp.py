"""SFTP transport: list complete files in a merchant's inbox, download them, publish outcomes.

Plain functions over a paramiko ``SFTPClient`` (from ``connect``), so that the DAG, the backfill
and the tests share one implementation. File names are data, never paths: a name is checked
before it is joined to the inbox (contract section 6).

Publishing (contract section 6) writes the two reports beside the file's final name first and
moves the file last. The move is the commit point: before it the file is still in the inbox and
a re-run redoes everything; after it nothing is left to do, and ``publish`` called again for a
file that is no longer in the inbox returns the copy already published (see ``publish``).

Error messages name the inbox and the file; no file content is ever logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import stat
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from review_ingest.errors import PermanentError

if TYPE_CHECKING:
    from airflow.providers.sftp.hooks.sftp import SFTPHook
    from paramiko import SFTPAttributes, SFTPClient, SSHClient

log = logging.getLogger(__name__)

OUTCOMES = ("processed", "rejected")
#: Suffixes of files still being uploaded (compared lower-case).
PARTIAL_SUFFIXES = (".tmp", ".part", ".filepart")
REPORT_SUFFIX = ".report.json"
ERRORS_SUFFIX = ".errors.csv"
#: Mode of everything publish writes: the merchant's user (whom we connect as) can read it.
FILE_MODE = 0o644
DIR_MODE = 0o755
#: Connection attempts per session, and the pause between two (as Airflow's SSHHook does).
CONNECT_ATTEMPTS = 3
CONNECT_PAUSE_SECONDS = (3.0, 5.0)
#: How often publish picks another name when a concurrent writer took the one it chose.
_MOVE_ATTEMPTS = 10


class TransportError(RuntimeError):
    """An SFTP step failed (server unreachable, connection lost, refused operation)."""


class AccessRefused(TransportError, PermanentError):
    """The server refused our credentials or showed another host key, or the connection is
    not configured: a configuration error, which a retry cannot cure."""


@dataclass(frozen=True)
class RemoteFile:
    """A file of an inbox as the server listed it (``mtime``: seconds since the epoch)."""

    name: str
    size: int
    mtime: float


@contextmanager
def connect(conn_id: str) -> Iterator[SFTPClient]:
    """An SFTP session with the settings of Airflow's SFTP connection ``conn_id``; closed on exit.

    The connection must pin the server's ``host_key`` (extra); ``no_host_key_check`` and
    ``allow_host_key_change`` are refused, so a server we do not know is never trusted.

    ``SFTPHook`` reads the connection, but the SSH session is opened here and every failed
    attempt is closed at once: the hook leaves a refused attempt's session open until the
    server's ``LoginGraceTime``, and past its ``MaxStartups`` the server drops other clients.
    A refusal (key, password, host key) raises AccessRefused, never retried; other failures are
    tried ``CONNECT_ATTEMPTS`` times, ``CONNECT_PAUSE_SECONDS`` apart, then raise TransportError.
    """
    hook = _hook(conn_id)
    where = f"SFTP connection {conn_id!r} ({hook.username}@{hook.remote_host}:{hook.port})"
    client = _open_ssh(hook, where, CONNECT_ATTEMPTS)
    try:
        try:
            sftp = client.open_sftp()
        except Exception as exc:
            raise TransportError(f"{where}: cannot open an SFTP session: {_describe(exc)}") from exc
        try:
            yield sftp
        finally:
            # Closing a dropped connection raises EOFError: the error that dropped it is the news.
            with contextlib.suppress(Exception):
                sftp.close()
    finally:
        client.close()


def _hook(conn_id: str) -> SFTPHook:
    """The connection's settings, read by Airflow's SFTPHook; refused unless the host key is
    pinned. An unknown or unreadable connection is a configuration error."""
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    try:
        hook = SFTPHook(ssh_conn_id=conn_id)
    except Exception as exc:  # unknown connection, unreadable host_key...
        raise AccessRefused(f"SFTP connection {conn_id!r}: {_describe(exc)}") from exc
    if hook.no_host_key_check or hook.allow_host_key_change or hook.host_key is None:
        raise AccessRefused(
            f"SFTP connection {conn_id!r} must pin the server's host_key "
            "(and not set no_host_key_check or allow_host_key_change)"
        )
    return hook


def _open_ssh(hook: SFTPHook, where: str, attempts: int) -> SSHClient:
    """An authenticated SSH client; every failed attempt is closed before the next."""
    import paramiko

    for attempt in range(1, attempts + 1):
        client = paramiko.SSHClient()
        client.get_host_keys().add(_known_hosts_name(hook), hook.host_key.get_name(), hook.host_key)
        try:
            client.connect(**_connect_options(hook))
        except (paramiko.AuthenticationException, paramiko.BadHostKeyException) as exc:
            client.close()
            raise AccessRefused(f"{where}: the server refused us: {_describe(exc)}") from exc
        except Exception as exc:  # paramiko and socket errors have no common base
            client.close()
            if attempt == attempts:
                raise TransportError(f"{where}: cannot connect: {_describe(exc)}") from exc
            pause = random.uniform(*CONNECT_PAUSE_SECONDS)
            log.info("%s: attempt %d failed (%s); next in %.1f s", where, attempt, exc, pause)
            time.sleep(pause)
            continue
        if hook.keepalive_interval:
            client.get_transport().set_keepalive(hook.keepalive_interval)
        return client
    raise AssertionError("unreachable: attempts >= 1")


def _known_hosts_name(hook: SFTPHook) -> str:
    return hook.remote_host if hook.port == 22 else f"[{hook.remote_host}]:{hook.port}"


def _connect_options(hook: SFTPHook) -> dict[str, object]:
    """paramiko's ``connect`` arguments from the connection, as SSHHook passes them."""
    options: dict[str, object] = {
        "hostname": hook.remote_host,
        "port": hook.port,
        "username": hook.username,
        "timeout": hook.conn_timeout,
        "banner_timeout": hook.banner_timeout,
        "auth_timeout": hook.auth_timeout,
        "compress": hook.compress,
        "look_for_keys": hook.look_for_keys,
    }
    if hook.password:
        options["password"] = hook.password.strip()
    if hook.pkey:
        options["pkey"] = hook.pkey
    if hook.key_file:
        options["key_filename"] = hook.key_file
    if hook.disabled_algorithms:
        options["disabled_algorithms"] = hook.disabled_algorithms
    return options


def list_ready(
    sftp: SFTPClient, inbox: str, now: float, min_age_seconds: float
) -> list[RemoteFile]:
    """The complete files directly in ``inbox``, oldest first.

    Skipped: folders (``processed/``, ``rejected/``), symlinks and other non-regular entries,
    names that mark an upload in progress (``.`` prefix, ``.tmp``/``.part``/``.filepart``), and
    files whose server modification time is less than ``min_age_seconds`` before ``now``
    (a merchant's client may still be writing them).
    """
    try:
        entries = sftp.listdir_attr(inbox)
    except UnicodeDecodeError as exc:
        raise TransportError(f"SFTP inbox {inbox}: a file name is not valid UTF-8") from exc
    except Exception as exc:
        raise TransportError(f"SFTP inbox {inbox}: cannot list: {_describe(exc)}") from exc
    ready = [
        RemoteFile(entry.filename, entry.st_size or 0, float(entry.st_mtime))
        for entry in entries
        if _is_complete(entry, now, min_age_seconds)
    ]
    return sorted(ready, key=lambda f: (f.mtime, f.name))


def download(sftp: SFTPClient, inbox: str, name: str, dest_dir: Path) -> Path:
    """Copy ``<inbox>/<name>`` to ``dest_dir/<name>`` and return that path.

    The bytes go to a temporary file in ``dest_dir`` that is renamed only once its size equals
    the server's size before and after the transfer, so a broken or changing transfer raises
    and leaves no file under ``name``. An earlier copy of the same name in ``dest_dir`` is
    replaced (a re-run downloads the same file again).
    """
    check_name(inbox, name)
    remote = _join(inbox, name)
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=".download-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch(sftp, inbox, name, remote, out)
        final = dest_dir / name
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("SFTP inbox %s: downloaded %r (%d bytes)", inbox, name, final.stat().st_size)
    return final


def publish(
    sftp: SFTPClient,
    inbox: str,
    name: str,
    outcome: str,
    report_json: bytes,
    errors_csv: bytes,
    *,
    size: int | None = None,
) -> str:
    """Move ``<inbox>/<name>`` into ``<inbox>/<outcome>/`` with its two reports; return its path.

    The file keeps its name unless that name is taken there: ``orders.csv`` then becomes
    ``orders.2.csv``, ``orders.3.csv``… (never an overwrite). ``<final>.report.json`` and
    ``<final>.errors.csv`` are written first (each to a hidden temporary name, then renamed, so
    a merchant never reads half a report), the move comes last.

    Idempotent: when ``name`` is no longer in the inbox (a re-run after the move), nothing is
    written and the path of the published copy is returned: among ``<outcome>/orders.csv``,
    ``orders.<n>.csv`` with both reports (and of ``size`` bytes, when given), the one whose
    report is newest. Without such a copy this raises TransportError. Run one publisher per
    inbox at a time: two publishing the same name at once could write over each other's reports.
    """
    check_name(inbox, name)
    if outcome not in OUTCOMES:
        raise ValueError(f"SFTP inbox {inbox}, file {name!r}: outcome must be one of {OUTCOMES}")
    folder = _join(inbox, outcome)
    source = _join(inbox, name)
    _ensure_folder(sftp, inbox, name, folder)
    if not _exists(sftp, inbox, name, source):
        return _already_published(sftp, inbox, name, folder, size)
    taken = _taken(sftp, inbox, name, folder)
    for _attempt in range(_MOVE_ATTEMPTS):
        final = _join(folder, _free_name(name, taken))
        _write_atomic(sftp, inbox, name, final + REPORT_SUFFIX, report_json)
        _write_atomic(sftp, inbox, name, final + ERRORS_SUFFIX, errors_csv)
        if _move(sftp, inbox, name, source, final):
            log.info("SFTP inbox %s: %r published as %s", inbox, name, final)
            return final
        taken = set(_listdir(sftp, inbox, name, folder))  # someone took that name meanwhile
    raise TransportError(f"SFTP inbox {inbox}, file {name!r}: no free name in {folder}/")


def check_name(inbox: str, name: str) -> None:
    """Refuse a file name that could act as a path (``/``, ``\\``, ``.``, ``..``, NUL)."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ValueError(f"SFTP inbox {inbox}: refusing file name {name!r}: not a plain name")


def numbered_name(name: str, number: int) -> str:
    """``orders.csv`` -> ``orders.<number>.csv``; a name without extension gets ``.<number>``."""
    stem, extension = _split_extension(name)
    return f"{stem}.{number}{extension}"


def _split_extension(name: str) -> tuple[str, str]:
    """``orders.csv`` -> (``orders``, ``.csv``); ``orders`` and ``.hidden`` have none."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, f".{ext}"


# -- listing --------------------------------------------------------------------------------


def _is_complete(entry: SFTPAttributes, now: float, min_age_seconds: float) -> bool:
    name = entry.filename
    if name.startswith(".") or name.lower().endswith(PARTIAL_SUFFIXES):
        return False
    if entry.st_mode is None or not stat.S_ISREG(entry.st_mode) or entry.st_mtime is None:
        return False
    return now - entry.st_mtime >= min_age_seconds


# -- download -------------------------------------------------------------------------------


def _fetch(sftp: SFTPClient, inbox: str, name: str, remote: str, out: BinaryIO) -> None:
    """Stream the remote file into ``out``; raise unless every byte the server has arrived."""
    try:
        expected = sftp.stat(remote).st_size
        written = sftp.getfo(remote, out)
        after = sftp.stat(remote).st_size
    except Exception as exc:
        raise TransportError(
            f"SFTP inbox {inbox}, file {name!r}: download failed: {_describe(exc)}"
        ) from exc
    if not written == expected == after:
        raise TransportError(
            f"SFTP inbox {inbox}, file {name!r}: download incomplete or file changed "
            f"(server size {expected}, then {after}; received {written} bytes)"
        )


# -- publish --------------------------------------------------------------------------------


def _free_name(name: str, taken: set[str]) -> str:
    """The first of ``name``, ``numbered_name(name, 2)``, ``…3``… not in ``taken``.

    ``len(taken) + 1`` candidates always hold a free one.
    """
    candidates = [name] + [numbered_name(name, n) for n in range(2, len(taken) + 2)]
    return next(c for c in candidates if c not in taken)


def _taken(sftp: SFTPClient, inbox: str, name: str, folder: str) -> set[str]:
    """The names of ``folder`` that publish must avoid: none when ``name`` is free there (one
    stat), else the folder's listing. ``processed/`` keeps a year of a merchant's files, so
    listing it for every file would slow each publication as the history grows."""
    if not _exists(sftp, inbox, name, _join(folder, name)):
        return set()
    return set(_listdir(sftp, inbox, name, folder))


def _is_copy_of(name: str, candidate: str) -> bool:
    """Whether ``candidate`` is ``name`` or one of the numbered names publish gives it."""
    if candidate == name:
        return True
    stem, extension = _split_extension(name)
    prefix = f"{stem}."
    if not (candidate.startswith(prefix) and candidate.endswith(extension)):
        return False
    number = candidate[len(prefix) : len(candidate) - len(extension)]
    return number.isascii() and number.isdigit() and not number.startswith("0")


def _already_published(
    sftp: SFTPClient, inbox: str, name: str, folder: str, size: int | None
) -> str:
    """The copy of ``name`` in ``folder`` whose reports are the newest (a re-run after the move)."""
    entries = {e.filename: e for e in _listdir_attr(sftp, inbox, name, folder)}
    matches = [
        candidate
        for candidate in entries
        if _is_copy_of(name, candidate)
        and candidate + REPORT_SUFFIX in entries
        and candidate + ERRORS_SUFFIX in entries
        and (size is None or entries[candidate].st_size == size)
    ]
    if not matches:
        raise TransportError(
            f"SFTP inbox {inbox}, file {name!r}: not in the inbox and no published copy "
            f"with reports in {folder}/"
        )
    newest = max(matches, key=lambda c: entries[c + REPORT_SUFFIX].st_mtime or 0)
    final = _join(folder, newest)
    log.info("SFTP inbox %s: %r was already published as %s", inbox, name, final)
    return final


def _move(sftp: SFTPClient, inbox: str, name: str, source: str, target: str) -> bool:
    """Rename without overwriting; False when ``target`` exists.

    SFTP's plain RENAME fails when the target exists (OpenSSH: link + unlink), which is the
    no-overwrite move we need; ``posix_rename`` would replace it.
    """
    try:
        sftp.rename(source, target)
        return True
    except Exception as exc:
        if _exists(sftp, inbox, name, target):
            return False
        raise TransportError(
            f"SFTP inbox {inbox}, file {name!r}: cannot move to {target}: {_describe(exc)}"
        ) from exc


def _write_atomic(sftp: SFTPClient, inbox: str, name: str, target: str, data: bytes) -> None:
    """Write ``data`` to a hidden temporary file beside ``target``, then rename it over."""
    folder = target.rpartition("/")[0]
    tmp = _join(folder, f".publish-{uuid.uuid4().hex}.tmp")
    try:
        with sftp.open(tmp, "wb") as remote:
            remote.set_pipelined(True)
            remote.write(data)
        sftp.chmod(tmp, FILE_MODE)
        _replace(sftp, tmp, target)
    except Exception as exc:
        _remove_quietly(sftp, tmp)
        raise TransportError(
            f"SFTP inbox {inbox}, file {name!r}: cannot write {target}: {_describe(exc)}"
        ) from exc


def _replace(sftp: SFTPClient, source: str, target: str) -> None:
    """Atomic replace with OpenSSH's posix-rename; other servers: remove, then rename."""
    try:
        sftp.posix_rename(source, target)
    except OSError:
        _remove_quietly(sftp, target)
        sftp.rename(source, target)


def _ensure_folder(sftp: SFTPClient, inbox: str, name: str, folder: str) -> None:
    found = _stat(sftp, inbox, name, folder)
    if found is not None:
        if not stat.S_ISDIR(found.st_mode or 0):
            raise TransportError(f"SFTP inbox {inbox}, file {name!r}: {folder} is not a folder")
        return
    try:
        sftp.mkdir(folder, DIR_MODE)
        sftp.chmod(folder, DIR_MODE)  # mkdir's mode goes through the server's umask
    except Exception as exc:
        if not _exists(sftp, inbox, name, folder):  # not created by a concurrent run either
            raise TransportError(
                f"SFTP inbox {inbox}, file {name!r}: cannot create {folder}/: {_describe(exc)}"
            ) from exc


# -- small helpers --------------------------------------------------------------------------


def _exists(sftp: SFTPClient, inbox: str, name: str, path: str) -> bool:
    return _stat(sftp, inbox, name, path) is not None


def _stat(sftp: SFTPClient, inbox: str, name: str, path: str) -> SFTPAttributes | None:
    """The server's stat of ``path``, None when it does not exist."""
    try:
        return sftp.stat(path)
    except FileNotFoundError:
        return None
    except Exception as exc:
        raise TransportError(
            f"SFTP inbox {inbox}, file {name!r}: cannot stat {path}: {_describe(exc)}"
        ) from exc


def _listdir(sftp: SFTPClient, inbox: str, name: str, folder: str) -> list[str]:
    return [entry.filename for entry in _listdir_attr(sftp, inbox, name, folder)]


def _listdir_attr(sftp: SFTPClient, inbox: str, name: str, folder: str) -> list[SFTPAttributes]:
    try:
        return sftp.listdir_attr(folder)
    except Exception as exc:
        raise TransportError(
            f"SFTP inbox {inbox}, file {name!r}: cannot list {folder}/: {_describe(exc)}"
        ) from exc


def _remove_quietly(sftp: SFTPClient, path: str) -> None:
    """Best-effort cleanup of our own temporary file; the original error matters more."""
    try:
        sftp.remove(path)
    except Exception:
        log.debug("could not remove %s", path, exc_info=True)


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}"


def _describe(exc: BaseException) -> str:
    """``ClassName: message``: paramiko's messages alone ("Socket is closed") lack context."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
