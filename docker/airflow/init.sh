#!/usr/bin/env bash
# airflow-init (one-shot, runs as root): give the named volumes to the Airflow user, migrate
# Airflow's metadata database and create the admin user. The image's entrypoint does the last
# two when _AIRFLOW_DB_MIGRATE and _AIRFLOW_WWW_USER_CREATE are set (docker-compose.yml).
set -euo pipefail

uid=${AIRFLOW_UID:-50000}
mkdir -p /opt/airflow/logs "${INSIDERS_HOME:?}"
chown -R "${uid}:0" /opt/airflow/logs "${INSIDERS_HOME}"

exec /entrypoint airflow version
