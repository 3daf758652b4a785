#!/usr/bin/env bash
# The UI command of the README: the whole of Airflow on the embedded default, with the review UI.
# Installs, loads the demo data of command 1 (scripts/demo.sh) when the warehouse holds no import
# yet, then starts Airflow's API server (on 127.0.0.1), scheduler (LocalExecutor), DAG processor
# and triggerer on one AIRFLOW_HOME (SQLite metadata database), SimpleAuthManager with one local
# user; waits until Airflow's health is all green, unpauses the DAGs a person runs by hand, and
# prints the URLs and how to log in. Ctrl-C stops every process it started.
#
#   scripts/ui.sh                 # http://127.0.0.1:8080/review-ingest/imports
#   scripts/ui.sh --port 8181     # or REVIEW_UI_PORT=8181
#   REVIEW_UI_USER=alice scripts/ui.sh
#
# The user's password is generated once into .airflow/simple_auth_manager_passwords.json (kept,
# so it stays the same from one start to the next; delete the file for a new one). Each service
# logs to .airflow/ui-<service>.log.
#
# Why not `airflow standalone` (airflow/cli/commands/standalone_command.py): it starts the same
# four commands as children, but with every output on one terminal and no log file, the API
# server on [api] host (0.0.0.0 unless configured), "ready" judged on the jobs' heartbeats without
# the API server, and a stop that is SIGTERM to each child alone: their own children and the
# tasks' processes (in process groups of their own) are orphaned (../shared/STACK_NOTES.md).
# Started one by one here, each service has a log of its own, the loopback address only, and a
# session of its own that holds its tasks' processes too and is stopped as a whole.
set -euo pipefail
cd "$(dirname "$0")/.."

port=${REVIEW_UI_PORT:-8080}
user=${REVIEW_UI_USER:-admin}
# Airflow's health all green within this many seconds of the services' start (seen here: 9 to
# 18 s; ../shared/STACK_NOTES.md saw up to 4 minutes).
ready_seconds=${REVIEW_UI_READY_SECONDS:-300}
SERVICES=(api-server scheduler dag-processor triggerer)
# Unpaused at each start: the DAGs a person runs by hand from Airflow's UI, the upload ingest
# (a file dropped in data/uploads/ is imported within 10 minutes as in production), the mailer's
# events (a file dropped in data/events/incoming/ loads within 15) and the notifications.
# orders_sftp_ingest (no local SFTP merchant) and review_data_retention (it deletes) stay paused.
UNPAUSE=(orders_backfill orders_upload_ingest review_request_events review_notifications)
# Unpaused when the DAG exists (another change adds it).
UNPAUSE_IF_PRESENT=(orders_upload_import)
# Each stop step: the signal sent to every process left in the services' sessions, then up to
# this many seconds for them to go.
STOP_STEPS=("INT 20" "TERM 10" "KILL 5")

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --port) port=${2:?--port needs a value}; shift 2 ;;
      --port=*) port=${1#--port=}; shift ;;
      -h | --help) usage; exit 0 ;;
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
  if ! [[ "$ready_seconds" =~ ^[0-9]+$ ]]; then
    echo "ui: REVIEW_UI_READY_SECONDS must be a number of seconds" >&2
    exit 2
  fi
}

# Processes whose environment holds exactly NAME=VALUE (the marker of start_service).
marked_pids() {
  grep -lzxF -- "$1" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 || true
}

refuse_busy() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "ui: something already listens on 127.0.0.1:$port: stop it, or pick another port" \
      "(scripts/ui.sh --port 8181)" >&2
    exit 1
  fi
  # Two schedulers on one SQLite database would both run the DAGs: one UI command per home.
  local left
  left=$(marked_pids "REVIEW_UI_HOME=$AIRFLOW_HOME" | paste -sd' ')
  if [ -n "$left" ]; then
    echo "ui: processes of another scripts/ui.sh on $AIRFLOW_HOME still run (pids $left): stop" \
      "that one first" >&2
    exit 1
  fi
}

# The demo data of command 1, once: only when the warehouse has no import yet.
load_demo_once() {
  if [ -z "$(review-ingest imports --limit 1 2>/dev/null)" ]; then
    echo "ui: the warehouse is empty: loading the demo data of scripts/demo.sh"
    bash scripts/demo.sh
  else
    airflow db migrate >/dev/null 2>&1 || airflow db migrate
  fi
}

# SimpleAuthManager with one local admin user; password and JWT secret generated once, kept in
# AIRFLOW_HOME. Prints the password.
make_login() {
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
}

# What every service shares, besides scripts/airflow_env.sh.
export_settings() {
  export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="$user:admin"
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$passwords
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False
  export AIRFLOW__CORE__LAZY_LOAD_PLUGINS=False
  # One secret for every service: the scheduler signs the tasks' tokens that the API server's
  # execution API checks. Kept from one start to the next, so a browser stays logged in.
  AIRFLOW__API_AUTH__JWT_SECRET=$(cat "$secrets_file")
  export AIRFLOW__API_AUTH__JWT_SECRET
  # Task processes report to the execution API of this API server (Airflow's default is
  # localhost:8080, which is neither another port nor, always, 127.0.0.1).
  export AIRFLOW__API__BASE_URL=$base
  export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=$base/execution/
}

# Starts `airflow <service> ARGS` in a session of its own (setsid: its pid is the session's and
# the process group's id), its output in AIRFLOW_HOME/ui-<service>.log. Sessions, not markers in
# the environment, find every process of a service at the end: the API server, the executor's
# workers and the task supervisors retitle themselves, which overwrites what /proc shows of their
# environment. SIGINT back to its default: bash ignores it in background commands.
declare -A pid_of=()
start_service() {
  local name=$1
  shift
  (
    trap - INT QUIT
    REVIEW_UI_HOME=$AIRFLOW_HOME exec setsid airflow "$name" "$@"
  ) </dev/null >"$AIRFLOW_HOME/ui-$name.log" 2>&1 &
  pid_of[$name]=$!
}

start_services() {
  echo "ui: starting Airflow's ${SERVICES[*]} (logs: $AIRFLOW_HOME/ui-<service>.log)"
  # The task logs are files of this AIRFLOW_HOME, read by the API server itself: no log server
  # on 0.0.0.0:8793/8794 for the scheduler and triggerer.
  start_service api-server --host 127.0.0.1 --port "$port" --workers 1
  start_service scheduler --skip-serve-logs
  start_service dag-processor
  start_service triggerer --skip-serve-logs
}

# The live processes (zombies aside) of the sessions given.
session_pids() {
  ps -eo pid=,sid=,stat= | awk -v sids=" $* " 'index(sids, " " $2 " ") && $3 !~ /^Z/ {print $1}'
}

# Every step of STOP_STEPS to every process left in the sessions given: as Ctrl-C would to a
# terminal's foreground group, but to the tasks' groups too, so the executor need not wait for
# them.
stop_sessions() {
  local step sig grace pids _
  for step in "${STOP_STEPS[@]}"; do
    read -r sig grace <<<"$step"
    pids=$(session_pids "$@")
    [ -z "$pids" ] && return 0
    # shellcheck disable=SC2086 # one pid a word
    kill -"$sig" $pids 2>/dev/null || true
    for _ in $(seq 1 $((grace * 5))); do
      sleep 0.2
      pids=$(session_pids "$@")
      [ -z "$pids" ] && return 0
      # What outlives its service (the executor's workers ignore SIGINT and SIGTERM; a task)
      # has nobody left to stop it: 2 s more, then the next signal.
      if ! any_of "$pids" "$@"; then
        sleep 2
        break
      fi
    done
  done
}

# Whether any of the pids after the first argument is in the first (pids, one a line).
any_of() {
  local pids=$'\n'$1$'\n' pid
  shift
  for pid in "$@"; do [[ $pids == *$'\n'$pid$'\n'* ]] && return 0; done
  return 1
}

stopping=0
stop_all() {
  [ "$stopping" -eq 1 ] && return 0
  stopping=1
  [ -z "${helper:-}" ] || kill -TERM "$helper" 2>/dev/null || true
  [ ${#pid_of[@]} -eq 0 ] && return 0
  echo
  echo "ui: stopping ${!pid_of[*]}"
  local since=$SECONDS
  stop_sessions "${pid_of[@]}"
  wait 2>/dev/null || true
  echo "ui: stopped (in $((SECONDS - since)) s)"
}

# Waits (bounded) until /api/v2/monitor/health shows every component healthy, with heartbeats of
# this start, then until the DAG processor has read every DAG file, and unpauses UNPAUSE (and
# UNPAUSE_IF_PRESENT when it exists). Names the service at fault and prints the end of its log.
wait_ready() {
  local services=() name
  for name in "${!pid_of[@]}"; do services+=("$name=${pid_of[$name]}"); done
  python scripts/ui_ready.py "$base" "$AIRFLOW_HOME" "$AIRFLOW__CORE__DAGS_FOLDER" "$started" \
    "$ready_seconds" "$user" "${UNPAUSE[*]}" "${UNPAUSE_IF_PRESENT[*]}" "${services[@]}" &
  helper=$!
  wait "$helper"
}

print_banner() {
  cat <<EOF

  Review UI:  $base/review-ingest/imports
  Requests:   $base/review-ingest/requests
  Import:     $base/review-ingest/import
  Airflow:    $base/   ("Review imports", "Review requests" and "Import orders" are in its menu)

  Each sends you to Airflow's login page first. Log in with
      user:      $user
      password:  $password
  (the password is kept in $passwords)

  Airflow ready after $(($(date +%s) - started)) s: ${SERVICES[*]} (LocalExecutor, SQLite).
  Ctrl-C stops them all. Their logs: $AIRFLOW_HOME/ui-<service>.log

EOF
}

# Until a service exits: then the others are stopped, and ui.sh fails naming it.
watch_services() {
  local died="" status name
  set +e
  wait -n -p died "${pid_of[@]}"
  status=$?
  set -e
  for name in "${!pid_of[@]}"; do [ "${pid_of[$name]}" = "$died" ] && break; done
  echo "ui: airflow $name exited with status $status; the end of its log:" >&2
  tail -30 "$AIRFLOW_HOME/ui-$name.log" >&2
  stop_all
  echo "ui: airflow $name exited: stopped the others" >&2
  exit 1
}

parse_args "$@"
base=http://127.0.0.1:$port
bash scripts/install.sh
source scripts/airflow_env.sh
mkdir -p "$AIRFLOW_HOME"
refuse_busy
load_demo_once
passwords=$AIRFLOW_HOME/simple_auth_manager_passwords.json
secrets_file=$AIRFLOW_HOME/ui-jwt-secret
password=$(make_login)
export_settings

# Ctrl-C, kill or a closed terminal: everything started is stopped.
trap 'stop_all; exit 0' INT TERM HUP
trap stop_all EXIT
started=$(date +%s)
start_services
echo "ui: waiting for Airflow's health (up to $ready_seconds s)"
wait_ready || exit 1
helper=
print_banner
watch_services
