#!/usr/bin/env bash
# Test tools that are not Rust crates, installed into a virtual environment under target/ so
# nothing outside the checkout changes (pip runs as `python -m pip`, so a venv copied from another
# checkout installs into itself, not into the one it was made in):
# - the Standard Webhooks reference library, which the webhook tests use to verify Latchkey's
#   signatures with code nobody here wrote;
# - PyJWT and cryptography, with which the service-account tests' loopback token endpoint
#   verifies Latchkey's signed assertions.
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
