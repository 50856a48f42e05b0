#!/usr/bin/env bash
# The Python tools the API checks use, pinned, in a virtual environment under target/py (from
# PyPI): schemathesis (property tests of the API against its description) and
# openapi-python-client (a client generated from it). Safe to run twice.
#   scripts/py-env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/py
want="schemathesis==4.32.5 openapi-python-client==0.29.1"
if [ -x "$venv/bin/st" ] && [ -x "$venv/bin/openapi-python-client" ] \
  && "$venv/bin/pip" freeze 2>/dev/null | grep -q '^schemathesis==4.32.5$'; then
  exit 0
fi
echo "py-env: installing $want into $venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check $want
