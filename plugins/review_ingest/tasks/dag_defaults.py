"""What every DAG reads when it is parsed: the tasks' ``default_args`` and retry policy.

Imported at DAG parse time: Airflow's SDK is imported inside the functions, nothing heavy here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from review_ingest.errors import PermanentError
from review_ingest.settings import retry_delay

if TYPE_CHECKING:
    from airflow.sdk import ExceptionRetryPolicy


def retry_policy() -> ExceptionRetryPolicy:
    """The ingest DAGs' Airflow retry policy: a PermanentError fails the task at once; any
    other failure takes the task's retries."""
    from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

    return ExceptionRetryPolicy(
        rules=[
            RetryRule(
                exception=PermanentError,
                action=RetryAction.FAIL,
                reason="a usage or configuration error: a retry cannot cure it",
            )
        ]
    )


def task_defaults() -> dict[str, Any]:
    """Every DAG's ``default_args``: two retries 5 minutes apart for transient faults, none for
    a PermanentError (``retry_policy``)."""
    return {
        "owner": "data-eng",
        "retries": 2,
        "retry_delay": retry_delay(),
        "retry_policy": retry_policy(),
    }
