"""The review UI of contract section 10: pages and API over the warehouse, inside Airflow.

Plain modules, each with one job (queries, view models, charts, CSV export, files), unit-tested
without an API server; ``app.create_app`` assembles them into the FastAPI app that the plugin
``plugins/review_ingest_ui.py`` mounts. Nothing here imports Airflow at module level.
"""
