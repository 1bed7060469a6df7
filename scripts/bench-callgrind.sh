#!/usr/bin/env bash
# Instructions per proxied 1 KB call, counted by callgrind: a figure that does not move with the
# machine's speed, for comparing two builds of the server where wall-clock runs are too noisy.
#
#   scripts/bench-callgrind.sh [release dir, default target/release]
#
# Runs `latchkey-bench proxy --runs 1 --sizes 1kb --no-postgres` from a copy of the release
# folder whose `latchkey` starts `latchkey serve` under valgrind's callgrind, stops that server
# with SIGTERM once the bench is done (so that callgrind writes its counts), and prints the
# instructions per call of the connection's task, the proxy's handler (`proxy::handle`), the call and the API key
# check. With CALLGRIND_KEEP=FILE the raw counts are kept there (for callgrind_annotate).
# Needs valgrind (Debian's package) and a release build of latchkey-bench and latchkey-cli.
set -euo pipefail

release=$(realpath "${1:-target/release}")
for bin in latchkey latchkey-bench; do
  [ -x "$release/$bin" ] || { echo "bench-callgrind: $release/$bin is missing (cargo build --release -p latchkey-bench -p latchkey-cli)" >&2; exit 1; }
done
command -v valgrind >/dev/null || { echo "bench-callgrind: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }

# The bench runs the `latchkey` of its own folder, which it expects to be named `release`.
top=$(mktemp -d)
work="$top/release"
mkdir "$work"
trap 'pkill -TERM -f "$work/latchkey.real" 2>/dev/null || true; rm -rf "$top"' EXIT
cp "$release/latchkey-bench" "$work/"
cp "$release/latchkey" "$work/latchkey.real"
# The bench kills its `latchkey` child outright; the server under callgrind is a grandchild
# that outlives it and is stopped below with SIGTERM, so callgrind writes its counts.
cat > "$work/latchkey" <<EOF
#!/usr/bin/env bash
if [ "\$1" = serve ]; then
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p.out" "$work/latchkey.real" "\$@" &
  wait
  exit
fi
exec "$work/latchkey.real" "\$@"
EOF
chmod +x "$work/latchkey"

(cd "$work" && ./latchkey-bench proxy --runs 1 --sizes 1kb --no-postgres) | grep -E "via latchkey" || true
pkill -TERM -f "$work/latchkey.real" || true
for _ in $(seq 1 60); do
  pgrep -f "$work/latchkey.real" >/dev/null || break
  sleep 0.5
done

out=$(ls "$work"/cg.*.out | head -1)
# Calls: how often the proxy's path check ran (once per proxied call).
calls=$(python3 - "$out" <<'PY'
import re, sys
names, want, n = {}, False, 0
for line in open(sys.argv[1]):
    m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(3):
            names[m.group(2)] = m.group(3)
        if m.group(1) == "cfn":
            want = "proxy::check_path" in names.get(m.group(2), "")
    elif line.startswith("calls=") and want:
        n += int(line.split()[0][6:])
print(n)
PY
)
echo "proxied calls counted: $calls"
if [ -n "${CALLGRIND_KEEP:-}" ]; then cp "$out" "$CALLGRIND_KEEP"; fi
[ "$calls" -gt 0 ] || { echo "bench-callgrind: no proxied call was counted" >&2; exit 1; }
callgrind_annotate --inclusive=yes "$out" 2>/dev/null \
  | grep -E 'axum::serve::handle_connection::\{\{closure\}\}::\{\{closure\}\} |latchkey_server::proxy::handle::\{\{closure\}\} |latchkey_server::proxy::run::\{\{closure\}\} |KeyCaller as axum_core' \
  | while read -r count rest; do
      printf '%8d instructions per call  %s\n' "$(( ${count//,/} / calls ))" "$(echo "$rest" | sed -E 's/^\([^)]*\) +\?\?\?://; s/ \[.*//' | cut -c1-90)"
    done
