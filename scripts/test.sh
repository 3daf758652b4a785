#!/usr/bin/env bash
# Command 2 of the README: install everything, start what the tests need, run the whole suite.
# .ci/run calls this script. Extra arguments go to pytest (e.g. scripts/test.sh -k reading).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh
bash scripts/ensure_postgres.sh   # a real PostgreSQL on 127.0.0.1:5432 (started or installed)
bash scripts/ensure_sshd.sh       # OpenSSH's sshd and sftp client (installed when missing)
bash scripts/ensure_redis.sh      # Redis on 127.0.0.1:6379, the distributed run's Celery broker
bash scripts/ensure_chromium.sh   # Debian Chromium + ChromeDriver for the UI browser tests

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

echo "== pytest"
set +e
.venv/bin/pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "test: pytest collected no test: that is a failure" >&2
  exit 1
fi
[ "$status" -eq 0 ] || exit "$status"

echo "== conformance (../shared/conformance)"
shared=${REVIEW_INGEST_SHARED_DIR:-../shared}
if [ ! -f "$shared/conformance/run.py" ]; then
  echo "test: $shared/conformance/run.py not found (set REVIEW_INGEST_SHARED_DIR)" >&2
  exit 1
fi
.venv/bin/python "$shared/conformance/run.py" all
