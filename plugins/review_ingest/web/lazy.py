"""The review UI's ASGI app, built on its first request rather than when the plugin loads.

Airflow loads every plugin in every task process too (for macros), where building the UI
(FastAPI, Jinja2, the routes and their models) would be paid by each task for nothing. The API
server mounts this object; the first request to ``/review-ingest/`` builds the real app once.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


class BuiltOnFirstUse:
    """An ASGI app that builds ``module:factory()`` when it is first called."""

    def __init__(self, factory: str) -> None:
        self.factory = factory
        self._app: Asgi | None = None
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await (self._app or self.build())(scope, receive, send)

    def build(self) -> Asgi:
        """The real app; made once, even when the first requests arrive together."""
        with self._lock:
            if self._app is None:
                module, _, name = self.factory.partition(":")
                self._app = getattr(importlib.import_module(module), name)()
        return self._app

    def forget(self) -> None:
        """Drop the built app, so that the next request builds it again with the settings then
        in force (a process whose warehouse changes, as tests switch theirs)."""
        with self._lock:
            self._app = None

    def __repr__(self) -> str:
        return f"BuiltOnFirstUse({self.factory!r})"
