#!/usr/bin/env bash
# The clients' tests against live servers: the Python client (pytest, with the simple-salesforce
# example and the MCP tests driven by the official MCP Python SDK) and the TypeScript client (Node's
# test runner, with the jsforce example), plus `npm pack`. What they need is installed locally:
# a virtualenv in target/clients-venv and clients/typescript/node_modules. Any failure fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

cargo build -q -p latchkey-cli
cargo build -q -p latchkey-testkit --example clients_fixture
export LATCHKEY_FIXTURE_BIN="$root/target/debug/examples/clients_fixture"

echo "== Python client (clients/python)"
venv=target/clients-venv
# pip runs as `python -m pip`: the venv's own scripts name the folder it was made in, so a
# target folder copied from another checkout would leave them pointing elsewhere.
"$venv/bin/python" -c '' 2>/dev/null || python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r clients/python/requirements-test.txt
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps ./clients/python
(cd "$venv" && bin/python -c 'import latchkey, sys; sys.exit(0 if "site-packages" in latchkey.__file__ else 1)')
(cd clients/python && "$root/$venv/bin/python" -m pytest -p no:cacheprovider -q -rs)

echo "== TypeScript client (clients/typescript)"
cd clients/typescript
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
npm run -s check:generated

echo "== npm pack"
pack=$(mktemp -d)
trap 'rm -rf "$pack"' EXIT
npm pack --silent --pack-destination "$pack" > /dev/null
tarball=$(ls "$pack"/latchkey-client-*.tgz)
listing=$(tar tzf "$tarball")
for f in package/dist/index.js package/dist/index.d.ts package/dist/schema.d.ts package/README.md package/package.json; do
  grep -qx "$f" <<< "$listing" || { echo "npm pack: $f is missing from $tarball"; exit 1; }
done
mkdir -p "$pack/app/node_modules/@latchkey/client"
tar xzf "$tarball" -C "$pack/app/node_modules/@latchkey/client" --strip-components=1
(cd "$pack/app" && node --input-type=module -e '
  const m = await import("@latchkey/client");
  for (const name of ["Latchkey", "verifyWebhook", "APIError"]) if (typeof m[name] !== "function") throw new Error(name + " is not exported");
  console.log("npm pack: the packed @latchkey/client imports");')

echo "== TypeScript client tests"
npm test
