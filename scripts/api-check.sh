#!/usr/bin/env bash
# The API against its own description, tried as a new user would, on a running node:
#  1. schemathesis (`st run --checks all`) with an admin token: no 5xx, no undocumented status
#     code or content type, no answer outside its schema, no schema-valid request rejected, no
#     route that answers without credentials unless the document marks it public;
#  2. a Python client generated from the document (openapi-python-client) lists datastores,
#     creates a user and a token, and removes them.
#   scripts/api-check.sh [MAX_EXAMPLES]     the gate runs 10 per operation; try 200 for a long run
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
examples=${1:-10}
scripts/py-env.sh
cargo build -q -p ironcore-node -p ironcore-cli
NODE=$ROOT/target/debug/ironcore-node
CLI=$ROOT/target/debug/ironcore-backup
PY=$ROOT/target/py/bin

work=$(mktemp -d /tmp/ironcore-api-check.XXXXXX)
port=$((20000 + RANDOM % 20000))
cleanup() {
  [ -f "$work/node.pid" ] && kill "$(cat "$work/node.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p -m 700 "$work/node"
cat > "$work/node.toml" <<TOML
name = "api1"
site = "primary"
data-dir = "$work/node"
listen = "127.0.0.1:$port"
api-listen = "127.0.0.1:$((port + 1))"
datastore-prefix = "$work/node/storage"
TOML
"$NODE" --config "$work/node.toml" init > /dev/null
"$NODE" --config "$work/node.toml" run > "$work/node.out" 2>&1 &
echo $! > "$work/node.pid"
for _ in $(seq 150); do [ -s "$work/node/admin.token" ] && break; sleep 0.2; done
export IRONCORE_URL=127.0.0.1:$((port + 1))
IRONCORE_FINGERPRINT=$("$NODE" --config "$work/node.toml" fingerprint)
IRONCORE_TOKEN=$(cat "$work/node/admin.token")
export IRONCORE_FINGERPRINT IRONCORE_TOKEN
for _ in $(seq 150); do "$CLI" status > /dev/null 2>&1 && break; sleep 0.2; done
"$CLI" datastore create store1 --path /srv/store1 --copies 1 > /dev/null
mkdir -p "$work/src" && echo "some content" > "$work/src/file"
"$CLI" backup "$work/src" --store store1 --group host/web01 > /dev/null
"$NODE" openapi > "$work/openapi.json"

echo "== schemathesis, $examples examples per operation, every check"
"$PY/st" run "$work/openapi.json" \
  --url "https://$IRONCORE_URL" \
  --tls-verify false \
  --header "Authorization: IBSAPIToken $IRONCORE_TOKEN" \
  --checks all \
  --max-examples "$examples" \
  --seed 1 \
  --workers 2

echo "== a client generated from the document"
"$PY/openapi-python-client" generate --path "$work/openapi.json" --output-path "$work/client" \
  --meta none --config "$ROOT/scripts/openapi-client.yml" > "$work/generate.out" 2>&1 || { cat "$work/generate.out"; exit 1; }
PYTHONPATH="$work" "$PY/python" "$ROOT/scripts/api_client_check.py" \
  "https://$IRONCORE_URL" "$IRONCORE_TOKEN"
echo "api-check: ok"
