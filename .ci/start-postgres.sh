#!/usr/bin/env bash
# Start a throwaway PostgreSQL for the tests (no systemd; the server runs as user postgres).
# Prints the SQLAlchemy URL of an empty database `insiders_test` on the last line.
set -euo pipefail
PORT=${PGPORT_TEST:-54329}
ROOT=${PG_TEST_ROOT:-/tmp/insiders-pg}
PGDATA=$ROOT/data
SOCK=$ROOT/sock
if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  apt-get install -y postgresql >/dev/null
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
if ! runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  rm -rf "$ROOT"
  mkdir -p "$PGDATA" "$SOCK"
  chown -R postgres:postgres "$ROOT"
  runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 \
    --locale=C.UTF-8 >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 30 \
    -o "-p $PORT -k $SOCK -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
fi
psql -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='insiders_test'" \
  | grep -q 1 || psql -h 127.0.0.1 -p "$PORT" -U postgres -qc "CREATE DATABASE insiders_test"
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/insiders_test"
