"""The merchants file's ``max_error_rate`` (issue 27) and ``notify`` keys: defaults, values,
and errors naming the merchant and the key; and the ``too_many_errors`` rejection at its
boundary, through the pipeline on a SQLite warehouse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from review_ingest.core.merchants import Merchant, read_merchants
from review_ingest.pipeline.ingest import Ingest
from tests.kit.factories import yesterday

HEADER = "order_ref;email;lastname;firstname;order_date\n"


def merchant(tmp_path: Path, lines: str) -> Merchant | str:
    """The merchant ``acme`` of a file with these extra lines, or its problem."""
    path = tmp_path / "merchants.yaml"
    path.write_text(f"merchants:\n  acme:\n    template: website\n{lines}", encoding="utf-8")
    read = read_merchants(path)
    return read.merchants.get("acme") or read.problems["acme"]


def test_both_keys_are_off_by_default(tmp_path):
    acme = merchant(tmp_path, "")
    assert isinstance(acme, Merchant)
    assert (acme.max_error_rate, acme.notify) == (None, ())


@pytest.mark.parametrize(("value", "rate"), [("0.02", 0.02), ("1", 1.0), ("0.5", 0.5)])
def test_max_error_rate_is_a_share_of_the_rows(tmp_path, value, rate):
    assert merchant(tmp_path, f"    max_error_rate: {value}\n").max_error_rate == rate


@pytest.mark.parametrize("value", ["0", "1.5", "-0.1", "2%", "true", ".nan", "[0.1]"])
def test_a_wrong_max_error_rate_names_merchant_and_key(tmp_path, value):
    problem = merchant(tmp_path, f"    max_error_rate: {value}\n")
    assert isinstance(problem, str)
    assert "'acme'" in problem and "'max_error_rate'" in problem


def test_notify_is_a_list_of_addresses(tmp_path):
    acme = merchant(
        tmp_path, "    notify:\n      - ops@acme.example\n      - ' lea@acme.example '\n"
    )
    assert acme.notify == ("ops@acme.example", "lea@acme.example")


@pytest.mark.parametrize(
    "lines",
    [
        "    notify: ops@acme.example\n",
        "    notify:\n      - ops@acme.example\n      - not-an-address\n",
        "    notify:\n      - 42\n",
    ],
)
def test_a_wrong_notify_names_merchant_and_key(tmp_path, lines):
    problem = merchant(tmp_path, lines)
    assert isinstance(problem, str)
    assert "'acme'" in problem and "'notify'" in problem
    assert "not-an-address" not in problem, "an address is not repeated"


# --- too_many_errors ---------------------------------------------------------------------------


def import_with_errors(tmp_path: Path, rows: int, bad: int, limit: float | None) -> dict:
    """A file of ``rows`` rows of which ``bad`` have an invalid e-mail, imported as ``acme``
    with that ``max_error_rate``; its report.json."""
    day = f"{yesterday():%Y-%m-%d}"
    lines = [
        f"E-{n};{'bad@@example.org' if n < bad else f'c{n}@example.org'};Name;First;{day}"
        for n in range(rows)
    ]
    path = tmp_path / f"orders-{rows}-{bad}.csv"
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    acme = Merchant("acme", "website", max_error_rate=limit)
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    ingest = Ingest(tmp_path / "data", {"acme": acme}, url, data_docs=False)
    try:
        outcome = ingest.import_file(path, "acme", "upload")
    finally:
        ingest.close()
    folder = tmp_path / "data" / "reports" / "acme" / outcome.record.import_id
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def test_exactly_at_the_limit_the_file_loads(tmp_path):
    report = import_with_errors(tmp_path, rows=50, bad=1, limit=0.02)

    assert (report["status"], report["error_rows"], report["valid_rows"]) == ("loaded", 1, 49)


def test_above_the_limit_the_whole_file_is_rejected_with_every_error_listed(tmp_path):
    report = import_with_errors(tmp_path, rows=50, bad=2, limit=0.02)

    assert report["status"] == "rejected"
    assert report["rejection"]["code"] == "too_many_errors"
    message = report["rejection"]["message"]
    assert "2 of the 50 rows" in message and "4.00%" in message and "2%" in message
    assert [e["line"] for e in report["errors"]] == [2, 3]
    assert report["requests"] == {"brand": 0, "product": 0, "due_now": 0}
    assert report["warnings"] == []


def test_without_a_limit_any_share_of_errors_loads_the_good_rows(tmp_path):
    report = import_with_errors(tmp_path, rows=10, bad=9, limit=None)

    assert (report["status"], report["valid_rows"]) == ("loaded", 1)


def test_a_rate_of_one_rejects_nothing(tmp_path):
    assert import_with_errors(tmp_path, rows=5, bad=5, limit=1)["status"] == "loaded"


def test_the_limit_is_compared_exactly_not_in_floating_point(tmp_path):
    # 0.29 * 100 is 28.999999999999996 in floating point: 29 errors in 100 rows are at the limit.
    report = import_with_errors(tmp_path, rows=100, bad=29, limit=0.29)
    assert (report["status"], report["error_rows"]) == ("loaded", 29)
