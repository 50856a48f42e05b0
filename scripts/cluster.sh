#!/usr/bin/env bash
# The main job: an Ironcore Backup cluster of real daemon processes on loopback across two
# sites and a witness, with an embedded default (everything under one local directory, RocksDB
# embedded): node1 and node2 at the Primary site, node3 and node4 at the Backup site, node5 a
# witness (votes, holds no data). It bootstraps node1 (its site becomes the primary), records
# the other sites, joins the nodes with one-time tokens, creates a datastore keeping 2 copies
# at the Primary and 1 at the Backup site, backs up a real directory of this machine through
# node1, shows `mirror status` as the Backup site catches up by itself, restores through node3
# at the Backup site, proves the restore identical, runs an incremental backup, and leaves the
# cluster running.
#
# Traffic between the sites goes through a link emulator (`ironcore-node fault-proxy`, one
# route in front of each node, used by the nodes of the other sites through `[peer-addresses]`)
# with a modest one-way delay, so it behaves like two data centres.
#
#   scripts/cluster.sh [start] [--source DIR] [--base DIR] [--wan-delay-ms N] [--wan-mbit M]
#                                                             start (default; 5 ms, no cap)
#   scripts/cluster.sh stop [--base DIR]                      stop the nodes and the link
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
cmd=start
if [[ "${1:-}" == start || "${1:-}" == stop ]]; then cmd=$1; shift; fi
SOURCE=/usr/share/doc
BASE=/tmp/ironcore-cluster
WAN_DELAY_MS=5
WAN_MBIT=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --source) SOURCE=$2; shift 2 ;;
    --base) BASE=$2; shift 2 ;;
    --wan-delay-ms) WAN_DELAY_MS=$2; shift 2 ;;
    --wan-mbit) WAN_MBIT=$2; shift 2 ;;
    *) echo "unknown option $1 (use --source DIR, --base DIR, --wan-delay-ms N, --wan-mbit M)" >&2; exit 2 ;;
  esac
done

NODES="1 2 3 4 5"
site_of() { case $1 in 1|2) echo primary ;; 3|4) echo backup ;; *) echo witness ;; esac; }

stop_nodes() {
  for i in $NODES link; do
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

for i in $NODES; do
  mkdir -p -m 700 "$BASE/node$i"
  cat > "$BASE/node$i.toml" <<TOML
name = "node$i"
site = "$(site_of "$i")"
data-dir = "$BASE/node$i"
listen = "127.0.0.1:$((8100 + i))"
api-listen = "127.0.0.1:$((8200 + i))"
datastore-prefix = "$BASE/node$i/storage"

[raft]
heartbeat-ms = 100
election-timeout-min-ms = 800
election-timeout-max-ms = 1600

# The nodes of the other sites are reached through the link emulator.
[peer-addresses]
TOML
  for j in $NODES; do
    if [[ $(site_of "$j") != $(site_of "$i") ]]; then
      echo "node$j = \"127.0.0.1:$((8300 + j))\"" >> "$BASE/node$i.toml"
    fi
  done
done

echo "== the link between the sites: ${WAN_DELAY_MS} ms one way, ${WAN_MBIT} Mbit/s cap (0: none)"
routes=()
for i in $NODES; do routes+=(--route "127.0.0.1:$((8300 + i))=127.0.0.1:$((8100 + i))"); done
nohup "$NODE" fault-proxy "${routes[@]}" --delay-ms "$WAN_DELAY_MS" --rate-mbit "$WAN_MBIT" \
  > "$BASE/nodelink.out" 2>&1 &
echo $! > "$BASE/nodelink.pid"

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

echo "== node1: a new cluster (its site, primary, is the Primary site)"
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

echo "== the other sites: backup (holds copies, takes over when the Primary is lost) and witness"
"$CLI" cluster site set backup --role backup >/dev/null
"$CLI" cluster site set witness --role witness >/dev/null
for i in 2 3 4 5; do
  echo "== node$i ($(site_of "$i") site): joins with a one-time token"
  token=$("$CLI" cluster join-token --output json | sed -n 's/.*"token": "\(.*\)".*/\1/p')
  "$NODE" --config "$BASE/node$i.toml" join --token "$token"
  start_node "$i"
done
voters() { [[ $("$CLI" cluster status --output json | grep -c '"voter": true') == 5 ]]; }
wait_for "five voters" voters
"$CLI" cluster site list

echo "== datastore store1: 2 copies of every chunk at the Primary, 1 at the Backup site"
"$CLI" datastore create store1 --path /srv/store1 --copies primary=2,backup=1 >/dev/null
"$CLI" datastore list

GROUP="host/$(hostname)"
echo "== backup of $SOURCE through node1 (acknowledged once the Primary holds its copies)"
"$CLI" backup "$SOURCE" --store store1 --group "$GROUP"

# Shows mirror status until the Backup site holds every snapshot (at most 2 minutes).
caught_up() {
  for _ in $(seq 240); do
    if "$CLI" mirror status --store store1 --output json | grep -q '"pending-snapshots": 0'; then
      "$CLI" mirror status --store store1
      return 0
    fi
    sleep 0.5
  done
  echo "the Backup site did not catch up in 2 minutes" >&2
  "$CLI" mirror status --store store1 >&2
  tail -n 20 "$BASE"/node3/log/node.log "$BASE"/node4/log/node.log >&2 || true
  exit 1
}
echo "== mirror status: the Backup site pulls its copies by itself"
"$CLI" mirror status --store store1
caught_up

echo "== restore through node3, at the Backup site"
TARGET=$BASE/restore
IRONCORE_URL=127.0.0.1:8203 IRONCORE_FINGERPRINT=$("$NODE" --config "$BASE/node3.toml" fingerprint) \
  "$CLI" restore "$GROUP" "$TARGET" --store store1
"$CLI" compare "$SOURCE" "$TARGET"

echo "== incremental backup (only chunks the datastore lacks are uploaded), mirrored too"
sleep 1
"$CLI" backup "$SOURCE" --store store1 --group "$GROUP"
caught_up
"$CLI" snapshot list --store store1

echo "== where each node stands"
"$CLI" cluster status

cat <<EOF

The cluster is running (node1, node2 at the Primary site; node3, node4 at the Backup site;
node5 the witness; logs in $BASE/node*/log/). Use it:
  source $BASE/env
  $CLI status --services
  $CLI cluster status
  $CLI mirror status
  $CLI snapshot list --store store1
  $CLI backup /etc --store store1 --group host/etc-demo
  $CLI restore host/etc-demo /tmp/etc-restore --store store1
  $CLI task list
Stop it:   scripts/cluster.sh stop
EOF
