"""What each DAG task does, one module per DAG, and what the DAG files read when parsed
(``dag_defaults``, ``assets``). The DAG files call one function of here per task."""
