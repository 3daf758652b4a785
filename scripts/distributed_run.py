"""A real distributed run on this machine: the topology of docker-compose.yaml without Docker.

    .venv/bin/python -m scripts.distributed_run [--files 120] [--merchants 10] [--kill-worker]

Run from the repository root. An API server, a scheduler, a DAG processor and two Celery workers
from .venv, on new PostgreSQL databases and a free Redis database (``tests/kit/airflow_stack.py``);
``--files`` order files over ``--merchants`` merchants, one ``orders_upload_ingest`` run, then
the checks of ``tests/kit/stack_run.py``. The last line printed is a JSON summary. Exit 0 when
every check passes, 1 when one fails, 2 when PostgreSQL or Redis is missing. Logs and files stay
in the temporary folder (printed) when a check fails or with ``--keep``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, TypeVar

from tests.kit.airflow_stack import StackOptions
from tests.kit.stack_run import RunOptions, run

T = TypeVar("T")


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    found.add_argument("--files", type=int, default=120, help="order files to drop")
    found.add_argument("--merchants", type=int, default=10, help="merchants they spread over")
    found.add_argument(
        "--kill-worker",
        action="store_true",
        help="SIGKILL worker1 while it runs ingest_batch tasks; they must finish on worker2",
    )
    found.add_argument(
        "--copies",
        type=int,
        default=1,
        help="the sample's rows this many times in each file: with a few hundred, files are "
        "validated one by one and a batch lasts long enough to be killed half done",
    )
    found.add_argument("--batch-size", type=int, default=10, help="REVIEW_INGEST_BATCH_SIZE")
    found.add_argument("--concurrency", type=int, default=2, help="task slots per worker")
    found.add_argument("--pool-slots", type=int, default=4, help="slots of the warehouse pool")
    found.add_argument(
        "--heartbeat-timeout",
        type=int,
        help="[scheduler] task_instance_heartbeat_timeout, seconds (default: Airflow's, 300, as "
        "deployed; shorter only to try the script by hand)",
    )
    found.add_argument(
        "--kill-after-files",
        type=int,
        default=3,
        help="files a worker1 ingest_batch task has loaded when worker1 is killed",
    )
    found.add_argument(
        "--retry-delay",
        type=float,
        help="seconds between two tries of a task (REVIEW_INGEST_RETRY_DELAY_SECONDS; default: "
        "the DAGs', 300, as deployed)",
    )
    found.add_argument(
        "--timeout",
        type=float,
        default=1800,
        help="seconds the run may take (a killed worker's tasks come back after about 10 min)",
    )
    found.add_argument(
        "--without-preload",
        action="store_true",
        help="Airflow's own Celery configuration: each task imports Great Expectations itself "
        "(to measure what review_ingest_celery.CELERY_CONFIG saves)",
    )
    found.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return found


def options(argv: list[str] | None) -> RunOptions:
    """The run's options from the command line."""
    command = parser()
    args = command.parse_args(argv)
    if args.files < 1 or args.merchants < 1:
        command.error("--files and --merchants must be at least 1")
    stack = _from_args(StackOptions, args)
    return _from_args(RunOptions, args, stack=stack)


def _from_args(cls: type[T], args: argparse.Namespace, **given: Any) -> T:
    """A dataclass of options, each field from the command line's option of its name."""
    names = {f.name for f in dataclasses.fields(cls)} - given.keys()
    return cls(**{name: getattr(args, name) for name in names}, **given)


def main(argv: list[str] | None = None) -> int:
    return run(options(argv))


if __name__ == "__main__":
    sys.exit(main())
