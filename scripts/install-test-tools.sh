#!/usr/bin/env bash
# Test tools that are not Rust crates: the Standard Webhooks reference library (Python), which
# the webhook tests use to verify Latchkey's signatures with code nobody here wrote, and
# OpenSSH's server with a test account, for the SFTP connection tests.
# The Python library goes into a virtual environment under target/; openssh-server comes from
# apt-get when /usr/sbin/sshd is missing.
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
    echo "$sftp_user:$(cat "$sftp_pw_file")" | chpasswd
fi
echo "openssh-server ready (test account $sftp_user)"
