#!/usr/bin/env bash
# System calls per proxied 1 KB call, nginx `proxy_pass` beside `latchkey serve`: tells the
# kernel's share of a call from the server's own work.
#
#   scripts/bench-syscalls.sh [release dir, default target/release]
#
# Runs `latchkey-bench proxy --runs 1 --sizes 1kb --no-postgres` and, while it runs, counts the
# system calls of the bench's nginx and of its `latchkey serve` with `perf stat` on the syscall
# tracepoints, two seconds at a time. Each proxied call is one `writev` on each side (the request
# to the application, the answer to the caller), so a window's calls are its `writev`s / 2; the
# busiest window of each server (its 16-caller run) is printed per call. The tracepoints slow
# every system call alike, so the bench's own figures from this run are not to be quoted.
# Needs perf (Debian's linux-perf) with tracepoints readable (root) and a release build of
# latchkey-bench and latchkey-cli.
set -euo pipefail

release=$(realpath "${1:-target/release}")
for bin in latchkey latchkey-bench; do
  [ -x "$release/$bin" ] || { echo "bench-syscalls: $release/$bin is missing (cargo build --release -p latchkey-bench -p latchkey-cli)" >&2; exit 1; }
done
perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1 \
  || { echo "bench-syscalls: perf cannot read the syscall tracepoints here" >&2; exit 1; }

kinds="epoll_wait recvfrom writev read write futex"
events="raw_syscalls:sys_enter$(printf ',syscalls:sys_enter_%s' $kinds)"
log=$(mktemp)
watcher=
trap '[ -z "$watcher" ] || kill "$watcher" 2>/dev/null || true; rm -f "$log"' EXIT

watch() {
  local deadline=$((SECONDS + 600)) pid
  while [ $SECONDS -lt $deadline ]; do
    for who in nginx latchkey; do
      if [ $who = nginx ]; then pid=$(pgrep -x nginx | head -1 || true)
      else pid=$(pgrep -f "$release/latchkey serve" | head -1 || true); fi
      [ -n "$pid" ] || continue
      perf stat -x, -e "$events" -p "$pid" -- sleep 2 2>&1 \
        | awk -F, -v who=$who '{sub(/^(raw_)?syscalls:sys_enter_?/, "", $3); if ($3 == "") $3 = "all"; line = line " " $3 "=" $1} END {print who line}' >>"$log" || true
    done
    sleep 0.2
  done
}
watch &
watcher=$!

(cd "$release" && ./latchkey-bench proxy --runs 1 --sizes 1kb --no-postgres 2>/dev/null) \
  | grep -E "(nginx proxy_pass|SQLite), 16 callers \| requests/s \|" || true
kill "$watcher" 2>/dev/null || true

echo "system calls per proxied 1 KB call (the busiest two-second window of each server):"
for who in nginx latchkey; do
  grep "^$who " "$log" | awk -v kinds="$kinds" '
    { delete c; for (i = 2; i <= NF; i++) { split($i, kv, "="); c[kv[1]] = kv[2] + 0 }
      if (c["writev"] > best) { best = c["writev"]; line = "" ; n = c["writev"] / 2
        split(kinds, k, " "); other = c["all"]
        for (j in k) { line = line sprintf(" %s %.2f", k[j], c[k[j]] / n); other -= c[k[j]] }
        line = sprintf("%-9s calls %d:%s, other %.2f, in all %.2f", $1, n, line, other / n, c["all"] / n) } }
    END { if (best > 0) print line; else print $1 ": no window seen" }'
done
