#!/usr/bin/env bash
# Test tools that are not Rust crates, installed into a virtual environment under target/ so
# nothing outside the checkout changes (pip runs as `python -m pip`, so a venv copied from another
# checkout installs into itself, not into the one it was made in):
# - the Standard Webhooks reference library, which the webhook tests use to verify Latchkey's
#   signatures with code nobody here wrote;
# - PyJWT and cryptography, with which the service-account tests' loopback token endpoint
#   verifies Latchkey's signed assertions.
# - oidc-provider (npm), the OpenID Connect provider of the single sign-on tests.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/test-tools/venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'standardwebhooks==1.0.0'
fi
if ! "$venv/bin/python" -c 'import jwt, cryptography' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'PyJWT==2.10.1' 'cryptography==44.0.0'
fi
"$venv/bin/python" -c 'import standardwebhooks; print("standardwebhooks ready")'
"$venv/bin/python" -c 'import jwt, cryptography; print("PyJWT", jwt.__version__, "and cryptography", cryptography.__version__, "ready")'

# panva's oidc-provider, a certified OpenID Connect provider, which the single sign-on tests
# start on loopback (crates/server/tests/support/oidc/provider.mjs). Needs Node 18 or later.
oidc=target/test-tools/oidc
oidc_version=8.8.1
if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq nodejs npm >/dev/null || echo "could not install Node.js with apt-get" >&2
fi
if command -v npm >/dev/null 2>&1; then
    if ! grep -qs "\"version\": \"$oidc_version\"" "$oidc/node_modules/oidc-provider/package.json"; then
        mkdir -p "$oidc"
        npm install --prefix "$oidc" --no-audit --no-fund --silent "oidc-provider@$oidc_version"
    fi
    echo "oidc-provider $oidc_version ready"
else
    echo "npm is missing: the single sign-on tests will be skipped (install Node.js 18 or later)" >&2
fi
