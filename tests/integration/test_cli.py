"""``review-ingest`` as a support engineer runs it: exit codes, JSON on stdout, reports on disk,
on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.kit.factories import sample_for_yesterday, write_merchants
from tests.kit.warehouse import query

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / ".venv" / "bin" / "review-ingest"
HEADER = "order_ref;email;lastname;firstname;order_date;delay;language\n"


@pytest.fixture
def env(tmp_path: Path, warehouse_url: str) -> dict[str, str]:
    merchants = write_merchants(tmp_path / "merchants.yaml", {"acme": "website"})
    return dict(
        os.environ,
        REVIEW_INGEST_DATA_DIR=str(tmp_path / "data"),
        REVIEW_INGEST_MERCHANTS=str(merchants),
        REVIEW_INGEST_WAREHOUSE_URL=warehouse_url,
    )


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env, timeout=240)


def import_file(path: Path, env: dict[str, str], *extra: str) -> tuple[int, dict, str]:
    done = run(["import", str(path), "--merchant", "acme", "--json", *extra], env)
    return done.returncode, json.loads(done.stdout), done.stderr


def test_import_then_same_bytes_then_known_orders(tmp_path, env, warehouse_url):
    first = tmp_path / "orders.csv"
    first.write_text(sample_for_yesterday("website"), encoding="utf-8")

    code, report, _ = import_file(first, env)
    assert (code, report["status"], report["requests"]["brand"]) == (0, "loaded", 5)
    reports = Path(env["REVIEW_INGEST_DATA_DIR"]) / "reports" / "acme" / report["import_id"]
    assert sorted(p.name for p in reports.iterdir()) == ["errors.csv", "report.html", "report.json"]
    assert first.exists(), "import leaves the file where it is"
    page = report["validation"]["data_docs"]
    data_docs = Path(env["REVIEW_INGEST_DATA_DIR"]) / "data_docs"
    assert page.startswith("validations/website/") and (data_docs / page).is_file()

    code, again, _ = import_file(first, env)
    assert (code, again["status"], again.get("earlier_import_id")) == (
        0,
        "already_imported",
        report["import_id"],
    )
    assert again["validation"] == {"suite": "website", "data_docs": None}, "nothing validated"

    overlap = tmp_path / "overlap.csv"
    lines = sample_for_yesterday("website").splitlines()
    overlap.write_text(
        "\n".join([lines[0], lines[2].replace("WEB-100232", "WEB-999"), lines[3]]) + "\n",
        encoding="utf-8",
    )
    code, rejected, _ = import_file(overlap, env, "--source", "backfill")
    assert code == 1
    assert rejected["rejection"]["code"] == "existing_proofs"
    assert rejected["existing_proofs"] == [{"order_ref": "WEB-100233", "line": 3}]
    rows = query(
        warehouse_url, "SELECT source, status, rejection_code FROM imports ORDER BY processed_at"
    )
    assert rows == [
        ("upload", "loaded", None),
        ("upload", "already_imported", None),
        ("backfill", "rejected", "existing_proofs"),
    ]
    assert query(warehouse_url, "SELECT count(*) FROM review_requests")[0][0] == 5


def test_bad_rows_load_the_good_ones_and_keep_personal_data_out(tmp_path, env, warehouse_url):
    good = sample_for_yesterday("website").splitlines()[1]
    secret = "jeanne.secret@@example.fr"
    bad = good.replace("WEB-100231", "BAD-1").replace("camille.durand@example.fr", secret)
    long_name = "Secretlastname" * 8
    too_long = good.replace("WEB-100231", "BAD-2").replace(";Durand;", f";{long_name};")
    path = tmp_path / "mixed.csv"
    path.write_text(HEADER + good + "\n" + bad + "\n" + too_long + "\n", encoding="utf-8")

    code, report, stderr = import_file(path, env)

    assert code == 0 and report["status"] == "loaded"
    assert (report["valid_rows"], report["error_rows"]) == (1, 2)
    stored = query(warehouse_url, "SELECT line, column_name, code FROM import_errors")
    assert sorted(stored) == [(3, "email", "invalid_email"), (4, "lastname", "value_too_long")]
    data = Path(env["REVIEW_INGEST_DATA_DIR"])
    written = [
        p.read_text(encoding="utf-8")
        for p in data.rglob("*")
        if p.is_file() and p.suffix in (".json", ".html", ".csv")
    ]
    assert any("data_docs" in str(p) for p in data.rglob("*.html")), "Data Docs were built"
    for value in (secret, long_name):
        assert not any(value in text for text in written + [json.dumps(report), stderr])


def test_check_builds_no_data_docs(tmp_path, env):
    path = tmp_path / "orders.csv"
    path.write_text(sample_for_yesterday("website"), encoding="utf-8")

    done = run(["check", str(path), "--template", "website", "--json"], env)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["validation"] == {"suite": "website", "data_docs": None}
    assert not (Path(env["REVIEW_INGEST_DATA_DIR"]) / "data_docs").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["import", "orders.csv", "--merchant", "nobody"], "unknown merchant 'nobody'"),
        (["import", "missing.csv", "--merchant", "acme"], "file not found"),
        (["check", "orders.csv", "--template", "nope"], "unknown template 'nope'"),
        (["check", "orders.csv", "--template", "website", "--as-of", "27/11"], "--as-of"),
    ],
)
def test_usage_errors_exit_2_with_one_line_and_no_import(tmp_path, env, warehouse_url, args, words):
    (tmp_path / "orders.csv").write_text(sample_for_yesterday("website"), encoding="utf-8")
    args = [str(tmp_path / a) if a.endswith(".csv") else a for a in args]

    done = run(args, env)

    assert done.returncode == 2 and done.stdout == ""
    assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (Path(env["REVIEW_INGEST_DATA_DIR"]) / "reports").exists()


def test_configuration_error_names_merchant_and_key(tmp_path, env):
    bad = tmp_path / "bad.yaml"
    bad.write_text("merchants:\n  acme:\n    template: website\n    default_delay: 45\n")
    (tmp_path / "o.csv").write_text(sample_for_yesterday("website"), encoding="utf-8")

    done = run(
        ["import", str(tmp_path / "o.csv"), "--merchant", "acme"],
        dict(env, REVIEW_INGEST_MERCHANTS=str(bad)),
    )

    assert done.returncode == 2
    assert "'acme'" in done.stderr and "default_delay" in done.stderr
