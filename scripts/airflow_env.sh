# Sourced by the scripts: a project-local Airflow (SQLite metadata database in .airflow/).
# Paths are absolute so that Airflow finds the DAGs and plugins from any working directory.
# AIRFLOW_HOME and REVIEW_INGEST_DATA_DIR, when already set, are kept: the tests run the scripts on
# folders of their own.
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export AIRFLOW_HOME=${AIRFLOW_HOME:-$REPO_ROOT/.airflow}
export AIRFLOW__CORE__DAGS_FOLDER=$REPO_ROOT/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$REPO_ROOT/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# One machine: tasks run as processes of the local scheduler (Airflow 3 runs the LocalExecutor on
# SQLite). Written out, so that an executor set in the shell never reaches scripts/ui.sh.
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__UNIT_TEST_MODE=${AIRFLOW__CORE__UNIT_TEST_MODE:-False}
export AIRFLOW__LOGGING__LOGGING_LEVEL=${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}
# The review UI's e-mail filter (?email=...) is redacted from the API server's access log.
export AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES=${AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES:-email}
# Airflow's SMTP connection for the e-mails (README, "Notifications"): a server on loopback port
# 8025 (`.venv/bin/python -m aiosmtpd -n -l 127.0.0.1:8025 -c aiosmtpd.handlers.Debugging` prints
# what it receives); without one, the messages wait in the warehouse's outbox.
SMTP_ON_LOOPBACK='{"conn_type": "smtp", "host": "127.0.0.1", "port": 8025, "extra":
  {"disable_ssl": true, "disable_tls": true, "from_email": "review-ingest@localhost"}}'
export AIRFLOW_CONN_SMTP_DEFAULT=${AIRFLOW_CONN_SMTP_DEFAULT:-$SMTP_ON_LOOPBACK}
export REVIEW_INGEST_DATA_DIR=${REVIEW_INGEST_DATA_DIR:-$REPO_ROOT/data}
export REVIEW_INGEST_MERCHANTS=${REVIEW_INGEST_MERCHANTS:-$REPO_ROOT/include/merchants.yaml}
export PATH=$REPO_ROOT/.venv/bin:$PATH
