#!/usr/bin/env bash
# Test tools that are not Rust crates, each checking Latchkey with code nobody here wrote: the
# Standard Webhooks reference library (webhook signatures), PyJWT and cryptography (the
# service-account tests' loopback token endpoint verifies Latchkey's signed assertions), oauthlib
# (OAuth 1.0a signatures and the three-legged endpoints, in tests/support/oauth1_provider.py) and
# botocore (AWS Signature Version 4, in tests/support/sigv4_upstream.py); and OpenSSH's server
# with a test account, for the SFTP connection tests; oidc-provider (npm), the OpenID Connect
# provider of the single sign-on tests.
# The Python libraries go into a virtual environment under target/, so nothing outside the
# checkout changes (pip runs as `python -m pip`, so a venv copied from another checkout installs
# into itself); openssh-server comes from apt-get when /usr/sbin/sshd is missing.
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

# A real OpenSSH server for the SFTP connection tests (crates/server/tests/sftp.rs), which start
# their own sshd on a loopback port with a generated configuration and host keys.
if [ ! -x /usr/sbin/sshd ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq openssh-server >/dev/null
fi
# The system account the SFTP tests log in as (password and key). It has no shell, and its
# password is made here at random and kept in target/test-tools/sftp-password (0600), so it is
# known to the tests and to nobody else; the tests' sshd lets only this account in, and only
# to its SFTP subsystem.
sftp_user=latchkey-sftp
sftp_pw_file=target/test-tools/sftp-password
if ! id "$sftp_user" >/dev/null 2>&1; then
    useradd --create-home --shell /usr/sbin/nologin "$sftp_user"
    rm -f "$sftp_pw_file"
fi
if [ ! -s "$sftp_pw_file" ]; then
    mkdir -p target/test-tools
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$sftp_pw_file")
fi
# Set every time: another checkout on this machine may have given the account its own password.
echo "$sftp_user:$(cat "$sftp_pw_file")" | chpasswd
echo "openssh-server ready (test account $sftp_user)"

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
