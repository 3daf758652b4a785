"""Import Great Expectations without ``scipy.stats`` and ``altair``, until something reads them.

Upstream (Great Expectations 1.24.1): ``import great_expectations`` imports ``scipy.stats`` and
``altair`` at module level, for one expectation and two metrics
(``expect_column_kl_divergence_to_be_less_than`` and the Kolmogorov-Smirnov p-values), none of
them in the suites of ``include/expectations``.

Why: those two packages are a large share of the memory and start-up time of every process
that validates a file. ``load()`` puts a stand-in for each in ``sys.modules`` before it imports
Great Expectations: the real module is imported the first time anything is read from the
stand-in, so an expectation that does use them still works, at that moment's cost. Once Great
Expectations is loaded (a Celery worker's preload, or an earlier ``load()``) nothing is
deferred; on other versions than the proven ones, nothing either. Unlike the other patches it
cannot be undone in a process: ``tests/integration/test_gx_import.py`` compares fresh interpreters.

It can go when Great Expectations imports ``scipy.stats`` and ``altair`` lazily itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from review_ingest.quality.gx_compat import gate

#: Imported by Great Expectations at module level, used by none of our suites' expectations.
DEFERRED = ("scipy.stats", "altair")


class _Deferred(ModuleType):
    """Stands in ``sys.modules`` for a module until an attribute is read from it.

    Its ``__spec__`` is the real module's, so that ``import`` and ``from ... import`` of the
    name find it initialised without loading anything; any other attribute imports the real
    module in its place and is read from it."""

    def __getattr__(self, attribute: str) -> object:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        return getattr(importlib.import_module(name), attribute)


def _defer(name: str) -> None:
    """Put a stand-in for module ``name`` in ``sys.modules``, unless it is loaded or missing."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    stand_in = _Deferred(name)
    stand_in.__spec__ = spec
    sys.modules[name] = stand_in
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, stand_in)


def load() -> ModuleType:
    """``great_expectations``, imported with ``DEFERRED`` left for later if it is not loaded
    yet and its version is the proven one."""
    if "great_expectations" not in sys.modules and gate.proven():
        for name in DEFERRED:
            _defer(name)
    import great_expectations

    return great_expectations
