#!/usr/bin/env bash
# Test tools that are not Rust crates, each checking Latchkey with code nobody here wrote: the
# Standard Webhooks reference library (webhook signatures), PyJWT and cryptography (the
# service-account tests' loopback token endpoint verifies Latchkey's signed assertions), oauthlib
# (OAuth 1.0a signatures and the three-legged endpoints, in tests/support/oauth1_provider.py) and
# botocore (AWS Signature Version 4, in tests/support/sigv4_upstream.py).
# Installed into a virtual environment under target/, so nothing outside the checkout changes
# (pip runs as `python -m pip`, so a venv copied from another checkout installs into itself).
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
if ! "$venv/bin/python" -c 'import oauthlib, botocore' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'oauthlib==4.0.1' 'botocore==1.44.5'
fi
"$venv/bin/python" -c 'import standardwebhooks; print("standardwebhooks ready")'
"$venv/bin/python" -c 'import jwt, cryptography; print("PyJWT", jwt.__version__, "and cryptography", cryptography.__version__, "ready")'
"$venv/bin/python" -c 'import oauthlib, botocore; print("oauthlib", oauthlib.__version__, "and botocore", botocore.__version__, "ready")'
