#!/usr/bin/env bash
# A throwaway PostgreSQL on loopback for the tests and benchmarks (CI and developers).
#
#   eval "$(scripts/postgres.sh start)"    # installs PostgreSQL if missing (Debian), starts a cluster in a
#                                          # temp dir, prints `export PERSONAS_TEST_DATABASE_URL=...`
#   scripts/postgres.sh stop               # stops it and removes its folder
#
# The cluster belongs to an unprivileged user (`postgres`, or the caller when not root), listens on
# 127.0.0.1 only, on a free port, and trusts local connections: it is for tests, never for data.
set -euo pipefail

STATE="${PERSONAS_PG_STATE:-/tmp/personas-test-postgres}"

find_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

install_postgres() {
  if ! find_bin >/dev/null; then
    echo "installing PostgreSQL (apt-get) ..." >&2
    if [ "$(id -u)" != 0 ]; then
      echo "PostgreSQL is not installed and this is not root: sudo apt-get install postgresql" >&2
      exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  install_postgres
  local bin port dir
  bin="$(find_bin)"
  if [ -f "$STATE/url" ] && as_owner "$bin/pg_ctl" -D "$STATE/data" status >/dev/null 2>&1; then
    echo "export PERSONAS_TEST_DATABASE_URL=$(cat "$STATE/url")"
    return 0
  fi
  rm -rf "$STATE"
  mkdir -p "$STATE"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home "$STATE" postgres
    chown postgres "$STATE"
  fi
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  dir="$STATE/data"
  as_owner "$bin/initdb" -D "$dir" -U personas --auth=trust -E UTF8 >"$STATE/initdb.log" 2>&1
  as_owner "$bin/pg_ctl" -D "$dir" -l "$STATE/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $STATE -c max_connections=200 -c fsync=off" start >/dev/null
  as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U personas personas_test
  echo "postgresql://personas@127.0.0.1:$port/personas_test" >"$STATE/url"
  echo "export PERSONAS_TEST_DATABASE_URL=postgresql://personas@127.0.0.1:$port/personas_test"
}

stop() {
  local bin
  bin="$(find_bin 2>/dev/null || true)"
  if [ -n "$bin" ] && [ -d "$STATE/data" ]; then
    as_owner "$bin/pg_ctl" -D "$STATE/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$STATE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
