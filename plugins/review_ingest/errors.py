"""Which failures a retry can cure, and how a DAG task says so (contract section 8).

A usage or configuration error (an unknown merchant, a missing file, a refused key) fails the
task at once: waiting five minutes and trying again changes nothing, and hides the message
behind ten minutes of retries. Everything else (a server unreachable, the warehouse down) is
presumed transient and left to the task's retries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import ExceptionRetryPolicy


class PermanentError(Exception):
    """A failure no retry can cure: the task fails at once, naming what is wrong."""


class UsageError(PermanentError, ValueError):
    """A parameter or argument is wrong (an unknown merchant, a missing file...)."""


class ConfigError(PermanentError, ValueError):
    """The configuration is wrong (the merchants file, a connection): the message names the
    merchant or connection, and the key."""


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
    from review_ingest.settings import retry_delay

    return {
        "owner": "data-eng",
        "retries": 2,
        "retry_delay": retry_delay(),
        "retry_policy": retry_policy(),
    }
