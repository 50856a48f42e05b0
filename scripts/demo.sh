#!/usr/bin/env bash
# The main job, for now: back up a real directory of this machine into a local datastore
# (RocksDB metadata and chunk files under /tmp/ironcore-demo), restore it elsewhere and prove it
# identical. Issue 5 replaces this with a 3-node cluster of daemons.
#   scripts/demo.sh [--source DIR] [--encrypt] [--state DIR] [--restore-to DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p ironcore-client --bin ironcore-demo
exec target/release/ironcore-demo "$@"
