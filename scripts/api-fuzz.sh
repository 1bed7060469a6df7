#!/usr/bin/env bash
# API fuzzing: schemathesis (from PyPI, pinned) generates requests from /openapi.json against a
# real `latchkey serve` with a valid admin key, and checks that no answer is a server error,
# breaks its own schema, or carries a stored secret. Bounded: a fixed number of examples per
# operation and a time budget.
set -euo pipefail
cd "$(dirname "$0")/.."

examples="${LATCHKEY_FUZZ_EXAMPLES:-25}"
budget="${LATCHKEY_FUZZ_SECONDS:-240}"
venv=target/schemathesis-venv
# Run as `python -m`: the venv's own scripts name the folder it was made in, so a target
# folder copied from another checkout would leave them pointing elsewhere.
if ! "$venv/bin/python" -c 'import schemathesis' 2>/dev/null; then
  python3 -m venv --clear "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "schemathesis==4.32.5"
fi
cargo build -q -p latchkey-cli

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
LATCHKEY_DATA_DIR="$work/data" LATCHKEY_LISTEN="127.0.0.1:$port" LATCHKEY_LOG=warn \
  target/debug/latchkey serve > "$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -sf "$url/healthz" > /dev/null && break
  sleep 0.1
done
key=$(cat "$work/data/admin.key")
secret="st-secret-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
call() { curl -sf -H "Authorization: Bearer $key" -H 'content-type: application/json' "$@" > /dev/null; }
call -X POST "$url/v1/workspaces" -d '{"slug": "acme", "name": "Acme"}'
call -X POST "$url/v1/workspaces/acme/connections" -d "{\"name\": \"billing\", \"app\": \"generic-api-key\", \"verify\": false,
  \"settings\": {\"base_url\": \"http://127.0.0.1:9\"}, \"credentials\": {\"api_key\": \"$secret\"}}"
call -X POST "$url/v1/workspaces/acme/flows" -d '{"name": "sync", "connections": ["billing"]}'

cat > "$work/latchkey_hooks.py" <<PY
import schemathesis

SECRET = "$secret"

@schemathesis.check
def no_secret_in_answers(ctx, response, case):
    # The two endpoints whose purpose is to hand out secrets are exempt.
    if case.path.endswith("/credentials") or case.path.endswith("/token"):
        return None
    if SECRET in response.text:
        raise AssertionError(f"the stored secret appeared in the answer to {case.method} {case.path}")
    return None
PY

# Point path parameters at the fixture so generated requests reach the real logic, not only 404s.
cat > "$work/schemathesis.toml" <<TOML
[parameters]
"path.ws" = "acme"
"path.conn" = "billing"
"path.flow" = "sync"
"path.app" = "salesforce"
TOML

repo=$(pwd)
cd "$work"
# The event stream never ends (it is Server-Sent Events): every request to it would only wait
# out the request timeout, so it is left to its own tests.
PYTHONPATH="$work" SCHEMATHESIS_HOOKS=latchkey_hooks "$repo/$venv/bin/python" -m schemathesis.cli run "$url/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance,no_secret_in_answers \
  --max-examples "$examples" --max-time "$budget" --workers 2 --seed 1 \
  --exclude-path-regex '(/proxy/|/events/stream$|^/mcp$)' \
  --request-timeout 30 --no-color
cd "$repo"
grep -i "panicked" "$work/server.log" && { echo "the server panicked"; exit 1; } || true
echo "api-fuzz: no server error, no schema violation, no secret in any answer"
