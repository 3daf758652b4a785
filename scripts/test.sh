#!/usr/bin/env bash
# Command 2 of the README: install everything, start what the tests need, run the whole suite
# (unit, integration and e2e tiers, with the real delays), ending with its 25 slowest tests.
# .ci/run calls this script. Extra arguments go to pytest (e.g. scripts/test.sh -k reading,
# scripts/test.sh tests/integration -x).
#
# scripts/test.sh --fast: the unit tier only (tests/unit/: no server, no process, no Airflow
# run; under a minute): install, ruff, pytest tests/unit. No server is started; the remaining
# arguments go to pytest (scripts/test.sh --fast -k reading).
set -euo pipefail
cd "$(dirname "$0")/.."

fast=0
if [ "${1:-}" = "--fast" ]; then
  fast=1
  shift
fi

bash scripts/install.sh
if [ "$fast" -eq 0 ]; then
  bash scripts/ensure_postgres.sh   # a real PostgreSQL on 127.0.0.1:5432 (started or installed)
  bash scripts/ensure_sshd.sh       # OpenSSH's sshd and sftp client (installed when missing)
  bash scripts/ensure_redis.sh      # Redis on 127.0.0.1:6379, the distributed run's Celery broker
  bash scripts/ensure_chromium.sh   # Debian Chromium + ChromeDriver for the UI browser tests
fi

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

echo "== pytest"
set +e
if [ "$fast" -eq 1 ]; then
  .venv/bin/pytest tests/unit "$@"
else
  .venv/bin/pytest --durations=25 "$@"
fi
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "test: pytest collected no test: that is a failure" >&2
  exit 1
fi
[ "$status" -eq 0 ] || exit "$status"
if [ "$fast" -eq 1 ]; then
  exit 0
fi

echo "== conformance (../shared/conformance)"
shared=${REVIEW_INGEST_SHARED_DIR:-../shared}
if [ ! -f "$shared/conformance/run.py" ]; then
  echo "test: $shared/conformance/run.py not found (set REVIEW_INGEST_SHARED_DIR)" >&2
  exit 1
fi
.venv/bin/python "$shared/conformance/run.py" all
