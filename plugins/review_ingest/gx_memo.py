"""Great Expectations' expectation configurations, built once per expectation and validation.

``Expectation.configuration`` (Great Expectations 1.x) is a property that serialises the
expectation anew each time it is read (pydantic's ``dict()``, then a new
``ExpectationConfiguration``), and a validation reads it about 135 times per expectation while
it builds the metric graph: about a third of the fixed cost of a validation (0.28 -> 0.20 s for
ten small ``website_products`` files, ``benchmarks/bench_validation.py``).

Inside ``memoized()`` each expectation object's configuration is built once and handed out
again. It is safe because a validation neither changes an expectation after making it (it makes
them from configurations, ``to_domain_obj``) nor changes the configurations it reads (it
``deepcopy``s those it changes); ``tests/test_gx_memo.py`` holds the results of every row rule
equal with and without it. The memo belongs to the thread that entered it and is dropped when
the block ends, so nothing outlives one validation and other threads read the property as
Great Expectations wrote it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_local = threading.local()
_installed = False


def install() -> None:
    """Route ``Expectation.configuration`` through the memo (idempotent; imports GX)."""
    global _installed
    if _installed:
        return
    from great_expectations.expectations.expectation import Expectation

    built = Expectation.configuration.fget

    def configuration(expectation: Any) -> Any:
        memo: dict[int, tuple[Any, Any]] | None = getattr(_local, "memo", None)
        if memo is None:
            return built(expectation)
        hit = memo.get(id(expectation))
        if hit is None:
            # The expectation is kept beside its configuration: its id cannot be reused
            # by another object while the memo lives.
            hit = memo[id(expectation)] = (expectation, built(expectation))
        return hit[1]

    Expectation.configuration = property(configuration, doc=Expectation.configuration.__doc__)
    _installed = True


@contextmanager
def memoized() -> Iterator[None]:
    """Within the block, on this thread, each expectation's configuration is built once."""
    install()
    outer = getattr(_local, "memo", None)
    if outer is None:
        _local.memo = {}
    try:
        yield
    finally:
        if outer is None:
            _local.memo = None
