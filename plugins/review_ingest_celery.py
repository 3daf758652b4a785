"""The Celery configuration of the workers: Airflow's own, plus ``review_ingest.tasks.preload``.

Set ``[celery] celery_config_options = review_ingest_celery.CELERY_CONFIG`` on every Airflow
component (docker-compose.yaml does, through ``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS``). Each
Celery worker then imports Great Expectations, pandas and the pipeline's modules once, when it
starts, and every task it forks finds them loaded instead of importing them itself. The
scheduler reads this configuration too, to send tasks; it imports nothing more for it.
"""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG = {
    **DEFAULT_CELERY_CONFIG,
    # Celery imports these in the worker's main process at start-up, before forking its pool.
    # The SFTP hook is Airflow's (the package imports no Airflow at module level): every
    # collect_merchants task would import it otherwise.
    "imports": (
        *DEFAULT_CELERY_CONFIG.get("imports", ()),
        "review_ingest.tasks.preload",
        "airflow.providers.sftp.hooks.sftp",
    ),
}
