"""Shared fixtures: real servers live in tests/fixtures/, one module each."""

pytest_plugins = [
    "tests.fixtures.airflow",
    "tests.fixtures.api_server",
    "tests.fixtures.postgres",
    "tests.fixtures.sftp_server",
]
