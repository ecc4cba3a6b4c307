#!/usr/bin/env bash
# metabase-provision (one-shot, after Metabase is healthy): create the SQL store's tables if
# the DAG has not run yet, so Metabase finds them when it scans the database, then let the
# package set Metabase up (admin, the read-only connection, the cards and the dashboard).
set -euo pipefail

python - <<'PY'
import os

from sqlalchemy import create_engine

from insiders.publish.sql_sync import METADATA
from insiders.sources import get_source

# As insiders_app: tables it creates are readable by insiders_reader via default privileges.
engine = create_engine(os.environ["INSIDERS_SQL_URL"])
METADATA.create_all(engine)
engine.dispose()
# the source's own tables (Olist: the customer-experience tables)
get_source(os.environ.get("INSIDERS_SOURCE_KIND")).create_sql_tables(os.environ["INSIDERS_SQL_URL"])
print("metabase-provision: SQL store tables are in place")
PY

url="${INSIDERS_METABASE_URL:-http://metabase:3000}"
insiders metabase provision --url "$url"
if [ "${INSIDERS_SOURCE_KIND:-online_retail}" = olist ]; then
  # the marketplace's customer-experience dashboard (metabase/experience)
  insiders metabase provision --url "$url" --definitions "${INSIDERS_METABASE_DEFINITIONS:-/opt/airflow/project/metabase}/experience"
fi
