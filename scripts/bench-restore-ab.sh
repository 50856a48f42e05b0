#!/usr/bin/env bash
# What a full restore costs in this checkout against an older revision, in one run, on the same
# data: each version runs as a 1-node cluster of its own daemon, backs up the reference data set
# once, then restores it ROUNDS times with cold caches (the versions taking turns), beside this
# machine's floor measured in the same run (`cp -a` of the tree, cold).
#   scripts/bench-restore-ab.sh [OLD_REV] [SCALE] [ROUNDS]
# OLD_REV defaults to 4c76715, the last revision before reader sessions (chunks served only
# through a reader opened on a snapshot the caller may read). Needs root (drops the page cache).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
old=${1:-4c76715}
scale=${2:-0.5}
rounds=${3:-3}
scripts/setup.sh
cargo build --release -q -p ironcore-node -p ironcore-cli
base=${IRONCORE_BENCH_DIR:-/var/tmp/ironcore-bench}
wt="$base/rev-$old"
if [ ! -x "$wt/target/release/ironcore-node" ]; then
  [ -d "$wt" ] || git worktree add --detach "$wt" "$old"
  echo "== building $old (release) in $wt"
  (cd "$wt" && CARGO_TARGET_DIR="$wt/target" cargo build --release -q -p ironcore-node -p ironcore-cli)
fi
dataset="$base/dataset-$scale"
workloads="$(cd .. && pwd)/shared/workloads"
if [ ! -f "$dataset/.complete" ]; then
  "$workloads/gen-dataset" "$dataset" "$scale"
  touch "$dataset/.complete"
fi
work="$base/restore-ab"
for v in old new; do [ -f "$work/$v/node.pid" ] && kill "$(cat "$work/$v/node.pid")" 2>/dev/null || true; done
rm -rf "$work"
mkdir -p "$work"
trap 'for v in old new; do kill "$(cat "$work/$v/node.pid" 2>/dev/null)" 2>/dev/null || true; done' EXIT

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
secs() {
  drop
  local s e
  s=$(date +%s.%N)
  "$@" > "$work/last.out" 2>&1 || { cat "$work/last.out" >&2; return 1; }
  e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }'
}

data="$work/data"
t_cp=$(secs cp -a "$dataset" "$data")
rm -f "$data/.complete"
echo "data set: $(find "$data" -type f | wc -l) files, $(($(du -sb "$data" | cut -f1) / 1048576)) MiB; cp -a (cold): ${t_cp} s"

# start VERSION NODE_BIN PORT: a 1-node cluster of that daemon with datastore `bench`.
start() {
  local v=$1 node=$2 port=$3 dir="$work/$1"
  mkdir -p -m 700 "$dir/node"
  cat > "$dir/node.toml" <<TOML
name = "ab-$v"
site = "primary"
data-dir = "$dir/node"
listen = "127.0.0.1:$port"
api-listen = "127.0.0.1:$((port + 1))"
datastore-prefix = "$dir/node/storage"
TOML
  "$node" --config "$dir/node.toml" init > /dev/null
  nohup "$node" --config "$dir/node.toml" run > "$dir/node.out" 2>&1 &
  echo $! > "$dir/node.pid"
  for _ in $(seq 150); do [ -s "$dir/node/admin.token" ] && break; sleep 0.2; done
}
# as VERSION CLI ARGS...: the CLI of that version against its node.
as() {
  local v=$1 cli=$2; shift 2
  IRONCORE_URL=127.0.0.1:$(($([ "$v" = old ] && echo 8401 || echo 8501) + 1)) \
  IRONCORE_FINGERPRINT=$(cat "$work/$v/fp") IRONCORE_TOKEN=$(cat "$work/$v/node/admin.token") "$cli" "$@"
}

declare -A NODE CLI PORT
NODE[old]="$wt/target/release/ironcore-node"; CLI[old]="$wt/target/release/ironcore-backup"; PORT[old]=8401
NODE[new]="$ROOT/target/release/ironcore-node"; CLI[new]="$ROOT/target/release/ironcore-backup"; PORT[new]=8501
for v in old new; do
  start "$v" "${NODE[$v]}" "${PORT[$v]}"
  "${NODE[$v]}" --config "$work/$v/node.toml" fingerprint > "$work/$v/fp"
  for _ in $(seq 150); do as "$v" "${CLI[$v]}" status > /dev/null 2>&1 && break; sleep 0.2; done
  as "$v" "${CLI[$v]}" datastore create bench --path /srv/bench --copies 1 > /dev/null
  as "$v" "${CLI[$v]}" backup "$data" --store bench --group host/bench > /dev/null
done

declare -A T
for r in $(seq "$rounds"); do
  # The versions take turns, and which goes first alternates from round to round.
  order="old new"; [ $((r % 2)) -eq 0 ] && order="new old"
  for v in $order; do
    rm -rf "$work/restore-$v"
    t=$(secs as "$v" "${CLI[$v]}" restore host/bench "$work/restore-$v" --store bench)
    T[$v]="${T[$v]:-} $t"
    echo "round $r $v: $t s"
  done
done
"${CLI[new]}" compare "$data" "$work/restore-new" > /dev/null
median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
m_old=$(echo "${T[old]}" | median)
m_new=$(echo "${T[new]}" | median)
echo
printf "%-32s %8s %8s %10s\n" "full restore, median of $rounds (s)" "$old" "this" "this/old"
printf "%-32s %8s %8s %10s\n" "" "$m_old" "$m_new" "$(awk -v a="$m_new" -v b="$m_old" 'BEGIN { printf "%.3f", a / b }')"
printf "%-32s %8s\n" "floor: cp -a of the tree, cold (s)" "$t_cp"
