"""The tasks of ``review_data_retention``: each part of the purge (``privacy.retention``) as a
task, and the run's totals.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from types import MappingProxyType

from review_ingest.errors import describe
from review_ingest.privacy.retention import (
    PurgeFailed,
    cutoff,
    purge_data_docs,
    purge_local_files,
    purge_requests,
    purge_sftp,
    purge_staging,
)

log = logging.getLogger(__name__)

#: ``summarize_purge`` without a ``docs_task``: nothing deleted.
NO_DOCS: Mapping[str, int] = MappingProxyType({})


def start(now: dt.datetime | None = None) -> str:
    """The run's cutoff, once for all its tasks (ISO 8601): a configuration error fails here."""
    from review_ingest import settings

    return cutoff(now or dt.datetime.now(dt.UTC), settings.retention_days()).isoformat()


def requests_task(before: str, warehouse_url: str) -> int:
    from review_ingest.store import warehouse

    engine = warehouse.engine_for(warehouse_url)
    warehouse.migrate(engine)
    return purge_requests(engine, dt.datetime.fromisoformat(before))


def files_task(before: str) -> dict[str, int]:
    """Every merchant's folders are purged; then the ones that failed are named."""
    from review_ingest import settings

    result = purge_local_files(settings.data_dir(), dt.datetime.fromisoformat(before))
    if result.failures:
        named = "; ".join(f"merchant {m}: {why}" for m, why in sorted(result.failures.items()))
        raise PurgeFailed(f"stored files could not all be purged: {named} (the others were)")
    return result.deleted


def staging_task(now: dt.datetime | None = None) -> int:
    """Uploads staged longer than ``REVIEW_INGEST_STAGING_HOURS`` (contract section 12)."""
    from review_ingest import settings

    before = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(hours=settings.staging_hours())
    return purge_staging(settings.data_dir(), before)


def docs_task(now: dt.datetime | None = None) -> dict[str, int]:
    """Validation results and Data Docs pages older than
    ``REVIEW_INGEST_DOCS_RETENTION_DAYS``, then the Data Docs index without them."""
    from review_ingest import settings

    days = settings.docs_retention_days()
    done = purge_data_docs(settings.data_dir(), now or dt.datetime.now(dt.UTC), days)
    return done.as_dict()


def sftp_task(merchant_ids: list[str], before: str) -> dict[str, int]:
    """Each merchant's SFTP server purged, by merchant id; one that fails never stops the others,
    and is named after them (``failures.raise_failures``)."""
    from review_ingest import settings
    from review_ingest.core.merchants import read_merchants
    from review_ingest.errors import ConfigError
    from review_ingest.pipeline.failures import raise_failures

    merchants = read_merchants(settings.merchants_file()).merchants
    deleted: dict[str, int] = {}
    failures: dict[str, Exception] = {}
    for merchant_id in merchant_ids:
        merchant = merchants.get(merchant_id)
        try:
            if merchant is None or merchant.sftp is None:
                raise ConfigError(
                    f"merchant {merchant_id!r} has no sftp block in the merchants file"
                )
            deleted[merchant_id] = purge_sftp(merchant, dt.datetime.fromisoformat(before))
        except Exception as exc:  # noqa: BLE001 - the other merchants are still purged
            log.error("retention: merchant %s: %s", merchant_id, describe(exc))
            failures[merchant_id] = exc
    raise_failures(failures, PurgeFailed)
    return deleted


def _recorded(totals: dict[str, object], warehouse_url: str) -> bool:
    """The run's entry in the audit trail (actor ``dag:review_data_retention``); False when it
    could not be written."""
    from review_ingest.privacy.retention import record_purge
    from review_ingest.store import warehouse

    try:
        engine = warehouse.engine_for(warehouse_url)
        record_purge(engine, dict(totals), None, dt.datetime.now(dt.UTC))
    except Exception as exc:  # noqa: BLE001 - the totals are still logged and the task fails
        log.error("retention: the audit entry could not be written: %s", describe(exc))
        return False
    return True


def summarize_purge(
    before: str,
    requests: int | None,
    files: dict[str, int] | None,
    sftp_groups: list[list[str]],
    sftp_deleted: list[dict[str, int] | None],
    *,
    staging: int | None = 0,
    warehouse_url: str | None = None,
    docs: Mapping[str, int] | None = NO_DOCS,
) -> dict[str, object]:
    """The run's totals, recorded in the audit trail of ``warehouse_url`` when given; fails,
    after the others are done, naming what did not purge (the merchants of an ``sftp_task``
    that failed; ``staging`` None: ``staging_task`` failed; ``docs`` None: ``docs_task``) or the
    audit entry missing."""
    done = {m: n for part in sftp_deleted or [] if part for m, n in part.items()}
    parts = (("warehouse", requests), ("files", files), ("staging", staging), ("data_docs", docs))
    failed = [name for name, value in parts if value is None]
    failed += [f"sftp/{m}" for group in sftp_groups for m in group if m not in done]
    totals: dict[str, object] = {
        "cutoff": before,
        "requests_anonymised": requests or 0,
        "files_deleted": sum((files or {}).values()),
        "sftp_files_deleted": done,
        "staged_uploads_deleted": staging or 0,
        "validation_results_deleted": (docs or {}).get("validation_results_deleted", 0),
        "data_docs_pages_deleted": (docs or {}).get("data_docs_pages_deleted", 0),
        "failed": failed,
    }
    log.info("retention totals: %s", totals)
    if warehouse_url is not None and not _recorded(totals, warehouse_url):
        failed.append("audit")
    if failed:
        raise PurgeFailed(f"retention: {', '.join(failed)} failed (see their tasks)")
    return totals
