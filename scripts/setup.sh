#!/usr/bin/env bash
# Installs what the build needs on a new Debian machine. Safe to run twice: every step checks
# first and does nothing when its part is already there.
#   scripts/setup.sh
set -euo pipefail

need_pkgs=()
for pkg in librocksdb-dev libclang-dev clang g++ pkg-config python3-venv; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$pkg")
done

if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${need_pkgs[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
else
  echo "setup: system packages present"
fi

# The toolchain's components used by the gate.
if command -v rustup >/dev/null 2>&1; then
  for comp in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$comp" || rustup component add "$comp"
  done
fi

# The RocksDB library the build links (see .cargo/config.toml).
if [ ! -e /usr/lib/x86_64-linux-gnu/librocksdb.so ] && ! ls /usr/lib/*/librocksdb.so >/dev/null 2>&1; then
  echo "setup: librocksdb.so not found after install" >&2
  exit 1
fi
echo "setup: done"
