"""Which failures a retry can cure, and how a failure is told (contract section 8).

A usage or configuration error (an unknown merchant, a missing file, a refused key) fails the
task at once: waiting five minutes and trying again changes nothing, and hides the message
behind ten minutes of retries. Everything else (a server unreachable, the warehouse down) is
presumed transient and left to the task's retries.
"""

from __future__ import annotations


class PermanentError(Exception):
    """A failure no retry can cure: the task fails at once, naming what is wrong."""


class UsageError(PermanentError, ValueError):
    """A parameter or argument is wrong (an unknown merchant, a missing file...)."""


class ConfigError(PermanentError, ValueError):
    """The configuration is wrong (the merchants file, a connection): the message names the
    merchant or connection, and the key."""


def describe(exc: BaseException) -> str:
    """An exception for a log line: database errors may quote a row (e-mails), so they are
    named by class and SQLSTATE only."""
    orig = getattr(exc, "orig", None)
    if orig is not None:
        state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        return f"{type(exc).__name__} ({type(orig).__name__}, SQLSTATE {state})"
    return f"{type(exc).__name__}: {str(exc)[:300]}"
