#!/usr/bin/env bash
# Continuous mirroring between the two sites over an emulated WAN, in one run, on the
# reference data set (../shared/workloads):
#   - the link: what a plain bulk TCP transfer carries through it (the emulator's own limit on
#     this machine as well as its rate cap), and the disk's write rate (dd, fdatasync);
#   - the initial mirror of the data set (backup at the Primary with the Backup nodes paused,
#     then timed from their resumption until the snapshot is complete there), beside rsync in
#     daemon mode copying the Primary node's datastore directory through the same link, and
#     beside a `sync` pull of the datastore by a second (1-node) cluster through the same link;
#   - the same three for the reference 5 % change;
#   - the lag from backup acknowledgement to complete-at-Backup (p50, p99) under a steady
#     stream of backups (one every 2 s, 16 MiB new each), beside the time the link needs to
#     carry those new bytes.
#
#   scripts/bench-mirror.sh [SCALE]      SCALE 0.25 (default) ~ 530 MiB; 0.05 for a quick look
#   IRONCORE_BENCH_MBIT (default 200) and IRONCORE_BENCH_DELAY_MS (default 20) set the link.
# Prints figures; asserts none (not a test). Stops everything it started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/setup.sh
if ! command -v rsync >/dev/null; then
  echo "== installing rsync (Debian package)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q rsync >/dev/null
fi
cargo build --release -q -p ironcore-node -p ironcore-cli
NODE=$ROOT/target/release/ironcore-node
CLI=$ROOT/target/release/ironcore-backup

scale=${1:-0.25}
mbit=${IRONCORE_BENCH_MBIT:-200}
delay=${IRONCORE_BENCH_DELAY_MS:-20}
base=${IRONCORE_BENCH_DIR:-/var/tmp/ironcore-bench}
dataset="$base/dataset-$scale"
workloads="$(cd .. && pwd)/shared/workloads"
if [ ! -f "$dataset/.complete" ]; then
  "$workloads/gen-dataset" "$dataset" "$scale"
  touch "$dataset/.complete"
fi
work="$base/mirror"
cluster="$work/cluster"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  scripts/cluster.sh stop --base "$cluster" > /dev/null 2>&1 || true
}
trap cleanup EXIT
scripts/cluster.sh stop --base "$cluster" > /dev/null 2>&1 || true
[ -f "$work/pull.pid" ] && kill "$(cat "$work/pull.pid")" 2>/dev/null || true
rm -rf "$work"
mkdir -p "$work"
data="$work/data"
cp -a "$dataset" "$data"
rm -f "$data/.complete"
bytes=$(du -sb "$data" | cut -f1)
files=$(find "$data" -type f | wc -l)
echo "data set: $files files, $((bytes / 1048576)) MiB; link: ${delay} ms one way, ${mbit} Mbit/s"

now() { date +%s.%N; }
since() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.2f", e - s }'; }
mibs() { awk -v b="$1" -v t="$2" 'BEGIN { if (t > 0) printf "%.1f", b / 1048576 / t; else print "-" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo "== the machine: disk write rate (1 GiB, dd with fdatasync)"
disk=$(dd if=/dev/zero of="$work/dd.test" bs=1M count=1024 conv=fdatasync 2>&1 | awk '/copied/ { print $(NF-1), $NF }')
rm -f "$work/dd.test"
echo "disk: $disk"

echo "== the two-site cluster, its sites linked by the emulator (log: $work/cluster.log)"
scripts/cluster.sh --base "$cluster" --source "$ROOT/deploy" \
  --wan-delay-ms "$delay" --wan-mbit "$mbit" > "$work/cluster.log" 2>&1
# shellcheck disable=SC1091
source "$cluster/env"
admin_secret=${IRONCORE_TOKEN#*:}

echo "== a second link with the same settings for TCP: rsync daemon, sync pull, bulk transfer"
"$NODE" fault-proxy --tcp-route 127.0.0.1:8410=127.0.0.1:8411 \
  --tcp-route 127.0.0.1:8412=127.0.0.1:8201 --delay-ms "$delay" --rate-mbit "$mbit" \
  > "$work/tcp-link.out" 2>&1 &
pids+=($!)
sleep 0.5

echo "== the link's bulk rate: 256 MiB through it, one TCP stream"
python3 - "$work" <<'PY' > "$work/bulk.out"
import socket, sys, threading, time
N = 256 << 20
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 8411)); srv.listen(1)
got = [0]
def sink():
    c, _ = srv.accept()
    while True:
        b = c.recv(1 << 20)
        if not b: break
        got[0] += len(b)
t = threading.Thread(target=sink); t.start()
s = socket.create_connection(("127.0.0.1", 8410))
buf = b"\0" * (1 << 20)
start = time.time()
for _ in range(N >> 20): s.sendall(buf)
s.shutdown(socket.SHUT_WR); t.join()
print(f"{got[0] / (1 << 20) / (time.time() - start):.1f}")
PY
bulk=$(cat "$work/bulk.out")
echo "bulk: $bulk MiB/s (cap $(awk -v m="$mbit" 'BEGIN { printf "%.1f", m * 1e6 / 8 / 1048576 }') MiB/s)"

pid_of() { cat "$cluster/node$1.pid"; }
backup_bytes() { # chunk bytes held at the Backup site
  du -sb "$cluster/node3/storage/srv/store1" "$cluster/node4/storage/srv/store1" | awk '{ s += $1 } END { print s }'
}
# complete GROUP: whether every snapshot of GROUP is complete at the Backup site.
complete() {
  "$CLI" snapshot list --store store1 --output json 2>/dev/null | python3 -c '
import json, sys
g = sys.argv[1]
l = [s for s in json.load(sys.stdin) if s["group"] == g]
sys.exit(0 if l and all("backup" in s["sites"] for s in l) else 1)' "$1"
}
# mirror_once GROUP: backs up $data as GROUP with the Backup nodes paused, then times the
# mirror from their resumption until it is complete there; prints "seconds bytes".
mirror_once() {
  kill -STOP "$(pid_of 3)" "$(pid_of 4)"
  "$CLI" backup "$data" --store store1 --group "$1" > "$work/backup.out" 2>&1
  local before s
  before=$(backup_bytes)
  s=$(now)
  kill -CONT "$(pid_of 3)" "$(pid_of 4)"
  until complete "$1"; do sleep 0.1; done
  echo "$(since "$s") $(( $(backup_bytes) - before ))"
}

echo "== a second cluster (1 node) that pulls store1 with a sync job, through the TCP link"
pull="$work/pull"
mkdir -p -m 700 "$pull/node"
cat > "$pull/node.toml" <<TOML
name = "pull1"
site = "elsewhere"
data-dir = "$pull/node"
listen = "127.0.0.1:8421"
api-listen = "127.0.0.1:8422"
datastore-prefix = "$pull/node/storage"
TOML
"$NODE" --config "$pull/node.toml" init > /dev/null
"$NODE" --config "$pull/node.toml" run > "$pull/node.out" 2>&1 &
pids+=($!)
echo $! > "$work/pull.pid"
for _ in $(seq 150); do [ -s "$pull/node/admin.token" ] && break; sleep 0.2; done
pcli() {
  IRONCORE_URL=127.0.0.1:8422 IRONCORE_FINGERPRINT=$("$NODE" --config "$pull/node.toml" fingerprint) \
    IRONCORE_TOKEN=$(cat "$pull/node/admin.token") "$CLI" "$@"
}
for _ in $(seq 150); do pcli status > /dev/null 2>&1 && break; sleep 0.2; done
pcli datastore create copy --path /srv/copy --copies 1 > /dev/null
IRONCORE_REMOTE_SECRET=$admin_secret pcli remote add primary --host 127.0.0.1 --port 8412 \
  --auth-id "${IRONCORE_TOKEN%%:*}" --remote-fingerprint "$IRONCORE_FINGERPRINT" > /dev/null
pcli sync create --name pull --source copy --remote primary --remote-repository store1 \
  --schedule weekly > /dev/null
sync_once() { local s; s=$(now); pcli sync run --name pull > "$work/sync.out" 2>&1; since "$s"; }

echo "== rsync daemon (the Backup side) behind the TCP link"
mkdir -p "$work/rsync-dst"
cat > "$work/rsyncd.conf" <<CONF
pid file = $work/rsyncd.pid
use chroot = no
uid = $(id -u)
gid = $(id -g)
[store]
path = $work/rsync-dst
read only = no
CONF
rsync --daemon --no-detach --address 127.0.0.1 --port 8411 --config "$work/rsyncd.conf" &
pids+=($!)
sleep 0.5
rsync_once() {
  local s; s=$(now)
  rsync -a "$cluster/node1/storage/srv/store1/" rsync://127.0.0.1:8410/store/ >&2 \
    || { echo "rsync failed" >&2; exit 1; }
  since "$s"
}

echo "== initial: mirror, rsync, sync pull"
read -r m_init m_init_bytes < <(mirror_once host/bench)
r_init=$(rsync_once)
s_init=$(sync_once)
echo "mirror ${m_init}s ($((m_init_bytes / 1048576)) MiB), rsync ${r_init}s, sync pull ${s_init}s"

echo "== the reference 5% change, then: mirror, rsync, sync pull"
"$workloads/mutate" "$data" > /dev/null
read -r m_incr m_incr_bytes < <(mirror_once host/bench)
r_incr=$(rsync_once)
s_incr=$(sync_once)
echo "mirror ${m_incr}s ($((m_incr_bytes / 1048576)) MiB), rsync ${r_incr}s, sync pull ${s_incr}s"

echo "== lag under a steady stream: a backup every 2 s, 16 MiB new each"
stream="$work/stream"
lags="$work/lags"
: > "$lags"
for i in $(seq 12); do
  rm -rf "$stream"; mkdir -p "$stream"
  head -c $((16 << 20)) /dev/urandom > "$stream/f"
  s=$(now)
  "$CLI" backup "$stream" --store store1 --group host/stream --output json > "$work/stream.json" 2>/dev/null
  acked=$(now)
  snap=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"])' "$work/stream.json" 2>/dev/null || echo "")
  # Watch this snapshot become complete in the background while the next backup starts.
  (
    until "$CLI" snapshot list --store store1 --output json 2>/dev/null | python3 -c '
import json, sys
t = sys.argv[1]
sys.exit(0 if any(s["snapshot"] == t and "backup" in s["sites"] for s in json.load(sys.stdin)) else 1)' "$snap"; do
      sleep 0.05
    done
    echo "$(since "$acked")" >> "$lags"
  ) &
  took=$(since "$s")
  sleep "$(awk -v t="$took" 'BEGIN { d = 2 - t; print (d > 0 ? d : 0) }')"
done
wait_lags() { for _ in $(seq 600); do [ "$(wc -l < "$lags")" -ge 12 ] && return; sleep 0.1; done; }
wait_lags
read -r p50 p99 < <(sort -n "$lags" | awk '{ v[NR] = $1 } END { i = int((NR + 1) / 2); j = int(NR * 0.99 + 0.999); if (j < 1) j = 1; print v[i], v[j] }')
carry=$(awk -v b="$bulk" 'BEGIN { if (b > 0) printf "%.2f", 16 / b; else print "-" }')

init_rate=$(mibs "$m_init_bytes" "$m_init")
echo
echo "machine: disk write $disk; link ${delay} ms one way, cap ${mbit} Mbit/s, plain bulk TCP through it $bulk MiB/s"
printf "%-26s %10s %10s %10s  %s\n" step mirror rsync "sync pull" goal
printf "%-26s %10s %10s %10s  %s\n" "initial (s)" "$m_init" "$r_init" "$s_init" \
  "mirror $init_rate MiB/s = $(ratio "$init_rate" "$bulk") of the link (>= 0.8); $(ratio "$r_init" "$m_init")x rsync (>= 1.5x)"
printf "%-26s %10s %10s %10s  %s\n" "5% change (s)" "$m_incr" "$r_incr" "$s_incr" \
  "$(ratio "$r_incr" "$m_incr")x rsync (>= 5x)"
printf "%-26s %10s %10s %10s  %s\n" "lag p50 / p99 (s)" "$p50 / $p99" "-" "-" \
  "p99 <= 2 x ${carry}s to carry 16 MiB: $(ratio "$p99" "$carry")x of it"
