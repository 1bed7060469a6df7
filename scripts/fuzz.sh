#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a short while (LATCHKEY_FUZZ_TARGET_SECONDS, default
# 20). A crash fails the run; its input lands in fuzz/artifacts/<target>/ and becomes a regression
# test once fixed. The targets build unoptimised (`--dev`): for runs this short a build of a few
# minutes instead of a quarter of an hour matters more than executions per second, and overflow
# checks stay on.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${LATCHKEY_FUZZ_TARGET_SECONDS:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
# The toolchain here is stable: let cargo-fuzz use the few unstable flags it needs.
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list --fuzz-dir fuzz); do
  echo "fuzz: $target for ${seconds}s"
  cargo fuzz run --dev --fuzz-dir fuzz --sanitizer none "$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=0
done
echo "fuzz: every target ran without a crash"
