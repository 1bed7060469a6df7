#!/usr/bin/env bash
# Installs Debian's Chromium and its WebDriver (chromedriver) for the web UI tests in
# crates/server/tests/ui.rs, when either is missing. Idempotent and quiet.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi

echo "install-chromium: installing chromium and chromium-driver" >&2
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
test -x /usr/bin/chromium && test -x /usr/bin/chromedriver
