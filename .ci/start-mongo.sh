#!/usr/bin/env bash
# Start two throwaway MongoDB-compatible servers for the tests, and get mongosh.
#
# The server is SecantusDB (PyPI `secantusdb`, a MongoDB wire-protocol server on WiredTiger that
# enforces $jsonSchema validators, unique indexes and SCRAM authentication). It is GPL and a
# pre-release: a TEST TOOL only, installed into its own virtual environment outside the
# repository, never a dependency of the package. mongosh comes from npm, also outside the repo.
#
#   port MONGO_TEST_PORT (27100):   no authentication: the store contract, a DAG month
#   port MONGO_TEST_PORT+1 (27101): --auth, with an administrator `insiders_admin`: the real
#                                   mongo-init script and the least-privilege user
#
# Prints `export NAME=value` lines for the tests (eval them):
#   INSIDERS_TEST_MONGO_URI, INSIDERS_TEST_MONGO_AUTH_URI, INSIDERS_TEST_MONGOSH
# Stop the servers with .ci/stop-mongo.sh.
set -euo pipefail
PORT=${MONGO_TEST_PORT:-27100}
AUTH_PORT=$((PORT + 1))
ROOT=${MONGO_TEST_ROOT:-/tmp/insiders-mongo}
VENV=${MONGO_TEST_VENV:-/tmp/insiders-secantus-venv}
MONGOSH_DIR=${MONGOSH_PREFIX:-/tmp/insiders-mongosh}
SERVER=$VENV/bin/secantusd-py
MONGOSH=$MONGOSH_DIR/node_modules/.bin/mongosh
ADMIN_PASSWORD=${MONGO_TEST_ADMIN_PASSWORD:-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')}

log() { echo "start-mongo: $*" >&2; }

if [ ! -x "$SERVER" ]; then
  log "installing secantusdb==0.7.0b3 into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check secantusdb==0.7.0b3 >&2
fi
if [ ! -x "$MONGOSH" ]; then
  log "installing mongosh@2.12.0 into $MONGOSH_DIR"
  npm install --silent --prefix "$MONGOSH_DIR" --ignore-scripts mongosh@2.12.0 >&2
fi

# wait_for PORT [USER PASSWORD]: until the server answers a ping (at most 60 s)
wait_for() {
  "$VENV/bin/python" - "$@" <<'EOF'
import sys, time
import pymongo
port, *cred = sys.argv[1:]
uri = f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=500"
if cred:
    uri = f"mongodb://{cred[0]}:{cred[1]}@127.0.0.1:{port}/?authSource=admin&serverSelectionTimeoutMS=500"
deadline = time.time() + 60
while True:
    try:
        pymongo.MongoClient(uri).admin.command("ping")
        break
    except pymongo.errors.PyMongoError as exc:
        if time.time() > deadline:
            sys.exit(f"server on port {port} did not answer: {exc}")
        time.sleep(0.2)
EOF
}

# start NAME PORT [--auth]: a server in the background, its pid in ROOT/NAME.pid
start() {
  local name=$1 port=$2
  shift 2
  mkdir -p "$ROOT/$name"
  # exec: the recorded pid is the server's own (run in ROOT: it reads ./secantusd.toml if any)
  (cd "$ROOT" && exec "$SERVER" --host 127.0.0.1 --port "$port" --storage-path "$ROOT/$name" \
    --standalone --log-level WARNING "$@" </dev/null >"$ROOT/$name.log" 2>&1) &
  echo $! >"$ROOT/$name.pid"
}

stop() {
  local pidfile=$ROOT/$1.pid
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  # only ever a server this script started (a stale pid may have been reused)
  grep -qa secantusd "/proc/$pid/cmdline" 2>/dev/null || { rm -f "$pidfile"; return 0; }
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

stop plain
stop auth
rm -rf "$ROOT"
mkdir -p "$ROOT"
"$VENV/bin/python" -c "import pymongo" 2>/dev/null || "$VENV/bin/pip" install -q pymongo >&2

started=$(date +%s)
start plain "$PORT"
# the --auth server: provision its administrator without auth, then restart it with --auth
start auth "$AUTH_PORT"
wait_for "$PORT"
wait_for "$AUTH_PORT"
"$VENV/bin/python" - "$AUTH_PORT" "$ADMIN_PASSWORD" <<'EOF'
import sys
import pymongo
port = sys.argv[1]
client = pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/")
# the admin password is the script's second argument, generated per run (not a literal)
client.admin.command("createUser", "insiders_admin", pwd=sys.argv[2], roles=["root"])  # pragma: allowlist secret
EOF
stop auth
start auth "$AUTH_PORT" --auth
sleep 0.5
kill -0 "$(cat "$ROOT/auth.pid")" 2>/dev/null || { tail -n 5 "$ROOT/auth.log" >&2; exit 1; }
wait_for "$AUTH_PORT" insiders_admin "$ADMIN_PASSWORD"
log "servers on 127.0.0.1:$PORT and :$AUTH_PORT (auth) ready in $(($(date +%s) - started)) s"

echo "export INSIDERS_TEST_MONGO_URI=mongodb://127.0.0.1:$PORT/"
echo "export INSIDERS_TEST_MONGO_AUTH_URI='mongodb://insiders_admin:$ADMIN_PASSWORD@127.0.0.1:$AUTH_PORT/?authSource=admin'"
echo "export INSIDERS_TEST_MONGOSH=$MONGOSH"
