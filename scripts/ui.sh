#!/usr/bin/env bash
# The UI command of the README: the review UI on the embedded default. Installs, loads the demo
# data of command 1 (scripts/demo.sh) when the warehouse holds no import yet, then runs Airflow's
# API server on 127.0.0.1 with SimpleAuthManager and one local user, and prints the URL and how
# to log in. Ctrl-C stops the server (its whole process group).
#
#   scripts/ui.sh                 # http://127.0.0.1:8080/review-ingest/imports
#   scripts/ui.sh --port 8181     # or REVIEW_UI_PORT=8181
#   REVIEW_UI_USER=alice scripts/ui.sh
#
# The user's password is generated once into .airflow/simple_auth_manager_passwords.json (kept,
# so it stays the same from one start to the next; delete the file for a new one).
set -euo pipefail
cd "$(dirname "$0")/.."

port=${REVIEW_UI_PORT:-8080}
user=${REVIEW_UI_USER:-admin}
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port=${2:?--port needs a value}; shift 2 ;;
    --port=*) port=${1#--port=}; shift ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ui: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
  echo "ui: --port must be a port number, not '$port'" >&2
  exit 2
fi
if ! [[ "$user" =~ ^[A-Za-z0-9_.-]+$ ]]; then
  echo "ui: REVIEW_UI_USER may hold letters, digits, '_', '.' and '-' only" >&2
  exit 2
fi

base=http://127.0.0.1:$port
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "ui: something already listens on 127.0.0.1:$port: stop it, or pick another port" \
    "(scripts/ui.sh --port 8181)" >&2
  exit 1
fi

bash scripts/install.sh
source scripts/airflow_env.sh

# The demo data of command 1, once: only when the warehouse has no import yet.
if [ -z "$(review-ingest imports --limit 1 2>/dev/null)" ]; then
  echo "ui: the warehouse is empty: loading the demo data of scripts/demo.sh"
  bash scripts/demo.sh
else
  airflow db migrate >/dev/null 2>&1 || airflow db migrate
fi

# SimpleAuthManager with one local admin user; password generated once, kept in .airflow/.
mkdir -p "$AIRFLOW_HOME"
passwords=$AIRFLOW_HOME/simple_auth_manager_passwords.json
secrets_file=$AIRFLOW_HOME/ui-jwt-secret
password=$(
  python - "$passwords" "$user" "$secrets_file" <<'EOF'
import json
import os
import secrets
import sys
from pathlib import Path

passwords_path, user, secret_path = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
passwords = json.loads(passwords_path.read_text() or "{}") if passwords_path.exists() else {}
if user not in passwords:
    passwords[user] = secrets.token_urlsafe(12)
    passwords_path.write_text(json.dumps(passwords) + "\n")
os.chmod(passwords_path, 0o600)
if not secret_path.exists():
    secret_path.write_text(secrets.token_urlsafe(32) + "\n")
os.chmod(secret_path, 0o600)
print(passwords[user])
EOF
)
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="$user:admin"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$passwords
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False
export AIRFLOW__CORE__LAZY_LOAD_PLUGINS=False
# Kept from one start to the next, so that a browser stays logged in across restarts.
AIRFLOW__API_AUTH__JWT_SECRET=$(cat "$secrets_file")
export AIRFLOW__API_AUTH__JWT_SECRET

log=$AIRFLOW_HOME/ui-api-server.log
echo "ui: starting airflow api-server on $base (log: $log)"
set -m # the server gets a process group of its own, stopped as a whole
airflow api-server --host 127.0.0.1 --port "$port" --workers 1 >"$log" 2>&1 &
server=$!
set +m

stopping=0
stop() {
  [ "$stopping" -eq 1 ] && return
  stopping=1
  kill -0 -- "-$server" 2>/dev/null || return 0
  echo
  echo "ui: stopping the api-server"
  # SIGINT to its whole group, then SIGTERM, then SIGKILL, each after up to 20 s.
  local sig _
  for sig in INT TERM KILL; do
    kill -0 -- "-$server" 2>/dev/null || break
    kill -"$sig" -- "-$server" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 -- "-$server" 2>/dev/null || break
      sleep 0.2
    done
  done
  wait "$server" 2>/dev/null || true
  echo "ui: stopped"
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

# Ready when /api/v2/monitor/health answers 200 (bounded: 180 s).
if ! python - "$base" "$server" <<'EOF'; then
import os
import sys
import time
import urllib.request

base, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 180
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("ui: the api-server exited while starting")
    try:
        with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit("ui: the api-server did not answer within 180 s")
EOF
  tail -30 "$log" >&2
  exit 1
fi

cat <<EOF

  Review UI:  $base/review-ingest/imports
  Requests:   $base/review-ingest/requests
  Airflow:    $base/   ("Review imports" and "Review requests" are in its left menu)

  Each sends you to Airflow's login page first. Log in with
      user:      $user
      password:  $password
  (the password is kept in $passwords)

  Ctrl-C stops the server. Its log: $log

EOF

set +e
wait "$server"
status=$?
set -e
if [ "$stopping" -eq 0 ]; then
  stopping=1
  echo "ui: the api-server exited with status $status; the end of its log:" >&2
  tail -30 "$log" >&2
  exit 1
fi
