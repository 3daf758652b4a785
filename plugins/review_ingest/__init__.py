"""Review-request ingest: merchants' order files become scheduled review requests.

Plain Python, no Airflow at module level: the DAGs in ``dags/`` and the ``review-ingest``
command both call into this package.
"""
