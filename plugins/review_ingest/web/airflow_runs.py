"""The DAG runs the review UI starts ("Import data": ``orders_upload_import``), through
Airflow's own code, from inside the API server.

Airflow is imported inside the functions: the package stays importable without it.
"""

from __future__ import annotations

from typing import Any


class RunNotStarted(RuntimeError):
    """Airflow cannot start the run now (the message says why and what to do)."""


def trigger(dag_id: str, run_id: str, conf: dict[str, Any], user: str) -> None:
    """A run of ``dag_id`` named ``run_id``, queued for the scheduler as Airflow's own
    ``POST /api/v2/dags/{dag_id}/dagRuns`` queues it (``trigger_dag``, the user named as who
    triggered it): it shows in the grid at once. RunNotStarted when Airflow does not know the
    DAG yet, or it is paused (a paused DAG's runs wait in the queue). A run of that id already
    there is this one, made by an earlier try."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound, DagRunAlreadyExists
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType

    with create_session() as session:
        model = DagModel.get_current(dag_id, session=session)
        paused = model.is_paused if model is not None else None
    if paused is None:
        raise RunNotStarted(
            f"Airflow does not know the DAG {dag_id} yet (its DAG processor has not read it): "
            "try again in a minute"
        )
    if paused:
        raise RunNotStarted(
            f"the DAG {dag_id} is paused in Airflow, so its runs would wait: unpause it, then "
            "import again"
        )
    try:
        trigger_dag(
            dag_id,
            triggered_by=DagRunTriggeredByType.UI,
            triggering_user_name=user,
            run_id=run_id,
            conf=conf,
        )
    except DagNotFound as exc:
        raise RunNotStarted(f"Airflow cannot start {dag_id}: {exc}") from exc
    except DagRunAlreadyExists:
        return


def run_state(dag_id: str, run_id: str) -> str | None:
    """The state of a DAG run (``queued``, ``running``, ``success``, ``failed``); None when
    there is no such run."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        state = session.scalar(
            select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
        )
    return str(state) if state is not None else None
