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

# the spark extra: CI runs the engine tests on Spark's local mode too (Java 17 on PATH)
if ! $BIN/python -c "import pyspark" >/dev/null 2>&1; then
  $BIN/pip install -q --disable-pip-version-check -r requirements-spark.txt
fi

$BIN/ruff check .
$BIN/pytest -q "$@"
