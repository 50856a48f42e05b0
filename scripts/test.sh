#!/usr/bin/env bash
# The gate: installs what the build needs, then format check, clippy with -D warnings, every
# test, rustdoc without warnings, the API property test against a running node
# (scripts/api-check.sh) and a bounded fuzz run (scripts/fuzz.sh). The same script runs locally and in CI (.ci/run).
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Two cores: bounded parallelism for builds and tests.
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace -- --test-threads=2
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
echo "== the API against its description (schemathesis, a generated client)"
scripts/api-check.sh 10
echo "== fuzz: the archive decoder and restore planner, bounded"
scripts/fuzz.sh 45 restore_plan
echo "gate passed"
