"""The docker compose deployment, checked without a Docker engine (these machines have none).

``docker-compose.yaml`` is read with PyYAML and validated against the Compose Specification's JSON
schema (``../shared/schemas/compose-spec.json``, or ``$REVIEW_INGEST_SHARED_DIR/schemas/``); the
other checks read it with the Dockerfile, requirements.txt, .env.example, include/merchants.yaml
and the package's sources.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
REQUIREMENTS = REPO_ROOT / "requirements.txt"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
MERCHANTS_FILE = REPO_ROOT / "include" / "merchants.yaml"
PACKAGE_DIR = REPO_ROOT / "plugins" / "review_ingest"

REQUIRED_SERVICES = (
    "postgres",
    "redis",
    "sftp",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
#: Services that run a command and exit: no health check.
ONE_SHOT_SERVICES = {"airflow-init", "airflow-cli"}
#: Folders of the repository every Airflow service mounts, by target.
PROJECT_MOUNTS = {
    "/opt/airflow/dags": "dags",
    "/opt/airflow/plugins": "plugins",
    "/opt/airflow/include": "include",
}
DATA_DIR = "/opt/airflow/data"
MERCHANTS_IN_CONTAINER = "/opt/airflow/include/merchants.yaml"
#: Variables the package reads that Airflow services must not get from the environment: the
#: warehouse comes from the Airflow connection there; REVIEW_INGEST_TEST_* are for tests.
PACKAGE_VARIABLES_NOT_IN_AIRFLOW = {"REVIEW_INGEST_WAREHOUSE_URL"}
TEST_ONLY_PREFIX = "REVIEW_INGEST_TEST_"

# `$$` is an escaped dollar; `${NAME...}` and `$NAME` are interpolated (compose-spec).
_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)|\$([A-Za-z_][A-Za-z0-9_]*)")
_SUBSTITUTION = re.compile(
    r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)"
)
_ENV_FILE_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")
_ENV_READ = re.compile(
    r"""\benviron\s*(?:\.\s*(?:get|setdefault|pop)\s*\(\s*|\[\s*)["']([A-Za-z_][A-Za-z0-9_]*)["']"""
    r"""|\bgetenv\s*\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"""
)
_FROM_AIRFLOW = re.compile(
    r"^FROM\s+(?:--platform=\S+\s+)?apache/airflow:(?P<version>\d+\.\d+\.\d+)"
    r"(?:-python\d+\.\d+)?(?:@sha256:[0-9a-f]{64})?(?:\s+AS\s+\S+)?\s*$",
    re.IGNORECASE,
)


# -- helpers ---------------------------------------------------------------------------------


def shared_dir() -> Path:
    """The project's shared folder: ``$REVIEW_INGEST_SHARED_DIR``, else ``<repo>/../shared``."""
    override = os.environ.get("REVIEW_INGEST_SHARED_DIR")
    return Path(override) if override else REPO_ROOT.parent / "shared"


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's ``environment`` as a dict, whether written as a mapping or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, None) for item in env)
        return {name: value for name, value in pairs}
    return {name: None if value is None else str(value) for name, value in env.items()}


def strings(node: Any) -> Iterator[str]:
    """Every string value in a parsed YAML document (keys and comments are not interpolated)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def interpolated_names(text: str) -> set[str]:
    return {m.group(1) or m.group(2) for m in _INTERPOLATION.finditer(text) if m.group(0) != "$$"}


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's interpolation of ``text`` (without nesting), as ``docker compose config`` does."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3) or ""
        value = values.get(name)
        is_set = value is not None
        is_filled = bool(value)
        if operator in (":-", "-"):
            return value if (is_filled if operator == ":-" else is_set) else argument
        if operator in (":?", "?"):
            if not (is_filled if operator == ":?" else is_set):
                raise AssertionError(f"required variable {name} has no value ({argument})")
            return value
        if operator in (":+", "+"):
            return argument if (is_filled if operator == ":+" else is_set) else ""
        return value or ""

    return _SUBSTITUTION.sub(replace, text)


def env_example() -> dict[str, str]:
    assert ENV_EXAMPLE.is_file(), f"{ENV_EXAMPLE} is missing: it documents every ${{VAR}}"
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#"):
            continue
        if match := _ENV_FILE_LINE.match(line):
            values[match.group(1)] = match.group(2).strip().strip("'\"")
    return values


def example_values() -> dict[str, str]:
    """.env.example's values, with a stand-in for each secret left empty for the operator."""
    return {name: value or f"stand-in-{name.lower()}" for name, value in env_example().items()}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's mounts as {target: source}, from the short or the long syntax."""
    found = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            found[volume.get("target", "")] = volume.get("source", "")
            continue
        # Split on colons outside ${...}: "${DATA:-data}:/opt/airflow/data:rw".
        parts = re.split(r":(?![^{]*\})", volume)
        if len(parts) >= 2:
            found[parts[1]] = parts[0]
    return found


def package_variables() -> set[str]:
    """REVIEW_INGEST_* variables the package reads from the environment."""
    names = set()
    for source in sorted(PACKAGE_DIR.rglob("*.py")):
        for match in _ENV_READ.finditer(source.read_text(encoding="utf-8")):
            names.add(match.group(1) or match.group(2))
    return {name for name in names if name.startswith("REVIEW_INGEST_")}


def sftp_conn_ids(path: Path) -> set[str]:
    """The ``conn_id`` of every merchant's ``sftp`` block in the merchants file."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    merchants = doc.get("merchants") if isinstance(doc, dict) else None
    conn_ids = set()
    for entry in (merchants or {}).values():
        sftp = entry.get("sftp") if isinstance(entry, dict) else None
        if isinstance(sftp, dict) and sftp.get("conn_id"):
            conn_ids.add(str(sftp["conn_id"]))
    return conn_ids


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    doc = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), f"{COMPOSE_FILE} is not a YAML mapping"
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose.get("services")
    assert isinstance(found, dict) and found, f"{COMPOSE_FILE} defines no services"
    return found


@pytest.fixture(scope="module")
def airflow_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {name: svc for name, svc in services.items() if name.startswith("airflow-")}
    assert found, f"{COMPOSE_FILE} defines no airflow-* service"
    return found


@pytest.fixture(scope="module")
def common_env(compose: dict[str, Any]) -> dict[str, str | None]:
    common = compose.get("x-airflow-common")
    assert isinstance(common, dict), f"{COMPOSE_FILE} has no x-airflow-common anchor"
    return environment(common)


# -- tests -----------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema_file = shared_dir() / "schemas" / "compose-spec.json"
    if not schema_file.is_file():
        pytest.fail(
            f"Compose Specification schema not found at {schema_file}: the compose file cannot "
            "be validated. Set $REVIEW_INGEST_SHARED_DIR to the folder holding "
            "schemas/compose-spec.json."
        )
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path)
    )
    assert not errors, f"{COMPOSE_FILE} does not match {schema_file}:\n" + "\n".join(
        f"  at {'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in errors
    )


def test_every_required_service_is_defined(services: dict[str, dict[str, Any]]) -> None:
    missing = [name for name in REQUIRED_SERVICES if name not in services]
    assert not missing, f"services missing from {COMPOSE_FILE.name}: {', '.join(missing)}"


def test_dockerfile_uses_the_airflow_version_pinned_in_requirements() -> None:
    pins = re.findall(
        r"^apache-airflow==(\S+)\s*$", REQUIREMENTS.read_text(encoding="utf-8"), re.MULTILINE
    )
    assert len(pins) == 1, f"{REQUIREMENTS.name} must pin apache-airflow exactly once: {pins}"
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    from_lines = [
        line.strip()
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if line.strip().upper().startswith("FROM ")
    ]
    assert from_lines, f"{DOCKERFILE.name} has no FROM line"
    match = _FROM_AIRFLOW.match(from_lines[0])
    assert match, (
        f"{DOCKERFILE.name}: FROM must name apache/airflow:<version>[-pythonX.Y] literally, "
        f"got {from_lines[0]!r}"
    )
    assert match.group("version") == pins[0], (
        f"{DOCKERFILE.name} builds from Airflow {match.group('version')} but "
        f"{REQUIREMENTS.name} pins apache-airflow=={pins[0]}"
    )


def test_airflow_services_build_the_image_from_the_dockerfile(
    airflow_services: dict[str, dict[str, Any]],
) -> None:
    wrong = {}
    for name, service in airflow_services.items():
        build = service.get("build")
        if isinstance(build, str):
            build = {"context": build}
        if not isinstance(build, dict) or build.get("context") not in (".", "./"):
            wrong[name] = build
        elif build.get("dockerfile", "Dockerfile") != "Dockerfile":
            wrong[name] = build
    assert not wrong, f"these services do not build ./Dockerfile (x-airflow-common): {wrong}"


def test_every_airflow_service_uses_the_celery_executor(
    airflow_services: dict[str, dict[str, Any]],
) -> None:
    problems = []
    for name, service in airflow_services.items():
        env = environment(service)
        if env.get("AIRFLOW__CORE__EXECUTOR") != "CeleryExecutor":
            problems.append(f"{name}: AIRFLOW__CORE__EXECUTOR={env.get('AIRFLOW__CORE__EXECUTOR')}")
        if not (env.get("AIRFLOW__CELERY__BROKER_URL") or "").startswith("redis://"):
            problems.append(f"{name}: AIRFLOW__CELERY__BROKER_URL is not a redis:// URL")
        if not (env.get("AIRFLOW__CELERY__RESULT_BACKEND") or "").startswith("db+postgresql"):
            problems.append(f"{name}: AIRFLOW__CELERY__RESULT_BACKEND is not db+postgresql")
        if not (env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or "").startswith("postgresql"):
            problems.append(f"{name}: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN is not PostgreSQL")
    assert not problems, "CeleryExecutor settings wrong:\n  " + "\n  ".join(problems)


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    missing = []
    for name, service in services.items():
        if name in ONE_SHOT_SERVICES:
            continue
        check = service.get("healthcheck") or {}
        test = check.get("test")
        if check.get("disable") or not test or test in ("NONE", ["NONE"]):
            missing.append(name)
    assert not missing, (
        f"long-running services without a health check: {', '.join(missing)} "
        f"(one-shot services are {sorted(ONE_SHOT_SERVICES)})"
    )


def test_airflow_init_migrates_both_databases_and_creates_the_warehouse_pool(
    services: dict[str, dict[str, Any]],
) -> None:
    init = services.get("airflow-init")
    assert init, "no airflow-init service"
    command = init.get("command") or ""
    script = " ".join(command) if isinstance(command, list) else str(command)
    assert "airflow db migrate" in script, "airflow-init does not run `airflow db migrate`"
    assert "review-ingest migrate" in script, "airflow-init does not run `review-ingest migrate`"
    assert re.search(r"airflow pools set warehouse\s+\S+", script), (
        "airflow-init does not create the `warehouse` pool (`airflow pools set warehouse N ...`)"
    )


def test_airflow_init_migrates_the_postgres_warehouse(
    services: dict[str, dict[str, Any]], common_env: dict[str, str | None]
) -> None:
    """`review-ingest migrate` runs outside Airflow: without the URL it would migrate SQLite."""
    env = environment(services["airflow-init"])
    url = interpolate(env.get("REVIEW_INGEST_WAREHOUSE_URL") or "", example_values())
    assert url.startswith("postgresql"), (
        "airflow-init must set REVIEW_INGEST_WAREHOUSE_URL to the PostgreSQL warehouse, "
        f"got {url!r}: `review-ingest migrate` would otherwise migrate a SQLite file"
    )
    connection = interpolate(
        common_env.get("AIRFLOW_CONN_REVIEW_WAREHOUSE") or "", example_values()
    )
    warehouse, migrated = urlsplit(connection), urlsplit(url)
    assert (migrated.hostname, migrated.path) == (warehouse.hostname, warehouse.path), (
        f"airflow-init migrates {migrated.hostname}{migrated.path} but the review_warehouse "
        f"connection is {warehouse.hostname}{warehouse.path}"
    )


def test_airflow_services_define_the_connections_and_settings(
    airflow_services: dict[str, dict[str, Any]],
) -> None:
    required = (
        "AIRFLOW_CONN_REVIEW_WAREHOUSE",
        "AIRFLOW_CONN_MERCHANT_SFTP",
        "REVIEW_INGEST_DATA_DIR",
        "REVIEW_INGEST_MERCHANTS",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    )
    missing = {
        name: [var for var in required if not environment(service).get(var)]
        for name, service in airflow_services.items()
    }
    missing = {name: variables for name, variables in missing.items() if variables}
    assert not missing, f"environment variables missing per service: {missing}"
    wrong = {
        name: (env["REVIEW_INGEST_DATA_DIR"], env["REVIEW_INGEST_MERCHANTS"])
        for name, env in ((n, environment(s)) for n, s in airflow_services.items())
        if (env["REVIEW_INGEST_DATA_DIR"], env["REVIEW_INGEST_MERCHANTS"])
        != (DATA_DIR, MERCHANTS_IN_CONTAINER)
    }
    assert not wrong, (
        f"REVIEW_INGEST_DATA_DIR / REVIEW_INGEST_MERCHANTS must be {DATA_DIR} / "
        f"{MERCHANTS_IN_CONTAINER}: {wrong}"
    )


def test_airflow_services_share_one_jwt_secret(
    airflow_services: dict[str, dict[str, Any]],
) -> None:
    secrets = {
        name: environment(service).get("AIRFLOW__API_AUTH__JWT_SECRET")
        for name, service in airflow_services.items()
    }
    assert all(secrets.values()), f"AIRFLOW__API_AUTH__JWT_SECRET missing: {secrets}"
    assert len(set(secrets.values())) == 1, f"services disagree on the JWT secret: {secrets}"


def test_connections_are_well_formed_once_interpolated(
    common_env: dict[str, str | None],
) -> None:
    values = example_values()
    warehouse = urlsplit(interpolate(common_env["AIRFLOW_CONN_REVIEW_WAREHOUSE"] or "", values))
    assert warehouse.scheme == "postgresql" and warehouse.hostname == "postgres", (
        f"AIRFLOW_CONN_REVIEW_WAREHOUSE must be postgresql://...@postgres/...: {warehouse}"
    )
    assert warehouse.path.strip("/"), "AIRFLOW_CONN_REVIEW_WAREHOUSE names no database"
    raw = interpolate(common_env["AIRFLOW_CONN_MERCHANT_SFTP"] or "", values)
    try:
        sftp = json.loads(raw)
    except json.JSONDecodeError as exc:
        pytest.fail(
            f"AIRFLOW_CONN_MERCHANT_SFTP is not valid JSON once interpolated ({exc}): {raw}"
        )
    expected = {"conn_type": "sftp", "host": "sftp", "port": 22}
    assert {key: sftp.get(key) for key in expected} == expected, (
        f"AIRFLOW_CONN_MERCHANT_SFTP: {sftp}"
    )
    assert sftp.get("login"), "AIRFLOW_CONN_MERCHANT_SFTP has no login"
    extra = sftp.get("extra") or {}
    assert extra.get("key_file") and extra.get("host_key"), (
        f"AIRFLOW_CONN_MERCHANT_SFTP's extra needs key_file and a pinned host_key: {extra}"
    )
    assert str(extra.get("no_host_key_check", "false")).lower() != "true", (
        "AIRFLOW_CONN_MERCHANT_SFTP must not skip the host key check"
    )


def test_merchants_sftp_connections_are_defined(
    airflow_services: dict[str, dict[str, Any]],
) -> None:
    if not MERCHANTS_FILE.is_file():
        pytest.skip(f"{MERCHANTS_FILE} does not exist yet: no SFTP conn_id to check")
    conn_ids = sftp_conn_ids(MERCHANTS_FILE)
    missing = {
        name: sorted(
            f"AIRFLOW_CONN_{conn_id.upper()}"
            for conn_id in conn_ids
            if not environment(service).get(f"AIRFLOW_CONN_{conn_id.upper()}")
        )
        for name, service in airflow_services.items()
    }
    missing = {name: variables for name, variables in missing.items() if variables}
    assert not missing, (
        f"{MERCHANTS_FILE.name} uses SFTP connections these services do not define: {missing}"
    )


def test_every_interpolated_variable_is_in_env_example(compose: dict[str, Any]) -> None:
    used = set().union(*(interpolated_names(text) for text in strings(compose)))
    listed = set(env_example())
    missing = sorted(used - listed)
    assert not missing, (
        f"{COMPOSE_FILE.name} interpolates variables {ENV_EXAMPLE.name} does not list: "
        f"{', '.join(missing)}"
    )


def test_project_folders_and_data_volume_are_mounted(
    airflow_services: dict[str, dict[str, Any]],
) -> None:
    problems = []
    for name, service in airflow_services.items():
        found = mounts(service)
        for target, folder in PROJECT_MOUNTS.items():
            source = found.get(target)
            if source is None or not source.rstrip("/").endswith(folder):
                problems.append(f"{name}: ./{folder} not mounted at {target} (got {source!r})")
        if DATA_DIR not in found:
            problems.append(f"{name}: no volume at {DATA_DIR}")
    assert not problems, "mounts missing:\n  " + "\n  ".join(problems)


def test_package_environment_variables_are_set_for_airflow(
    common_env: dict[str, str | None],
) -> None:
    read = package_variables()
    assert read, f"found no os.environ read of REVIEW_INGEST_* under {PACKAGE_DIR}"
    expected = {
        name
        for name in read
        if name not in PACKAGE_VARIABLES_NOT_IN_AIRFLOW and not name.startswith(TEST_ONLY_PREFIX)
    }
    missing = sorted(name for name in expected if not common_env.get(name))
    assert not missing, (
        f"the package reads {', '.join(missing)} but x-airflow-common's environment does not set it"
    )


def test_airflow_worker_can_be_scaled(services: dict[str, dict[str, Any]]) -> None:
    worker = services["airflow-worker"]
    assert "container_name" not in worker, "a container_name prevents --scale airflow-worker=N"
    fixed_ports = [
        port
        for port in worker.get("ports") or []
        if (port.get("published") if isinstance(port, dict) else ":" in str(port))
    ]
    assert not fixed_ports, f"host ports on airflow-worker prevent scaling: {fixed_ports}"


def test_celery_workers_preload_the_pipeline_libraries(
    airflow_services: dict[str, dict[str, Any]],
) -> None:
    """Every component reads the same Celery settings: Airflow's own, and the import of
    review_ingest.tasks.preload when a worker starts (scripts/distributed_run.py runs with them)."""
    import importlib

    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    values = {
        name: environment(service).get("AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS")
        for name, service in airflow_services.items()
    }
    assert set(values.values()) == {"review_ingest_celery.CELERY_CONFIG"}, values
    module, _, name = "review_ingest_celery.CELERY_CONFIG".rpartition(".")
    config = getattr(importlib.import_module(module), name)
    assert {k: v for k, v in config.items() if k != "imports"} == DEFAULT_CELERY_CONFIG
    assert "review_ingest.tasks.preload" in config["imports"]
