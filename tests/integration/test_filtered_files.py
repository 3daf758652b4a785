"""Signs of a filtered file and ``too_many_errors`` (issue 27) through the real pipeline, on a
SQLite file and on a real PostgreSQL: the warnings land in ``report.json`` and in
``imports.warnings``, with the profile later files are compared with; a file with more rows in
error than its merchant's ``max_error_rate`` is rejected by ``review-ingest import``."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from review_ingest.core.merchants import Merchant
from review_ingest.pipeline.ingest import Ingest
from tests.kit.factories import write_merchants, yesterday
from tests.kit.warehouse import query

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / ".venv" / "bin" / "review-ingest"
STORE_HEADER = "order_ref;email;lastname;firstname;order_date;shop_id\n"


def store_file(folder: Path, first: int, shops: dict[str, int]) -> Path:
    """Orders numbered from ``first`` on, as many for each shop as ``shops`` says."""
    day = f"{yesterday():%Y-%m-%d}"
    lines, number = [], first
    for shop, count in shops.items():
        for _ in range(count):
            lines.append(f"ST-{number};c{number}@example.org;Name;First;{day};{shop}")
            number += 1
    path = folder / f"orders-{first}.csv"
    path.write_text(STORE_HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def report_of(data_dir: Path, import_id: str) -> dict:
    path = data_dir / "reports" / "acme" / import_id / "report.json"
    return json.loads(path.read_text(encoding="utf-8"))


def test_an_import_keeps_its_warnings_in_its_report_and_in_imports(tmp_path, warehouse_url):
    data_dir = tmp_path / "data"
    merchants = {"acme": Merchant("acme", "store")}
    ingest = Ingest(data_dir, merchants, warehouse_url, data_docs=False)
    try:
        files = [store_file(tmp_path, 1000 + 100 * n, {"PAR": 60, "LYO": 40}) for n in range(4)]
        usual = [ingest.import_file(path, "acme", "upload") for path in files]
        lyon_left_out = ingest.import_file(
            store_file(tmp_path, 2000, {"PAR": 45}), "acme", "upload"
        )
        written = report_of(data_dir, lyon_left_out.record.import_id)
        # A run killed after the commit, before the reports: the next one writes them again,
        # with the warnings the warehouse recorded.
        import_id = lyon_left_out.record.import_id
        (data_dir / "reports" / "acme" / import_id / "report.json").unlink()
        ingest.finish_import(tmp_path / "orders-2000.csv", import_id)
    finally:
        ingest.close()

    assert [o.record.status for o in usual] == ["loaded"] * 4
    assert all(report_of(data_dir, o.record.import_id)["warnings"] == [] for o in usual)
    report = report_of(data_dir, lyon_left_out.record.import_id)
    assert report == written
    assert report["status"] == "loaded", "a sign of filtering never rejects"
    assert [w["code"] for w in report["warnings"]] == ["volume_drop", "missing_shop"]
    assert "'LYO'" in report["warnings"][1]["message"]
    rows = query(
        warehouse_url,
        "SELECT import_id, warnings, profile FROM imports ORDER BY processed_at, import_id",
    )
    assert [json.loads(warnings) for _, warnings, _ in rows] == [[]] * 4 + [report["warnings"]]
    profiles = [json.loads(profile) for _, _, profile in rows]
    assert [p["shops"] for p in profiles] == [{"PAR": 60, "LYO": 40}] * 4 + [{"PAR": 45}]
    assert profiles[0]["ref_present"] == profiles[0]["ref_span"] == 100


def test_a_rejected_file_is_not_compared_and_its_row_is_not_history(tmp_path, warehouse_url):
    data_dir = tmp_path / "data"
    ingest = Ingest(data_dir, {"acme": Merchant("acme", "store")}, warehouse_url, data_docs=False)
    try:
        first = ingest.import_file(store_file(tmp_path, 1000, {"PAR": 10}), "acme", "upload")
        (tmp_path / "later").mkdir()
        overlapping = store_file(tmp_path / "later", 1000, {"PAR": 11})
        known = ingest.import_file(overlapping, "acme", "upload")
    finally:
        ingest.close()

    assert (first.record.status, known.rejection.code) == ("loaded", "existing_proofs")
    assert report_of(data_dir, known.record.import_id)["warnings"] == []
    assert query(
        warehouse_url,
        "SELECT status, warnings, profile IS NULL FROM imports WHERE import_id = :i",
        i=known.record.import_id,
    ) == [("rejected", None, True)]


def test_too_many_errors_rejects_the_whole_file_from_the_command_line(tmp_path, warehouse_url):
    merchants = write_merchants(
        tmp_path / "merchants.yaml", {"acme": {"template": "website", "max_error_rate": 0.2}}
    )
    env = dict(
        os.environ,
        REVIEW_INGEST_DATA_DIR=str(tmp_path / "data"),
        REVIEW_INGEST_MERCHANTS=str(merchants),
        REVIEW_INGEST_WAREHOUSE_URL=warehouse_url,
    )
    day = f"{yesterday():%Y-%m-%d}"
    lines = [
        f"E-{n};{'bad@@example.org' if n < 3 else f'c{n}@example.org'};Name;First;{day}"
        for n in range(10)
    ]
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_ref;email;lastname;firstname;order_date\n" + "\n".join(lines) + "\n",
        encoding="utf-8",
    )

    done = subprocess.run(
        [str(CLI), "import", str(path), "--merchant", "acme", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )

    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["rejection"]["code"] == "too_many_errors"
    assert "3 of the 10 rows" in report["rejection"]["message"]
    assert "20%" in report["rejection"]["message"]
    assert [e["line"] for e in report["errors"]] == [2, 3, 4], "every error is listed"
    assert query(warehouse_url, "SELECT status, rejection_code, error_rows FROM imports") == [
        ("rejected", "too_many_errors", 3)
    ]
    assert query(warehouse_url, "SELECT count(*) FROM review_requests") == [(0,)]
    assert query(warehouse_url, "SELECT count(*) FROM import_errors") == [(3,)]
    errors_csv = tmp_path / "data" / "reports" / "acme" / report["import_id"] / "errors.csv"
    assert len(errors_csv.read_text(encoding="utf-8").splitlines()) == 4
