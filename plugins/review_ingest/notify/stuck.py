"""Files left waiting: a complete file still in an upload folder or an SFTP inbox longer than
``REVIEW_INGEST_STUCK_MINUTES`` is told to the data team, once per file and modification time.

An upload is taken within minutes (``orders_upload_ingest`` runs every 10), so one waiting an
hour means a paused or failing DAG or a misconfigured merchant. An SFTP inbox is read once a
day: its files are checked at the end of each ``orders_sftp_ingest`` run, which has just taken
every complete file, on the session it already holds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from review_ingest.sources import folders, sftp


@dataclass(frozen=True)
class WaitingFile:
    """A complete file not taken yet: where (``upload`` or ``sftp``), whose, since when
    (``mtime``, seconds since the epoch)."""

    source: str
    merchant_id: str
    name: str
    mtime: float
    folder: str


def stuck_uploads(data_dir: Path, now: dt.datetime, minutes: int) -> list[WaitingFile]:
    """The complete files of ``<data>/uploads/*/`` last modified ``minutes`` or more before
    ``now``, oldest first."""
    found = []
    for upload in folders.ready_uploads(data_dir, minutes * 60, now.timestamp()):
        try:
            mtime = upload.path.stat().st_mtime
        except FileNotFoundError:  # taken meanwhile
            continue
        folder = str(upload.path.parent)
        found.append(WaitingFile("upload", upload.merchant_id, upload.path.name, mtime, folder))
    return found


def stuck_in_inbox(
    client: Any, merchant_id: str, inbox: str, now: dt.datetime, minutes: int
) -> list[WaitingFile]:
    """The complete files of an SFTP inbox (on an open session) last modified ``minutes`` or
    more before ``now``, oldest first."""
    listed = sftp.list_ready(client, inbox, now.timestamp(), minutes * 60)
    return [WaitingFile("sftp", merchant_id, f.name, f.mtime, inbox) for f in listed]
