#!/usr/bin/env bash
# The main job: a 3-node Ironcore Backup cluster of real daemon processes on loopback, with an
# embedded default (everything under one local directory, RocksDB embedded). It bootstraps
# node1, joins node2 and node3 with one-time tokens, creates a datastore (2 copies of every
# chunk), backs up a real directory of this machine through node1, restores it through node2,
# proves the restore identical, runs an incremental backup, and leaves the cluster running.
#
#   scripts/cluster.sh [start] [--source DIR] [--base DIR]   start (default)
#   scripts/cluster.sh stop [--base DIR]                      stop the nodes
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
cmd=start
if [[ "${1:-}" == start || "${1:-}" == stop ]]; then cmd=$1; shift; fi
SOURCE=/usr/share/doc
BASE=/tmp/ironcore-cluster
while [[ $# -gt 0 ]]; do
  case "$1" in
    --source) SOURCE=$2; shift 2 ;;
    --base) BASE=$2; shift 2 ;;
    *) echo "unknown option $1 (use --source DIR, --base DIR)" >&2; exit 2 ;;
  esac
done

stop_nodes() {
  for i in 1 2 3; do
    pidfile=$BASE/node$i.pid
    if [[ -f $pidfile ]]; then
      pid=$(cat "$pidfile")
      if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      fi
      rm -f "$pidfile"
    fi
  done
}

if [[ $cmd == stop ]]; then
  stop_nodes
  echo "cluster under $BASE stopped (data kept; remove $BASE to forget it)"
  exit 0
fi

scripts/setup.sh
echo "== building the daemon and the CLI (release)"
cargo build --release -p ironcore-node -p ironcore-cli
NODE=$ROOT/target/release/ironcore-node
CLI=$ROOT/target/release/ironcore-backup

stop_nodes
rm -rf "$BASE"
mkdir -p "$BASE"

for i in 1 2 3; do
  mkdir -p -m 700 "$BASE/node$i"
  cat > "$BASE/node$i.toml" <<TOML
name = "node$i"
site = "primary"
data-dir = "$BASE/node$i"
listen = "127.0.0.1:$((8100 + i))"
api-listen = "127.0.0.1:$((8200 + i))"
datastore-prefix = "$BASE/node$i/storage"

[raft]
heartbeat-ms = 100
election-timeout-min-ms = 800
election-timeout-max-ms = 1600
TOML
done

start_node() {
  local i=$1
  nohup "$NODE" --config "$BASE/node$i.toml" run > "$BASE/node$i.out" 2>&1 &
  echo $! > "$BASE/node$i.pid"
}

wait_for() { # what, command...
  local what=$1; shift
  for _ in $(seq 150); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "timed out waiting for $what" >&2
  tail -n 20 "$BASE"/node*.out "$BASE"/node*/log/node.log >&2 || true
  exit 1
}

echo "== node1: a new cluster"
"$NODE" --config "$BASE/node1.toml" init
start_node 1
wait_for "node1 to bootstrap" test -s "$BASE/node1/admin.token"

cat > "$BASE/env" <<ENV
export IRONCORE_URL=127.0.0.1:8201
export IRONCORE_FINGERPRINT=$("$NODE" --config "$BASE/node1.toml" fingerprint)
export IRONCORE_TOKEN=$(cat "$BASE/node1/admin.token")
ENV
# shellcheck disable=SC1091
source "$BASE/env"
wait_for "node1's API" "$CLI" status

for i in 2 3; do
  echo "== node$i: joins with a one-time token"
  token=$("$CLI" cluster join-token --output json | sed -n 's/.*"token": "\(.*\)".*/\1/p')
  "$NODE" --config "$BASE/node$i.toml" join --token "$token"
  start_node "$i"
done
voters() { [[ $("$CLI" cluster status --output json | grep -c '"voter": true') == 3 ]]; }
wait_for "three voters" voters
"$CLI" cluster status

echo "== datastore store1 (2 copies of every chunk across the 3 nodes)"
"$CLI" datastore create store1 --path /srv/store1 --copies 2 >/dev/null
"$CLI" datastore list

echo "== backup of $SOURCE through node1"
"$CLI" backup "$SOURCE" --store store1 --group "host/$(hostname)"

echo "== restore through node2"
TARGET=$BASE/restore
IRONCORE_URL=127.0.0.1:8202 IRONCORE_FINGERPRINT=$("$NODE" --config "$BASE/node2.toml" fingerprint) \
  "$CLI" restore "host/$(hostname)" "$TARGET" --store store1
"$CLI" compare "$SOURCE" "$TARGET"

echo "== incremental backup (only chunks the datastore lacks are uploaded)"
sleep 1
"$CLI" backup "$SOURCE" --store store1 --group "host/$(hostname)"
"$CLI" snapshot list --store store1

cat <<EOF

The cluster is running (node1..node3, logs in $BASE/node*/log/). Use it:
  source $BASE/env
  $CLI status --services
  $CLI cluster status
  $CLI snapshot list --store store1
  $CLI backup /etc --store store1 --group host/etc-demo
  $CLI restore host/etc-demo /tmp/etc-restore --store store1
  $CLI task list
Stop it:   scripts/cluster.sh stop
EOF
