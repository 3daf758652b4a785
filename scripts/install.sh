#!/usr/bin/env bash
# Installs the project into .venv/ (Python 3.11, pinned requirements, the review-ingest command).
# Idempotent: a second run only checks that everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "install: Python 3.11 is required (found $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# uv installs the ~180 pinned packages in seconds; pip is the fallback.
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check uv==0.13.9 2>/dev/null \
    || .venv/bin/pip install --quiet --disable-pip-version-check uv || true
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt pyproject.toml scripts/install.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # Compiled bytecode: without it every command compiles ~2,000 modules at start (this
  # environment may set PYTHONDONTWRITEBYTECODE, so nothing would ever be cached).
  if [ -x .venv/bin/uv ]; then
    .venv/bin/uv pip install --quiet --python .venv/bin/python -r requirements.txt
    .venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps -e .
  else
    .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
    .venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
  fi
  .venv/bin/python -m compileall -q -j 0 .venv/lib/python3.11/site-packages >/dev/null || true
  echo "$want" > "$stamp"
fi
echo "install: .venv is ready ($(.venv/bin/review-ingest --help >/dev/null && echo review-ingest installed))"
