"""The data folder (contract section 6): which upload files are ready, and where files go after.

File names are data, never paths: everything is joined under a merchant's own folder and a name
with a path separator in it is refused.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from review_ingest.errors import UsageError

_PARTIAL_SUFFIXES = (".tmp", ".part", ".filepart")
#: An upload's id, the name of its folder in staging: never a merchant id (lower-case only), so
#: a merchant named ``sftp`` keeps its uploads apart from the SFTP downloads.
UPLOAD_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{12}")
#: Where processed order files are kept (until their retention ends, contract section 11).
STORED_KINDS = ("processed", "rejected")


@dataclass(frozen=True)
class ReadyUpload:
    """A complete file waiting in a merchant's upload folder (``size`` in bytes)."""

    merchant_id: str
    path: Path
    size: int = 0


def is_partial_name(name: str) -> bool:
    """Names of files still being written: hidden, or with an upload tool's temporary suffix."""
    return name.startswith(".") or name.lower().endswith(_PARTIAL_SUFFIXES)


def safe_name(name: str) -> str:
    """A file name used as data: refused when it could point anywhere else."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise UsageError(f"refused file name {name!r}: a file name may not hold a path")
    return name


def ready_uploads(
    data_dir: Path, min_age_seconds: float, now: float | None = None
) -> list[ReadyUpload]:
    """Every complete file of ``<data>/uploads/<folder>/``, oldest first, folder by folder."""
    now = time.time() if now is None else now
    uploads = data_dir / "uploads"
    if not uploads.is_dir():
        return []
    found: list[tuple[float, ReadyUpload]] = []
    for folder in sorted(p for p in uploads.iterdir() if p.is_dir()):
        for entry in os.scandir(folder):
            if not entry.is_file(follow_symlinks=False) or is_partial_name(entry.name):
                continue
            stat = entry.stat(follow_symlinks=False)
            if now - stat.st_mtime >= min_age_seconds:
                found.append(
                    (stat.st_mtime, ReadyUpload(folder.name, Path(entry.path), stat.st_size))
                )
    return [pending for _, pending in sorted(found, key=lambda item: (item[0], str(item[1].path)))]


def upload_path(data_dir: Path, merchant_id: str, name: str) -> Path:
    return data_dir / "uploads" / safe_name(merchant_id) / safe_name(name)


def staging_root(data_dir: Path) -> Path:
    """``<data>/staging/``: files uploaded from the browser, checked, waiting for their import,
    in ``<merchant_id>/<upload_id>/`` (contract section 12; ``backoffice.uploads``), and SFTP
    downloads being claimed, in ``sftp/<merchant_id>/`` (``pipeline.sftp_inbox``)."""
    return data_dir / "staging"


def move_after(path: Path, data_dir: Path, merchant_id: str, status: str, import_id: str) -> Path:
    """Move a processed upload to ``processed/`` or ``rejected/``, keeping its name, never
    overwriting: a name already taken there goes into a sub-folder named after the import."""
    kind = "rejected" if status == "rejected" else "processed"
    return move_into(path, data_dir / kind / safe_name(merchant_id), import_id)


def move_into(path: Path, folder: Path, fallback: str) -> Path:
    """Move ``path`` into ``folder``, keeping its name, never overwriting: a name already taken
    there goes into the sub-folder ``fallback`` (an import's or a file's id)."""
    target = folder / safe_name(path.name)
    if _move_no_overwrite(path, target):
        return target
    target = folder / safe_name(fallback) / path.name
    if not _move_no_overwrite(path, target):
        raise FileExistsError(f"{target} already exists: {path} was left in place")
    return target


def _move_no_overwrite(source: Path, target: Path) -> bool:
    """Link-then-unlink is atomic and never replaces an existing file (``rename`` would).

    A target that already is ``source`` (the same inode: a move killed between its link and its
    unlink) only needs the unlink.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except FileExistsError:
        if not os.path.samefile(source, target):
            return False
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
            raise
        if target.exists():
            return False
        shutil.copy2(source, target)
    source.unlink()
    return True


def stored_files(data_dir: Path, merchant_id: str | None = None) -> Iterator[tuple[str, Path]]:
    """``(merchant_id, path)`` of every order file kept in ``processed/`` and ``rejected/``,
    sub-folders included, for one merchant or all (unknown merchants' folders too).

    Symbolic links are neither followed nor listed: nothing outside the data folder is touched.
    """
    for kind in STORED_KINDS:
        root = data_dir / kind
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if folder.is_symlink() or not folder.is_dir():
                continue
            if merchant_id is not None and folder.name != merchant_id:
                continue
            for parent, _dirs, names in os.walk(folder):
                for name in sorted(names):
                    path = Path(parent) / name
                    if path.is_file() and not path.is_symlink():
                        yield folder.name, path
