"""Shared fixtures: real servers live in tests/fixtures/, one module each.

A test's tier is its folder (tests/unit/, tests/integration/, tests/e2e/): each test gets the
folder's marker, so ``-m unit`` and ``-m "not e2e"`` select by tier too. A test module directly
in tests/ (or in any other folder) has no tier: the collection fails, naming it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.airflow",
    "tests.fixtures.api_server",
    "tests.fixtures.postgres",
    "tests.fixtures.sftp_server",
    "tests.fixtures.smtp",
]

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "e2e")


def tier_of(path: Path) -> str | None:
    """The tier of a test file under tests/: its first folder, when that is a tier."""
    parts = path.resolve().relative_to(TESTS).parts
    return parts[0] if len(parts) > 1 and parts[0] in TIERS else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    untiered = set()
    for item in items:
        if not item.path.resolve().is_relative_to(TESTS):
            continue  # not this suite's test (a pytest run inside a test, say)
        tier = tier_of(item.path)
        if tier is None:
            untiered.add(str(item.path.relative_to(config.rootpath)))
        else:
            item.add_marker(tier)
    if untiered:
        raise pytest.UsageError(
            f"{', '.join(sorted(untiered))}: a test module belongs in tests/unit/ (no server, no "
            "process, no Airflow run), tests/integration/ (PostgreSQL, sshd, dag.test, CLI "
            "processes, the UI server) or tests/e2e/ (faults, several workers, the browser)"
        )
