"""The warehouse: its tables (SQLAlchemy models), migrations, engines, the one-transaction load
of a file, cancelling an import, and its URL inside Airflow."""
