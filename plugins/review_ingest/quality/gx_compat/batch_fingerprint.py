"""Great Expectations' pandas batches get no fingerprint.

Upstream (Great Expectations 1.24.1): ``PandasExecutionEngine.get_batch_data_and_markers``
hashes every cell of a batch frame smaller than ``HASH_THRESHOLD`` into the batch marker
``pandas_data_fingerprint``, and ``Batch.validate`` fetches the batch again, hashing it twice.

Why: the hash is paid on every validation for a line in the Data Docs' batch markers that
identifies nothing a person can look up; the page names each file and its import, and
``imports.sha256`` identifies the file. With a threshold of 0 no frame is small enough.

It can go when Great Expectations makes the fingerprint optional or drops it.
"""

from __future__ import annotations

from review_ingest.quality.gx_compat import gate

_patch = gate.Patch()


def install() -> bool:
    """Set ``HASH_THRESHOLD`` to 0, on the proven versions only (imports GX); whether it is."""
    if _patch.installed or not gate.proven():
        return _patch.installed
    from great_expectations.execution_engine import pandas_execution_engine

    _patch.replace(pandas_execution_engine, "HASH_THRESHOLD", 0)
    return True


def uninstall() -> bool:
    """Put Great Expectations' own threshold back; whether it had been replaced."""
    return _patch.restore()
