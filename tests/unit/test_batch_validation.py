"""Files validated together (``Ingest.validate_together``: one Great Expectations run for many
files, rows indexed by (file, line)) get exactly what each file gets validated alone: the same
errors on the same lines, duplicates, counts and requests. Real suites, real Data Docs.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path

import pytest

from review_ingest.core.merchants import Merchant
from review_ingest.core.outcomes import Outcome, ReviewRequest, new_import_id
from review_ingest.pipeline.ingest import ClaimedFile, Ingest
from review_ingest.sources import claims
from review_ingest.tasks import upload_ingest
from tests.kit.factories import drop, sample_for_yesterday, write_merchants
from tests.unit import test_row_rules

MERCHANTS = {
    "web": Merchant("web", template="website"),
    "store": Merchant("store", template="store"),
    "products": Merchant("products", template="website_products"),
    "store-products": Merchant("store-products", template="store_products"),
    # Same template as "products", but another time zone and oldest day: another group.
    "products-ny": Merchant(
        "products-ny",
        template="website_products",
        timezone="America/New_York",
        max_order_age_days=5,
    ),
}
SECRET_EMAIL = "jeanne.secret@@example.fr"
#: Errors added after the suite's, by the order rules and the reading.
ORDER_CODES = ("conflicting_order", "wrong_field_count")


def batch_files(folder: Path) -> list[tuple[Path, str]]:
    """Every row rule's file (test_row_rules), each template's sample with a bad e-mail, and
    the same bytes under two merchants."""
    files: list[tuple[Path, str]] = []
    by_template = {m.template: m.merchant_id for m in reversed(MERCHANTS.values())}
    for template, data in test_row_rules.DATA.items():
        files.append((_write(folder / f"rules_{template}.csv", data), by_template[template]))
    for template, merchant_id in by_template.items():
        sample = sample_for_yesterday(template).replace("@", "@@", 1).encode("utf-8")
        files.append((_write(folder / f"sample_{template}.csv", sample), merchant_id))
    products = test_row_rules.DATA["website_products"]
    files.append((_write(folder / "rules_ny.csv", products), "products-ny"))
    files.append((_write(folder / "empty.csv", b"order_ref;email\n"), "products"))
    return files


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def what_a_report_says(outcome: Outcome) -> dict:
    """Everything of an outcome that the validation decides (not ids, times, pages)."""
    record = asdict(outcome.record)
    for key in ("import_id", "processed_at", "received_at"):
        record.pop(key)
    return {
        "record": record,
        "rejection": outcome.rejection,
        "errors": outcome.errors,
        "duplicates": outcome.duplicates,
        "requests": [_request(r, outcome.record.processed_at) for r in outcome.requests],
        "due_now": outcome.due_now,
    }


def _request(request: ReviewRequest, now: dt.datetime) -> dict:
    """A request, its time "now" when it was brought to the import's time (already due)."""
    values = asdict(request)
    if request.scheduled_at == now:
        values["scheduled_at"] = "now"
    return values


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The batch imported (dry run) file by file, then validated together and imported."""
    root = tmp_path_factory.mktemp("batch")
    files = batch_files(root / "in")
    alone = Ingest(root / "alone", MERCHANTS, f"sqlite:///{root / 'alone.db'}")
    together = Ingest(root / "together", MERCHANTS, f"sqlite:///{root / 'together.db'}")
    ids = [new_import_id(dt.datetime.now(dt.UTC)) for _ in files]
    alone_outcomes = [
        alone.import_file(path, merchant_id, "upload", dry_run=True, import_id=import_id)
        for (path, merchant_id), import_id in zip(files, ids, strict=True)
    ]
    alone.finish()
    together.validate_together(
        [
            ClaimedFile(path, merchant_id, i)
            for (path, merchant_id), i in zip(files, ids, strict=True)
        ]
    )
    validated_ahead = len(together._checked)
    together_outcomes = [
        together.import_file(path, merchant_id, "upload", dry_run=True, import_id=import_id)
        for (path, merchant_id), import_id in zip(files, ids, strict=True)
    ]
    together.finish()
    return {
        "root": root,
        "files": files,
        "alone": alone_outcomes,
        "together": together_outcomes,
        "validated_ahead": validated_ahead,
    }


def test_each_file_gets_what_it_gets_alone(both):
    assert both["validated_ahead"] == len(both["files"]) - 1  # all but the rejected one
    for path_and_merchant, alone, together in zip(
        both["files"], both["alone"], both["together"], strict=True
    ):
        assert what_a_report_says(together) == what_a_report_says(alone), path_and_merchant
    errors = sum(len(o.errors) for o in both["together"])
    assert errors > 50  # the row rules' files hold every error code


def test_the_errors_of_a_line_come_by_column(both):
    """As before files were validated together: by line, then the suite's errors by column."""
    several = 0
    for outcome in both["together"]:
        suite_errors = [e for e in outcome.errors if e.code not in ORDER_CODES]
        assert suite_errors == sorted(suite_errors, key=lambda e: (e.line, e.column))
        several += len(suite_errors) - len({e.line for e in suite_errors})
    assert several > 0, "no line with several errors: the order was not tried"


def test_files_of_a_group_share_one_validation_page(both):
    by_page: dict[str, set[str]] = {}
    for outcome in both["together"]:
        if outcome.data_docs:
            by_page.setdefault(outcome.data_docs, set()).add(outcome.record.merchant_id)
    # One page per template and one for the New York merchant; none for the rejected file.
    assert sorted(sorted(m) for m in by_page.values()) == [
        ["products"],
        ["products-ny"],
        ["store"],
        ["store-products"],
        ["web"],
    ]
    assert sum(o.data_docs is not None for o in both["together"]) == len(both["files"]) - 1


def test_the_batch_page_names_each_file_and_its_import(both):
    docs = both["root"] / "together" / "data_docs"
    for outcome in both["together"]:
        if outcome.data_docs is None:
            continue
        html = (docs / outcome.data_docs).read_text(encoding="utf-8")
        assert outcome.record.import_id in html
        assert outcome.record.file_name in html
        assert SECRET_EMAIL not in html and "jane@example.com" not in html
        report = both["root"] / "together" / "reports" / outcome.record.merchant_id
        written = json.loads(
            (report / outcome.record.import_id / "report.json").read_text(encoding="utf-8")
        )
        assert written["validation"]["data_docs"] == outcome.data_docs
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert all(o.data_docs in index for o in both["together"] if o.data_docs)


def test_a_file_changed_after_the_batch_validation_is_validated_again(tmp_path):
    files = batch_files(tmp_path / "in")[:1]
    (path, merchant_id) = files[0]
    ingest = Ingest(tmp_path / "data", MERCHANTS, f"sqlite:///{tmp_path / 'w.db'}", data_docs=False)
    import_id = new_import_id(dt.datetime.now(dt.UTC))
    ingest.validate_together([ClaimedFile(path, merchant_id, import_id)])
    header, *rows = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([header, rows[0]]) + "\n", encoding="utf-8")
    outcome = ingest.import_file(path, merchant_id, "upload", dry_run=True, import_id=import_id)
    assert outcome.record.total_rows == 1
    assert {e.line for e in outcome.errors} <= {2}


def test_when_the_validation_together_fails_each_file_is_validated_alone(tmp_path, monkeypatch):
    files = [(path, m) for path, m in batch_files(tmp_path / "in") if m == "web"]
    assert len(files) == 2
    ingest = Ingest(tmp_path / "data", MERCHANTS, f"sqlite:///{tmp_path / 'w.db'}", data_docs=False)
    alone = ingest.validation.check_files

    def only_alone(rows, *args):
        if len(rows) > 1:
            raise RuntimeError("refused")
        return alone(rows, *args)

    monkeypatch.setattr(ingest.validation, "check_files", only_alone)
    now = dt.datetime.now(dt.UTC)
    pending = [ClaimedFile(path, merchant_id, new_import_id(now)) for path, merchant_id in files]
    ingest.validate_together(pending)
    assert ingest._checked == {}
    outcomes = [
        ingest.import_file(p.path, p.merchant_id, "upload", dry_run=True, import_id=p.import_id)
        for p in pending
    ]
    assert all(o.errors for o in outcomes)


def test_a_batch_stopped_on_the_way_gives_back_the_files_it_did_not_reach(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(data))
    monkeypatch.setenv("REVIEW_INGEST_MERCHANTS", str(tmp_path / "m.yaml"))
    monkeypatch.setenv("REVIEW_INGEST_MIN_FILE_AGE_SECONDS", "0")
    write_merchants(tmp_path / "m.yaml", {"web": "website"})
    sample = sample_for_yesterday("website")
    for prefix in ("A", "B"):
        drop(data / "uploads" / "web", f"{prefix}.csv", sample.replace("WEB-", f"{prefix}-"))
    (batch,) = upload_ingest.plan_upload_batches()

    def terminated(*args):
        raise KeyboardInterrupt  # as a task's termination: not an Exception

    monkeypatch.setattr(upload_ingest, "move_upload", terminated)
    with pytest.raises(KeyboardInterrupt):
        upload_ingest.ingest_uploads(batch, f"sqlite:///{tmp_path / 'w.db'}")

    # A.csv was loaded, then stopped before its move: its claim is released for the next run.
    [held] = claims.all_claims(data)
    assert (held.name, held.released) == ("A.csv", True)
    # B.csv was claimed and validated, never imported: it is back in its folder.
    assert sorted(p.name for p in (data / "uploads" / "web").iterdir()) == ["B.csv"]


def test_batches_are_planned_by_what_their_files_validate_with(tmp_path, monkeypatch):
    """Files arrive mixed over templates; each batch gets files of one template (one validation
    instead of one per template), and each merchant's files keep their order, oldest first."""
    data = tmp_path / "data"
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(data))
    monkeypatch.setenv("REVIEW_INGEST_MERCHANTS", str(tmp_path / "m.yaml"))
    monkeypatch.setenv("REVIEW_INGEST_MIN_FILE_AGE_SECONDS", "0")
    monkeypatch.setenv("REVIEW_INGEST_BATCH_SIZE", "2")
    merchants = {"web-a": "website", "shop": "store", "web-b": "website"}
    write_merchants(tmp_path / "m.yaml", merchants)
    age = 1000
    for number in (1, 2):
        for merchant_id in merchants:
            drop(data / "uploads" / merchant_id, f"{number}.csv", "x", age_seconds=age)
            age -= 10

    batches = upload_ingest.plan_upload_batches()

    named = [[(i["merchant_id"], Path(i["path"]).name) for i in b] for b in batches]
    assert named == [
        [("shop", "1.csv"), ("shop", "2.csv")],
        [("web-a", "1.csv"), ("web-b", "1.csv")],
        [("web-a", "2.csv"), ("web-b", "2.csv")],
    ]
