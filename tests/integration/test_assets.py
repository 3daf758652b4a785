"""The ingest DAGs update the Airflow Asset ``review_requests`` with their counts, so that a
downstream DAG (the sender, analytics) can be scheduled on new requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from review_ingest.tasks import assets
from tests.fixtures.airflow import run_dag
from tests.kit.airflow_env import airflow_conn_json
from tests.kit.factories import SAMPLE_MERCHANTS, drop, sample_for_yesterday, write_merchants
from tests.kit.warehouse import query

pytestmark = pytest.mark.airflow


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warehouse_url: str) -> Path:
    data = tmp_path / "data"
    merchants = write_merchants(tmp_path / "merchants.yaml", SAMPLE_MERCHANTS)
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(data))
    monkeypatch.setenv("REVIEW_INGEST_MERCHANTS", str(merchants))
    monkeypatch.setenv("AIRFLOW_CONN_REVIEW_WAREHOUSE", airflow_conn_json(warehouse_url))
    return data


def asset_events(run) -> list[dict]:
    """The extras of the ``review_requests`` events the run's tasks emitted."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(
            session.scalars(
                select(AssetEvent.extra)
                .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                .where(
                    AssetModel.name == assets.REVIEW_REQUESTS_ASSET,
                    AssetEvent.source_dag_id == run.dag_id,
                    AssetEvent.source_run_id == run.run_id,
                )
            )
        )


def test_an_upload_run_attaches_its_counts_to_the_asset_event(airflow_db, data_dir, warehouse_url):
    for merchant_id, template in SAMPLE_MERCHANTS.items():
        drop(data_dir / "uploads" / merchant_id, "orders.csv", sample_for_yesterday(template))
    drop(data_dir / "uploads" / "shop-web", "comma.csv", "order_ref,email\n")

    run = run_dag("orders_upload_ingest")

    assert run.state == "success"
    events = asset_events(run)
    assert len(events) == 1, "one event per successful ingest_batch (one batch here)"
    (extra,) = events
    brand, product = query(
        warehouse_url,
        "SELECT sum(brand_requests), sum(product_requests) FROM imports WHERE status = 'loaded'",
    )[0]
    loaded = {
        i for (i,) in query(warehouse_url, "SELECT import_id FROM imports WHERE status = 'loaded'")
    }
    assert extra["files"] == 5 and extra["loaded"] == 4 and extra["rejected"] == 1
    assert (extra["brand_requests"], extra["product_requests"]) == (brand, product)
    assert set(extra["import_ids"]) == loaded
    assert extra["dry_run"] is False


def test_a_dry_run_backfill_says_so_and_counts_no_request(airflow_db, data_dir):
    drop(data_dir / "uploads" / "shop-web", "q3.csv", sample_for_yesterday("website"))

    run = run_dag("orders_backfill", {"merchant_id": "shop-web", "file": "q3.csv"})

    assert run.state == "success"
    (extra,) = asset_events(run)
    assert extra["dry_run"] is True
    assert (extra["loaded"], extra["brand_requests"], extra["import_ids"]) == (0, 0, [])
