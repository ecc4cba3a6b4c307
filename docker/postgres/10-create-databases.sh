#!/bin/sh
# Create the roles and databases of the stack on the first start of an empty data volume
# (run by the postgres image's entrypoint from /docker-entrypoint-initdb.d as the superuser).
#
#   airflow          owns database airflow (Airflow's metadata)
#   insiders_app     owns database insiders (the SQL store the DAG writes)
#   insiders_reader  read-only on insiders (Metabase's connection)
#   metabase         owns database metabase (Metabase's application database)
#
# Passwords come from the environment only; they reach psql through \getenv, never through
# the command line, so they do not show in the process list.
set -eu

: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is not set}"
: "${INSIDERS_DB_PASSWORD:?INSIDERS_DB_PASSWORD is not set}"
: "${INSIDERS_READER_PASSWORD:?INSIDERS_READER_PASSWORD is not set}"
: "${METABASE_DB_PASSWORD:?METABASE_DB_PASSWORD is not set}"

here=$(dirname "$0")
# The entrypoint sources *.sh files that are not executable; $0 is then the entrypoint itself.
[ -f "$here/sql/insiders_privileges.sql" ] || here=/docker-entrypoint-initdb.d

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres <<'SQL'
\getenv airflow_pw AIRFLOW_DB_PASSWORD
\getenv app_pw INSIDERS_DB_PASSWORD
\getenv reader_pw INSIDERS_READER_PASSWORD
\getenv metabase_pw METABASE_DB_PASSWORD
SET password_encryption = 'scram-sha-256';
CREATE ROLE airflow LOGIN PASSWORD :'airflow_pw';
CREATE ROLE insiders_app LOGIN PASSWORD :'app_pw';
CREATE ROLE insiders_reader LOGIN PASSWORD :'reader_pw' CONNECTION LIMIT 20;
CREATE ROLE metabase LOGIN PASSWORD :'metabase_pw';
CREATE DATABASE airflow OWNER airflow;
CREATE DATABASE insiders OWNER insiders_app;
CREATE DATABASE metabase OWNER metabase;
-- Each role reaches its own database only.
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE metabase FROM PUBLIC;
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE airflow TO airflow;
GRANT CONNECT, TEMPORARY ON DATABASE metabase TO metabase;
SQL

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname insiders \
  -f "$here/sql/insiders_privileges.sql"

echo "insiders: created roles airflow, insiders_app, insiders_reader, metabase and their databases"
