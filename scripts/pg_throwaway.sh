#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1:<free port> for the tests.
# Usage: pg_throwaway.sh start|stop|down|up|restart   (state in $PGROOT)
#   start    new cluster on a free port; prints the SQLAlchemy URL
#   stop     stop it and delete everything
#   down     stop it, keeping the data dir and port (an outage)
#   up       start it again after `down`, same data dir and port
#   restart  down then up
set -euo pipefail
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  echo "PostgreSQL server binaries not found; run scripts/install-system-deps.sh" >&2
  exit 3
fi
PGROOT=${PGROOT:-/tmp/mltrack-pg}
RUN_AS=()
if [ "$(id -u)" = 0 ]; then RUN_AS=(runuser -u postgres --); fi   # postgres refuses to run as root

pg_up() {  # start the cluster in $PGROOT/data on port $1
  "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $1 -k $PGROOT -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200" start >/dev/null
}

pg_down() {
  "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGROOT/data" -m fast -w stop >/dev/null
}

case "${1:-start}" in
start)
  rm -rf "$PGROOT"; mkdir -p "$PGROOT"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$PGROOT"; fi
  PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  "${RUN_AS[@]}" "$PGBIN/initdb" -D "$PGROOT/data" -U postgres --auth=trust -E UTF8 --no-locale >"$PGROOT/initdb.log"
  pg_up "$PORT"
  "$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres mltrack_test
  echo "$PORT" > "$PGROOT/port"
  echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/mltrack_test"
  ;;
stop)
  if [ -d "$PGROOT/data" ]; then
    pg_down || true
  fi
  rm -rf "$PGROOT"
  ;;
down)
  pg_down
  ;;
up)
  pg_up "$(cat "$PGROOT/port")"
  ;;
restart)
  pg_down
  pg_up "$(cat "$PGROOT/port")"
  ;;
*)
  echo "usage: $0 start|stop|down|up|restart" >&2
  exit 2
  ;;
esac
