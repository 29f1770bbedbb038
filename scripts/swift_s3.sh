#!/usr/bin/env bash
# A throwaway single-node OpenStack Swift with its s3api middleware: a real S3-compatible
# server on 127.0.0.1 for the artifact tests (Debian packages; see install-system-deps.sh).
# Usage: swift_s3.sh start|stop   (state in $SWIFT_ROOT; start prints the S3 endpoint URL)
# Credentials: access key test:tester, secret testing, region us-east-1, path-style, SigV4.
# Ports: $S3_PORT (default: a free one), memcached and the three storage servers likewise.
set -euo pipefail
if ! command -v swift-proxy-server >/dev/null 2>&1 || ! command -v memcached >/dev/null 2>&1; then
  echo "OpenStack Swift / memcached not found; run scripts/install-system-deps.sh" >&2
  exit 3
fi
R=${SWIFT_ROOT:-/tmp/mltrack-swift}
E=$R/etc
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
case "${1:-start}" in
start)
  S3_PORT=${S3_PORT:-$(free_port)}; MC_PORT=${MC_PORT:-$(free_port)}
  OBJ_PORT=${OBJ_PORT:-$(free_port)}; CONT_PORT=${CONT_PORT:-$(free_port)}
  ACC_PORT=${ACC_PORT:-$(free_port)}
  rm -rf "$R"; mkdir -p "$E" "$R/node/d1" "$R/run" "$R/log"
  cat > "$E/swift.conf" <<CONF
[swift-hash]
swift_hash_path_suffix = mltrack-test
swift_hash_path_prefix = mltrack-test
[storage-policy:0]
name = Policy-0
default = yes
CONF
  common="[DEFAULT]
devices = $R/node
mount_check = false
swift_dir = $E
user = $(id -un)
bind_ip = 127.0.0.1
log_level = WARNING
log_address = /nonexistent
workers = 1"
  for spec in account:$ACC_PORT container:$CONT_PORT object:$OBJ_PORT; do
    kind=${spec%%:*}; port=${spec##*:}
    printf '%s\nbind_port = %s\n[pipeline:main]\npipeline = %s-server\n[app:%s-server]\nuse = egg:swift#%s\n' \
      "$common" "$port" "$kind" "$kind" "$kind" > "$E/$kind-server.conf"
  done
  cat > "$E/proxy-server.conf" <<CONF
$common
bind_port = $S3_PORT
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
allow_account_management = true
account_autocreate = true
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MC_PORT
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
CONF
  cd "$E"
  for spec in object:$OBJ_PORT container:$CONT_PORT account:$ACC_PORT; do
    kind=${spec%%:*}; port=${spec##*:}
    swift-ring-builder "$kind.builder" create 6 1 1 >/dev/null
    swift-ring-builder "$kind.builder" add "r1z1-127.0.0.1:$port/d1" 100 >/dev/null
    swift-ring-builder "$kind.builder" rebalance >/dev/null || true
  done
  memcached_user=(); [ "$(id -u)" = 0 ] && memcached_user=(-u nobody)
  nohup memcached "${memcached_user[@]}" -l 127.0.0.1 -p "$MC_PORT" > "$R/log/memcached.log" 2>&1 &
  echo $! > "$R/run/memcached.pid"
  for s in account container object proxy; do
    nohup "$(command -v swift-$s-server)" "$E/$s-server.conf" > "$R/log/$s.log" 2>&1 &
    echo $! > "$R/run/$s.pid"
  done
  for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$S3_PORT/healthcheck" >/dev/null 2>&1 && break
    sleep 0.2
  done
  if ! curl -sf "http://127.0.0.1:$S3_PORT/healthcheck" >/dev/null 2>&1; then
    echo "Swift did not come up; logs in $R/log" >&2
    exit 1
  fi
  echo "http://127.0.0.1:$S3_PORT"
  ;;
stop)
  for s in proxy object container account memcached; do
    if [ -f "$R/run/$s.pid" ]; then kill "$(cat "$R/run/$s.pid")" 2>/dev/null || true; fi
  done
  sleep 1; rm -rf "$R"
  ;;
*)
  echo "usage: $0 start|stop" >&2; exit 2
  ;;
esac
