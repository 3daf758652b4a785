"""The Data Docs index, rebuilt once per DAG run after its mapped tasks built their pages."""

from __future__ import annotations

from typing import Any

from review_ingest import settings


def build_docs_index(parts: list[Any]) -> bool:
    """The Data Docs index, once after a DAG run's mapped tasks, whether they succeeded or
    not (a failed one may have built pages first); nothing when the run had no part.

    Each batch builds only its own pages and appends them to the manifest; the index, made
    from the manifest (``quality.docs_index``: the newest pages, and the history pages that
    changed), once per run rather than once per batch. Returns whether it was built.
    """
    if not parts:
        return False
    from review_ingest.pipeline.ingest import Ingest

    Ingest(settings.data_dir()).validation.build_index()
    return True
