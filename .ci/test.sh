#!/usr/bin/env bash
# The test command of the README (`make test`), and what CI runs (.ci/run).
# As root it installs what the tests need from Debian (PostgreSQL, Chromium, docker-compose)
# and starts a throwaway PostgreSQL as user postgres; otherwise it uses what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || need+=(postgresql)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "installing: ${need[*]}"
    apt-get install -y "${need[@]}" >/tmp/insiders-apt.log 2>&1 \
      || { apt-get update >/dev/null 2>&1 && apt-get install -y "${need[@]}" >/tmp/insiders-apt.log 2>&1; }
  else
    echo "not root: cannot install ${need[*]}; the tests that need them will say so" >&2
  fi
fi

if [ -z "${INSIDERS_TEST_PG_URL:-}" ] && [ "$(id -u)" = 0 ]; then
  INSIDERS_TEST_PG_URL=$(bash .ci/start-postgres.sh | tail -n 1)
  export INSIDERS_TEST_PG_URL
fi
echo "PostgreSQL for tests: ${INSIDERS_TEST_PG_URL:-none}"

# A MongoDB-compatible server (SecantusDB, a test tool in its own venv) and mongosh, for the
# store contract, a DAG month on a server and the real mongo-init script (.ci/start-mongo.sh).
if [ -z "${INSIDERS_TEST_MONGO_URI:-}" ]; then
  if mongo_env=$(bash .ci/start-mongo.sh); then
    eval "$mongo_env"
    trap 'bash .ci/stop-mongo.sh' EXIT
  elif [ "${CI:-}" = true ]; then
    echo "CI: could not start the MongoDB-compatible server" >&2
    exit 1
  else
    echo "could not start the MongoDB-compatible server: the tests that need it will say so" >&2
  fi
fi
echo "MongoDB-compatible server for tests: ${INSIDERS_TEST_MONGO_URI:-none}"

# the spark extra: CI runs the engine tests on Spark's local mode too (Java 17 on PATH)
if ! $BIN/python -c "import pyspark" >/dev/null 2>&1; then
  $BIN/pip install -q --disable-pip-version-check -r requirements-spark.txt
fi
if [ "${CI:-}" = true ] && ! $BIN/python -c "import pyspark" >/dev/null 2>&1; then
  echo "CI: the spark extra (requirements-spark.txt) did not install" >&2
  exit 1
fi

$BIN/ruff check .
$BIN/pytest -q "$@"
