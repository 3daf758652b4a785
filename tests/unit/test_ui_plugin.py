"""The UI's app is built on first use (review_ingest.web.lazy), once. That loading the plugin file
stays light is checked in a fresh interpreter: tests/integration/test_ui_plugin.py."""

from __future__ import annotations


def test_the_app_is_built_once_on_first_use():
    from review_ingest.web.lazy import BuiltOnFirstUse

    lazy = BuiltOnFirstUse("review_ingest.web.app:create_app")
    first = lazy.build()
    assert lazy.build() is first
    assert [r.path for r in first.routes if getattr(r, "path", "") == "/api/imports"]


def test_a_forgotten_app_is_built_again():
    """Tests switch warehouses in one process: the next request must build a new app."""
    from review_ingest.web.lazy import BuiltOnFirstUse

    lazy = BuiltOnFirstUse("review_ingest.web.app:create_app")
    first = lazy.build()
    lazy.forget()
    assert lazy.build() is not first
