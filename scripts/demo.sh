#!/usr/bin/env bash
# Command 1 of the README: install, then run the main job on the embedded default.
# SQLite warehouse and Airflow metadata in the repository, the four sample files dropped in the
# upload folders of the demo merchants, a real `airflow dags test orders_upload_ingest`, and a
# summary of each file with the paths of its report and of the Data Docs. Then a mailer's event
# file for some of those requests (delivered, reviewed, bounced, unsubscribed), loaded by a real
# `airflow dags test review_request_events`, and the path of its report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
source scripts/airflow_env.sh
# The demo drops files now: pick them up without waiting the 120 s that protect half-uploaded files.
export REVIEW_INGEST_MIN_FILE_AGE_SECONDS=0

airflow db migrate >/dev/null 2>&1 || airflow db migrate
review-ingest migrate
python scripts/drop_demo_files.py

# A real DAG run; its log in $AIRFLOW_HOME/<name>.log, shown when the run fails.
run_dag() {
  local dag_id=$1 log=$AIRFLOW_HOME/$2
  echo "demo: running $dag_id with airflow dags test (log: $log)"
  if ! airflow dags test "$dag_id" >"$log" 2>&1; then
    tail -40 "$log"
    echo "demo: the DAG run failed; full log in $log" >&2
    exit 1
  fi
  grep -E "DagRun Finished|state=" "$log" | tail -1 || true
}

run_dag orders_upload_ingest demo-run.log
review-ingest imports --limit 4
echo "Data Docs: $REVIEW_INGEST_DATA_DIR/data_docs/index.html"

events_file=$(python scripts/drop_demo_events.py)
run_dag review_request_events demo-events-run.log
python scripts/drop_demo_events.py --report \
  "$REVIEW_INGEST_DATA_DIR/events/reports/$(basename "$events_file").json"
