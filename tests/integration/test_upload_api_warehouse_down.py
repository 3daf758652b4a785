"""The warehouse down while a file is checked (contract section 12): a real ``airflow
api-server`` whose ``review_warehouse`` connection leads to a closed port answers 503 with a
clear message, and keeps nothing of the upload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.kit.api_server import ADMIN, UI_PREFIX, UiServer, new_server
from tests.kit.factories import sample_for_yesterday, write_merchants
from tests.kit.processes import HOST, free_port

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    root = tmp_path_factory.mktemp("ui-warehouse-down")
    data_dir = root / "data"
    data_dir.mkdir()
    merchants = write_merchants(root / "merchants.yaml", {"shop-web": "website"})
    nowhere = f"postgresql+psycopg://ingest@{HOST}:{free_port()}/warehouse"
    down = new_server(root, "postgres", nowhere, data_dir, merchants, {})
    try:
        down.start()
        yield down
    finally:
        down.stop()


def uploads_left(data_dir: Path) -> list[Path]:
    """Upload folders and files under staging (empty parent folders aside)."""
    root = data_dir / "staging"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_the_check_answers_503_and_keeps_nothing(server: UiServer) -> None:
    response = httpx.post(
        server.url(UI_PREFIX + "/api/uploads"),
        data={"merchant_id": "shop-web"},
        files={"file": ("orders.csv", sample_for_yesterday("website").encode(), "text/csv")},
        headers={"Authorization": f"Bearer {server.token(ADMIN)}"},
        timeout=120,
    )

    assert response.status_code == 503, response.text
    detail = response.json()["detail"]
    assert detail["code"] == "warehouse_unavailable"
    assert "warehouse cannot be reached" in detail["message"]
    assert "nothing was kept" in detail["message"]
    assert uploads_left(server.data_dir) == []
    merchant_folder = server.data_dir / "staging" / "shop-web"
    assert not merchant_folder.exists() or list(merchant_folder.iterdir()) == []
