"""The UI server fixture (``tests/fixtures/api_server.py``) names the test auth manager and its
users as ``tests/fixtures/auth_manager.py`` defines them; no server. The server itself:
tests/integration/test_ui_server.py."""

from __future__ import annotations

from tests.kit.api_server import AUTH_MANAGER, NO_BACKFILL, OUTSIDER


def test_the_test_auth_manager_is_the_one_the_fixture_names() -> None:
    from tests.fixtures import auth_manager

    assert auth_manager.DOTTED_PATH == AUTH_MANAGER
    assert auth_manager.OUTSIDER == OUTSIDER
    assert auth_manager.NO_BACKFILL == NO_BACKFILL
    assert auth_manager.denied_dag_users() == {OUTSIDER}
