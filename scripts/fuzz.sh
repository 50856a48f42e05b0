#!/usr/bin/env bash
# Runs fuzz targets (fuzz/fuzz_targets) under libFuzzer for a bounded time each, on the stable
# toolchain: the build instruments with the same coverage passes cargo-fuzz uses (no sanitizer),
# so neither nightly nor cargo-fuzz is needed. A crash fails the run and leaves the input in
# fuzz/artifacts/TARGET/; the corpus grows in fuzz/corpus/TARGET/ (both ignored by git).
#   scripts/fuzz.sh [SECONDS] [TARGET...]    default: 45 s of restore_plan (the gate's run)
#   scripts/fuzz.sh 600 restore_plan tree_entries manifest indexes
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-45}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(restore_plan)
triple=$(rustc -vV | sed -n 's/^host: //p')
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
# Instrument only the target's code, not build scripts: hence the explicit --target.
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
  cargo build -q --release --target "$triple" "${bins[@]}"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== fuzz $t for ${seconds} s"
  log="artifacts/$t/last-run.log"
  status=0
  "target/$triple/release/$t" "corpus/$t" -max_total_time="$seconds" -seed=1 \
    -artifact_prefix="artifacts/$t/" -print_final_stats=1 > "$log" 2>&1 || status=$?
  grep -E "^(Done|stat::number_of_executed_units|stat::new_units_added)" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "fuzz: $t failed (exit $status); the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
echo "fuzz: ok"
