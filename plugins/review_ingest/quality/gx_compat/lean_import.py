"""Import Great Expectations without what the pipeline never uses.

Great Expectations 1.x imports ``scipy.stats`` and ``altair`` at module level for one
expectation and two metrics (``expect_column_kl_divergence_to_be_less_than`` and the
Kolmogorov-Smirnov p-values), none of them in the suites of ``include/expectations``. Together
they are about 640 modules: about 80 MB resident and 1 s in every process that validates a file
(``benchmarks/bench_ingest.py``, peak RSS and ``check``).

``load()`` puts a stand-in for each in ``sys.modules`` before it imports Great Expectations: the
real module is imported the first time anything is read from the stand-in, so an expectation
that does use them still works, at that moment's cost. Once Great Expectations is loaded
(a Celery worker's preload, or an earlier ``load()``), ``load()`` defers nothing.

It also turns off the fingerprint Great Expectations computes for every pandas batch
(``hash_pandas_object`` over every cell, twice per validation as ``Batch.validate`` fetches
the batch again): about 0.1-0.2 s per validation of a 5 MB file, for a line in the Data Docs'
batch markers that identifies nothing a person can look up; the page names each file and its
import, and ``imports.sha256`` identifies the file.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

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
    """``great_expectations``, imported with ``DEFERRED`` left for later if it is not loaded."""
    if "great_expectations" not in sys.modules:
        for name in DEFERRED:
            _defer(name)
    import great_expectations
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0  # no frame is smaller: none gets one
    return great_expectations
