# The hospital-ops image: the official Airflow image plus this project (docker-compose.yml runs every
# Airflow component, metabase-init and dbt-docs from it).
#
#   docker compose build                     # or: docker build -t hospital-ops-airflow:local .
#   HOSPITAL_OPS_CODE_VERSION=$(git rev-parse HEAD) docker compose build
#
# Layout inside the image (the package resolves its project root from its own location, so it is
# installed in editable mode from /opt/hospital-ops rather than copied into site-packages):
#   /opt/hospital-ops/{include,dags,dbt_project,expectations}   the project, read-only at run time
#   /opt/hospital-ops/var      runtime state: dbt target (manifest.json), Data Docs  (volume)
#   /opt/hospital-ops/inbox    source drop folders                                   (bind mount)
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

ARG HOSPITAL_OPS_CODE_VERSION=unknown
ENV HOSPITAL_OPS_HOME=/opt/hospital-ops \
    HOSPITAL_OPS_VAR_DIR=/opt/hospital-ops/var \
    HOSPITAL_OPS_INBOX=/opt/hospital-ops/inbox \
    HOSPITAL_OPS_CODE_VERSION=${HOSPITAL_OPS_CODE_VERSION} \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/hospital-ops/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false

USER root
# group 0 owns and may write, so the image also runs under another uid (AIRFLOW_UID), as Airflow's
# own image does
RUN mkdir -p /opt/hospital-ops/var /opt/hospital-ops/inbox \
 && chown -R airflow:0 /opt/hospital-ops \
 && chmod -R g+rwX /opt/hospital-ops
USER airflow

# Python dependencies: the project's pinned set (resolved together on Python 3.11; it pins
# apache-airflow==3.3.2, the version of the base image). The Airflow constraints file is not used: the
# project's pins (pandas 3, dbt, Great Expectations) differ from it. Instead, as Airflow's docs advise
# when extending the image, apache-airflow is pinned to the image's own version in the same command so
# pip can never up- or downgrade it, and so are the providers this stack relies on from the image
# (celery for the CeleryExecutor, fab for the admin user and UI login); a conflict fails the build.
COPY --chown=airflow:0 requirements.txt /opt/hospital-ops/requirements.txt
RUN pip freeze | { grep -iE '^apache-airflow-providers-(celery|fab)==' || true; } > /tmp/image-providers.txt \
 && cat /tmp/image-providers.txt \
 && { [ "$(wc -l < /tmp/image-providers.txt)" -eq 2 ] \
      || { echo "the base image lacks the celery or fab provider that docker-compose.yml uses" >&2; exit 1; }; } \
 && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
        -r /opt/hospital-ops/requirements.txt -r /tmp/image-providers.txt \
 && rm /tmp/image-providers.txt \
 && python -c "import airflow, dbt.version, great_expectations, psycopg2; print('airflow', airflow.__version__)"

# The package (its dependencies are all in requirements.txt). The product only: the simulators
# (include/hospital_ops_sim/, the demo's and the benchmark's sources) are not copied into the image.
COPY --chown=airflow:0 pyproject.toml README.md /opt/hospital-ops/
COPY --chown=airflow:0 include/hospital_ops/ /opt/hospital-ops/include/hospital_ops/
RUN pip install --no-cache-dir --no-deps -e /opt/hospital-ops \
 && python -c "from hospital_ops.config import settings; s = settings(); print('project root', s.project_root); assert str(s.project_root) == '/opt/hospital-ops'" \
 && ! python -c "import hospital_ops_sim" 2>/dev/null

COPY --chown=airflow:0 dags/ /opt/hospital-ops/dags/
COPY --chown=airflow:0 dbt_project/ /opt/hospital-ops/dbt_project/
COPY --chown=airflow:0 expectations/ /opt/hospital-ops/expectations/
