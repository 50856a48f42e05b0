#!/usr/bin/env bash
# This product against restic on the reference data set (../shared/workloads), in one run:
# initial backup, the reference 5% change, an unchanged re-run, and a full restore, each with
# cold caches, beside this machine's floors measured in the same run (cold read of the tree,
# cold metadata walk, `cp -a` of the tree) and both repositories' sizes.
#   scripts/bench-vs-restic.sh [SCALE]     SCALE 1 (default) ~ 2.1 GiB; 0.1 for a quick look
# Needs root (drops the page cache between steps). Ironcore runs as a 1-node cluster of the
# real daemon (copies 1), so both tools keep one copy of the data on the same disk.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/setup.sh
if ! command -v restic >/dev/null; then
  echo "== installing restic (Debian package)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q restic >/dev/null
fi
cargo build --release -q -p ironcore-node -p ironcore-cli
NODE=$ROOT/target/release/ironcore-node
CLI=$ROOT/target/release/ironcore-backup

scale=${1:-1}
base=${IRONCORE_BENCH_DIR:-/var/tmp/ironcore-bench}
dataset="$base/dataset-$scale"
workloads="$(cd .. && pwd)/shared/workloads"
if [ ! -f "$dataset/.complete" ]; then
  "$workloads/gen-dataset" "$dataset" "$scale"
  touch "$dataset/.complete"
fi
work="$base/vs-restic"
[ -f "$work/node.pid" ] && kill "$(cat "$work/node.pid")" 2>/dev/null || true
rm -rf "$work"
mkdir -p "$work"

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# secs CMD...: runs CMD with cold caches, prints its wall time in seconds.
secs() {
  drop
  local s e
  s=$(date +%s.%N)
  "$@" > "$work/last.out" 2>&1 || { cat "$work/last.out" >&2; return 1; }
  e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
size() { du -sb "$@" | awk '{ s += $1 } END { printf "%.0f", s / 1048576 }'; }

echo "== floors (cold caches)"
data="$work/data"
t_cp=$(secs cp -a "$dataset" "$data")
rm -f "$data/.complete"
t_read=$(secs sh -c "tar -cf - -C '$data' . | cat > /dev/null")
t_walk=$(secs find "$data" -printf '%s %T@ %m %u\n')
bytes=$(du -sb "$data" | cut -f1)
files=$(find "$data" -type f | wc -l)
echo "data set: $files files, $((bytes / 1048576)) MiB"

echo "== starting a 1-node Ironcore cluster"
mkdir -p -m 700 "$work/node"
cat > "$work/node.toml" <<TOML
name = "bench1"
site = "primary"
data-dir = "$work/node"
listen = "127.0.0.1:8301"
api-listen = "127.0.0.1:8302"
datastore-prefix = "$work/node/storage"
TOML
"$NODE" --config "$work/node.toml" init > /dev/null
nohup "$NODE" --config "$work/node.toml" run > "$work/node.out" 2>&1 &
echo $! > "$work/node.pid"
trap 'kill "$(cat "$work/node.pid")" 2>/dev/null || true' EXIT
for _ in $(seq 150); do [ -s "$work/node/admin.token" ] && break; sleep 0.2; done
export IRONCORE_URL=127.0.0.1:8302
IRONCORE_FINGERPRINT=$("$NODE" --config "$work/node.toml" fingerprint)
IRONCORE_TOKEN=$(cat "$work/node/admin.token")
export IRONCORE_FINGERPRINT IRONCORE_TOKEN
for _ in $(seq 150); do "$CLI" status > /dev/null 2>&1 && break; sleep 0.2; done
"$CLI" datastore create bench --path /srv/bench --copies 1 > /dev/null

export RESTIC_PASSWORD=bench RESTIC_REPOSITORY="$work/restic-repo"
restic init -q

ic_backup() { "$CLI" backup "$data" --store bench --group host/bench; }
rs_backup() { restic backup -q "$data"; }

echo "== initial backup"
r_init=$(secs rs_backup); i_init=$(secs ic_backup)
echo "== the reference 5% change"
"$workloads/mutate" "$data" > /dev/null
echo "== incremental backup"
r_incr=$(secs rs_backup); i_incr=$(secs ic_backup)
grep -E "dedup-hit-rate|new-chunks" "$work/last.out" | tr '\n' ' '; echo
echo "== unchanged re-run"
r_same=$(secs rs_backup); i_same=$(secs ic_backup)
echo "== full restore"
r_rest=$(secs restic restore -q latest --target "$work/restic-restore")
i_rest=$(secs "$CLI" restore host/bench "$work/ic-restore" --store bench)
"$CLI" compare "$data" "$work/ic-restore"
r_size=$(size "$work/restic-repo")
i_size=$(size "$work/node/storage" "$work/node/raft")

echo
echo "machine floors (same run, cold caches): cold read ${t_read}s, cold metadata walk ${t_walk}s, cp -a ${t_cp}s"
printf "%-22s %10s %10s %18s  %s\n" step restic ironcore "speed-up vs restic" goal
printf "%-22s %10s %10s %18s  %s\n" "initial backup (s)" "$r_init" "$i_init" "$(ratio "$r_init" "$i_init")x" ">= 3x"
printf "%-22s %10s %10s %18s  %s\n" "5% incremental (s)" "$r_incr" "$i_incr" "$(ratio "$r_incr" "$i_incr")x" ">= 2.5x"
printf "%-22s %10s %10s %18s  %s\n" "unchanged re-run (s)" "$r_same" "$i_same" "$(ratio "$r_same" "$i_same")x" "ironcore <= 1.3x walk: $(ratio "$i_same" "$t_walk")x"
printf "%-22s %10s %10s %18s  %s\n" "full restore (s)" "$r_rest" "$i_rest" "$(ratio "$r_rest" "$i_rest")x" "ironcore <= 1.1x cp -a: $(ratio "$i_rest" "$t_cp")x"
printf "%-22s %10s %10s %18s  %s\n" "repository (MiB)" "$r_size" "$i_size" "$(ratio "$i_size" "$r_size") of restic" "<= 1.0"
