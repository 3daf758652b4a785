"""The test kit: what the tests, the benchmarks and scripts/distributed_run.py share.

``processes`` (free ports, process groups tied to their parent, polling), ``postgres`` and
``pg_cluster`` (throw-away databases and clusters), ``sshd`` (a real OpenSSH SFTP server),
``smtp`` (a real SMTP server on loopback, and what it received),
``api_server`` (the review UI on a real Airflow API server), ``airflow_stack`` and ``stack_run``
(the whole Celery deployment on this machine, and a run on it), ``pipeline_child`` (the pipeline
in a child process a test can kill), ``factories`` and ``warehouse`` (the data they use),
``airflow_env`` and ``paths``; ``import_graph`` reads the package's layers. Nothing here is a
pytest fixture: tests/fixtures/ wraps the kit.
"""
