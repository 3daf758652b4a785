"""One file's or one merchant's failure never stops the others: each is tried, then the task
fails naming every one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from review_ingest.errors import ConfigError, PermanentError, describe

log = logging.getLogger(__name__)
T = TypeVar("T")


class BatchFailed(RuntimeError):
    """Some files of a batch could not be processed; the others were. Names each one."""


def attempt(action: Callable[[T], Any], item: T) -> Any:
    """``action(item)``, or the exception it raised: ``each_file`` reports it with the file."""
    try:
        return action(item)
    except Exception as exc:  # noqa: BLE001 - raised again for this file only, by each_file
        return exc


def each_file(
    items: Iterable[T],
    label: Callable[[T], str],
    process: Callable[[T], dict[str, Any] | None],
    fatal: tuple[type[BaseException], ...] = (),
) -> list[dict[str, Any]]:
    """Process every item; one item's failure never stops the others. Failures are logged, then
    raised together as BatchFailed naming each; a ``fatal`` error (a lost server) stops at once.
    """
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    for item in items:
        try:
            result = process(item)
        except fatal:
            raise
        except Exception as exc:  # noqa: BLE001 - one file must not stop the others
            failures.append(f"{label(item)}: {describe(exc)}")
            log.error("%s failed: %s", label(item), describe(exc))
            continue
        if result is not None:
            results.append(result)
    if failures:
        raise BatchFailed(f"{len(failures)} file(s) failed: " + " | ".join(failures))
    return results


def raise_failures(failures: dict[str, Exception], failed: type[Exception] = BatchFailed) -> None:
    """Fail a task whose merchants' parts failed (by merchant id), after the others were done:
    with that error itself when there is one (noted with its merchant, for the task's log),
    else with ``failed`` naming each merchant, or a ConfigError (not retried) when every one is
    a PermanentError."""
    if not failures:
        return
    if len(failures) == 1:
        [(merchant_id, exc)] = failures.items()
        exc.add_note(f"merchant {merchant_id}: its part of the task failed; the others were done")
        raise exc
    text = " | ".join(f"merchant {m}: {describe(e)}" for m, e in failures.items())
    if all(isinstance(e, PermanentError) for e in failures.values()):
        raise ConfigError(text)
    raise failed(text)
