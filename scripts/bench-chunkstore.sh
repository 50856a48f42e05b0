#!/usr/bin/env bash
# Chunk pipeline benchmark on the reference data set (../shared/workloads), printed beside this
# machine's own limits measured in the same run.
#   scripts/bench-chunkstore.sh [SCALE]      SCALE 1 (default) ~ 2.1 GiB; 0.1 for a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scale=${1:-1}
base=${IRONCORE_BENCH_DIR:-/var/tmp/ironcore-bench}
dataset="$base/dataset-$scale"
workloads="$(cd .. && pwd)/shared/workloads"
if [ ! -f "$dataset/.complete" ]; then
  "$workloads/gen-dataset" "$dataset" "$scale"
  touch "$dataset/.complete"
fi
# The pipeline syncs its file system before each commit; flush the generator's writes first so
# they are not counted against the backup.
sync
mkdir -p "$base/work"
cargo bench -p ironcore-client --bench pipeline -- "$dataset" "$base/work"
