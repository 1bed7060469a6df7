#!/usr/bin/env bash
# Test tools that are not Rust crates: the Standard Webhooks reference library (Python), which
# the webhook tests use to verify Latchkey's signatures with code nobody here wrote.
# Installed into a virtual environment under target/, so nothing outside the checkout changes.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/test-tools/venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'standardwebhooks==1.0.0'
fi
"$venv/bin/python" -c 'import standardwebhooks; print("standardwebhooks ready")'
