"""SFTP at scale (issue 9, target 5): one ``orders_sftp_ingest`` run over 1,000 files of 100
merchants on a loopback OpenSSH sshd, under 100 ms per file in all, one connection per merchant.

The server is the SFTP tests' (``tests/kit/sshd.py``: a real ``sshd``, one
chrooted key-only user per merchant). Each merchant's inbox gets ``--files`` small valid files
(20 rows, ``website_products``), aged an hour; then one real ``airflow dags test
orders_sftp_ingest`` (private AIRFLOW_HOME, SQLite metadata, a throw-away PostgreSQL warehouse)
collects them. The whole command is timed, transfer included; sshd's log counts the logins.

    .venv/bin/python -m benchmarks.bench_sftp                          # 100 x 10 files, ~15 min
    .venv/bin/python -m benchmarks.bench_sftp --merchants 10 --files 10
    REVIEW_INGEST_SFTP_MERCHANTS_PER_TASK=1 .venv/bin/python -m benchmarks.bench_sftp  # a task each

Run from the repository root. Needs root (the server creates Unix users and chroots), OpenSSH,
and PostgreSQL at 127.0.0.1:5432 (user postgres, trust). Its server, folders and database are
removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.measure import OUT_DIR, Ratio, expect, print_verdicts, run_timed, write_json
from review_ingest import settings
from review_ingest.sources.sftp import ERRORS_SUFFIX, REPORT_SUFFIX
from tests.kit import postgres, sshd
from tests.kit.airflow_env import airflow_conn_json, airflow_settings
from tests.kit.factories import TEMPLATE, paris_today, valid_rows, write_merchants, write_rows
from tests.kit.paths import AIRFLOW

DAG_ID = "orders_sftp_ingest"
ROWS = 20
TARGET_S_PER_FILE = 0.1
#: What sshd logs for each login of a merchant's user (``ri_<merchant>``).
LOGIN_LINE = "Accepted publickey for ri_"


@dataclass
class SftpRun:
    merchants: int
    files: int
    seconds: float
    max_rss_mb: float
    logins: int
    processed: int
    merchants_per_task: int

    @property
    def per_file_s(self) -> float:
        return self.seconds / self.files

    def as_dict(self) -> dict[str, Any]:
        return {
            "merchants": self.merchants,
            "files": self.files,
            "seconds": round(self.seconds, 2),
            "per_file_ms": round(self.per_file_s * 1000, 1),
            "max_rss_mb": round(self.max_rss_mb),
            "ssh_logins": self.logins,
            "files_processed_on_server": self.processed,
            "merchants_per_task": self.merchants_per_task,
        }


def merchant_ids(count: int) -> list[str]:
    return [f"bs{number:03d}" for number in range(count)]


def upload(merchant: sshd.SftpMerchant, files: int) -> None:
    """The merchant's files, written straight into its chroot as the merchant's user would
    have left them (owned by it, aged an hour): uploading is not what is measured."""
    user = os.stat(merchant.local(merchant.inbox))
    stamp = time.time() - 3600
    rng = random.Random(merchant.merchant_id)
    for number in range(files):
        path = merchant.local(f"{merchant.inbox}/orders_{number:03d}.csv")
        prefix = f"{merchant.merchant_id}-{number:03d}-"
        write_rows(path, valid_rows(prefix, paris_today(), rng), None, ROWS)
        os.chown(path, user.st_uid, user.st_gid)
        os.utime(path, (stamp, stamp))


def merchants_yaml(path: Path, merchants: list[sshd.SftpMerchant]) -> Path:
    """The merchants file: each merchant with its SFTP connection and folder."""
    settings_of = {
        m.merchant_id: {
            "template": TEMPLATE,
            "sftp": {"conn_id": f"{m.merchant_id}_sftp", "root": m.root},
        }
        for m in merchants
    }
    return write_merchants(path, settings_of)


def airflow_env(
    tmp: Path,
    server: sshd.SftpServer,
    merchants: list[sshd.SftpMerchant],
    warehouse_url: str,
) -> dict[str, str]:
    """scripts/airflow_env.sh with a private AIRFLOW_HOME, one SFTP connection per merchant."""
    env = dict(os.environ)
    env.update(airflow_settings(tmp / "airflow"))
    env.update(
        REVIEW_INGEST_DATA_DIR=str(tmp / "data"),
        REVIEW_INGEST_MERCHANTS=str(merchants_yaml(tmp / "merchants.yaml", merchants)),
        REVIEW_INGEST_MIN_FILE_AGE_SECONDS="120",
        AIRFLOW_CONN_REVIEW_WAREHOUSE=airflow_conn_json(warehouse_url),
    )
    for merchant in merchants:
        env[f"AIRFLOW_CONN_{merchant.merchant_id.upper()}_SFTP"] = server.airflow_conn_json(
            merchant
        )
    return env


def processed_on_server(merchants: list[sshd.SftpMerchant]) -> int:
    """Files moved to ``orders/processed/`` with both reports beside them."""
    count = 0
    for merchant in merchants:
        folder = merchant.local(f"{merchant.inbox}/processed")
        names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        count += sum(
            1
            for name in names
            if name.endswith(".csv")
            and f"{name}{REPORT_SUFFIX}" in names
            and not name.endswith(ERRORS_SUFFIX)
        )
    return count


def run(merchant_count: int, files: int, keep: bool = False) -> SftpRun:
    """Serve the merchants' inboxes, then time one ``airflow dags test orders_sftp_ingest``."""
    sshd.cleanup_stale()
    server = sshd.new_server()
    tmp = Path(tempfile.mkdtemp(prefix="bench_sftp_"))
    logs = tmp / "logs"
    logs.mkdir()
    try:
        merchants = [server.add_merchant(m) for m in merchant_ids(merchant_count)]
        server.start()
        for merchant in merchants:
            upload(merchant, files)
        with postgres.new_database(postgres.server_url(), prefix="bench_sftp") as url:
            env = airflow_env(tmp, server, merchants, url)
            migrate = run_timed([str(AIRFLOW), "db", "migrate"], env, logs, "m")
            expect(migrate.returncode == 0, "airflow db migrate failed", logs, "m")
            before = server.log_count(LOGIN_LINE)
            timed = run_timed([str(AIRFLOW), "dags", "test", DAG_ID], env, logs, "dag")
            expect(timed.returncode == 0, "airflow dags test failed", logs, "dag")
            logins = server.log_count(LOGIN_LINE, at_least=before + merchant_count) - before
        processed = processed_on_server(merchants)
        total = merchant_count * files
        expect(processed == total, f"{processed} of {total} files processed", logs, "dag")
        per_task = settings.sftp_merchants_per_task()
        return SftpRun(
            merchant_count, total, timed.seconds, timed.max_rss_mb, logins, processed, per_task
        )
    finally:
        server.close()
        if keep:
            print(f"scratch folder kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def verdicts(result: SftpRun) -> list[Ratio]:
    """Target 5: under 100 ms per file in all, and one SSH login per merchant."""
    return [
        Ratio(
            f"SFTP {result.files:,} files / {result.merchants} merchants: s per file",
            result.per_file_s,
            TARGET_S_PER_FILE,
            " s",
            True,
        ),
        Ratio("SFTP logins per merchant", result.logins / result.merchants, 1, " login", False),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merchants", type=int, default=100)
    parser.add_argument("--files", type=int, default=10, help="files per merchant")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and logs")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "results_sftp.json")
    return parser.parse_args(argv)


def report(result: SftpRun, found: list[Ratio], out: Path) -> None:
    """The run and its verdicts, printed and written to ``out``."""
    print(json.dumps(result.as_dict(), indent=2))
    print_verdicts(found)
    write_json(out, {"run": result.as_dict(), "ratios": {r.name: r.as_dict() for r in found}})
    print(f"\nresults: {out}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    result = run(args.merchants, args.files, args.keep)
    report(result, verdicts(result), args.out)
    print(f"bench_sftp took {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
