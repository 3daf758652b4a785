# The image every Airflow service of docker-compose.yaml runs: the official Airflow image, at the
# apache-airflow version pinned in requirements.txt, with the project's frozen requirements and
# the review_ingest package (and its `review-ingest` command) installed.
#
# Python 3.11: requirements.txt is a freeze made on Python 3.11, and the image's default Python
# for this Airflow version is newer; the -python3.11 variant keeps the freeze valid as it is.
FROM apache/airflow:3.3.2-python3.11

# Folders that docker-compose.yaml mounts named volumes on: a new volume copies the ownership and
# mode of the image's folder, so the Airflow user (any AIRFLOW_UID, always group 0) can write.
USER root
RUN mkdir -p /opt/airflow/data /opt/airflow/auth \
    && chown airflow:0 /opt/airflow/data /opt/airflow/auth \
    && chmod 2775 /opt/airflow/data \
    && chmod 2770 /opt/airflow/auth
USER airflow

# Dependencies first (their layer is reused while only the code changes). Naming
# apache-airflow==$AIRFLOW_VERSION (set by the base image) makes pip fail instead of silently
# changing the image's Airflow if requirements.txt ever pins another version.
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/airflow/requirements.txt

# The project, installed editable from /opt/airflow: the package's paths relative to the
# repository root (include/, data/) then resolve to /opt/airflow/include and /opt/airflow/data,
# and the ./plugins folder docker-compose.yaml mounts over /opt/airflow/plugins is the code that
# runs. dags/ and include/ are baked in too, so the image also works without those mounts (for
# instance a Celery worker on another machine).
COPY --chown=airflow:0 pyproject.toml /opt/airflow/pyproject.toml
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
RUN pip install --no-cache-dir --no-deps --editable /opt/airflow
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 include/ /opt/airflow/include/
