#!/usr/bin/env bash
# CPU time per proxied 1 KB call, in user space and in the kernel, of nginx and of Latchkey, read
# from the kernel's own accounting while the proxy figure runs: where the two differ when their
# system calls do not (scripts/bench-syscalls.sh).
#
#   scripts/bench-cpu.sh [release dir, default target/release]
#
# Runs `latchkey-bench proxy --runs 1 --sizes 1kb --no-postgres --duration 8` and, once a second,
# reads the user and system time of every nginx, latchkey and latchkey-bench process from
# /proc/PID/stat. The seconds in which nginx (or latchkey) used at least 3/4 of its busiest
# second make its 16-caller run; their times are summed and divided by the calls that run served
# (its rate from the bench's own output, times those seconds). The load generator and the upstream (both latchkey-bench processes) are
# reported beside them: on two cores, what they take is what the proxy cannot have. Beside each
# figure, the context switches per call (voluntary and forced, summed over the process's threads
# from /proc/PID/task/*/status): a thread put to sleep and woken again for a call.
set -euo pipefail

release=$(realpath "${1:-target/release}")
for bin in latchkey latchkey-bench; do
  [ -x "$release/$bin" ] || { echo "bench-cpu: $release/$bin is missing (cargo build --release -p latchkey-bench -p latchkey-cli)" >&2; exit 1; }
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT

(cd "$release" && timeout 600 ./latchkey-bench proxy --runs 1 --sizes 1kb --no-postgres --duration 8 >"$out" 2>&1) &
bench=$!

python3 - "$out" "$bench" <<'PY'
import glob, os, re, sys, time

out_file, bench = sys.argv[1], int(sys.argv[2])
hz = os.sysconf("SC_CLK_TCK")


def sample():
    seen = {}
    for p in glob.glob("/proc/[0-9]*"):
        try:
            comm = open(p + "/comm").read().strip()
            if comm not in ("nginx", "latchkey", "latchkey-bench"):
                continue
            fields = open(p + "/stat").read().rsplit(")", 1)[1].split()
            cs = 0
            for t in glob.glob(p + "/task/*/status"):
                for line in open(t):
                    if "ctxt_switches" in line:
                        cs += int(line.split()[1])
            seen[(comm, p[6:])] = (int(fields[11]) / hz, int(fields[12]) / hz, cs)
        except OSError:
            pass
    return seen


# Every second's use, per process kind: user and system seconds.
seconds = []
before = sample()
for _ in range(240):
    time.sleep(1)
    now = sample()
    used = {}
    for key, (u, s, c) in now.items():
        if key in before:
            a = used.setdefault(key[0], [0.0, 0.0, 0])
            a[0] += u - before[key][0]
            a[1] += s - before[key][1]
            a[2] += c - before[key][2]
    before = now
    seconds.append(used)
    try:
        os.kill(bench, 0)
    except OSError:
        break

# A server's 16-caller run: the seconds in which it used at least 3/4 of its busiest second (its
# 1-caller run and the seconds cut by a run's start or end use less).
busy = {}
for server in ("nginx", "latchkey"):
    peak = max((sum(u.get(server, [0, 0, 0])[:2]) for u in seconds), default=0)
    runs = [u for u in seconds if peak > 0.3 and sum(u.get(server, [0, 0, 0])[:2]) >= 0.75 * peak]
    total = {"seconds": len(runs)}
    for u in runs:
        for kind, (us, ss, cc) in u.items():
            t = total.setdefault(kind, [0.0, 0.0, 0])
            t[0] += us
            t[1] += ss
            t[2] += cc
    busy[server] = total

text = open(out_file).read()
rate = {}
for server, label in (("nginx", "nginx proxy_pass"), ("latchkey", "via latchkey (SQLite)")):
    m = re.search(r"1 KB " + re.escape(label) + r", 16 callers\s+(\d+) req/s", text)
    if m:
        rate[server] = int(m.group(1))

print("per proxied 1 KB call, 16 callers (microseconds of CPU: user + system; context switches)")
for server in ("nginx", "latchkey"):
    secs = busy[server].get("seconds", 0)
    if not secs or server not in rate:
        print(f"  {server}: no busy run seen")
        continue
    calls = rate[server] * secs
    row = [f"{rate[server]:,} calls/s over {secs} s"]
    for kind in (server, "latchkey-bench"):
        u, s, c = busy[server].get(kind, [0.0, 0.0, 0])[:3]
        who = "load and upstream" if kind == "latchkey-bench" else kind
        row.append(f"{who} {u / calls * 1e6:.1f} + {s / calls * 1e6:.1f}, {c / calls:.2f} switches")
    print("  " + "; ".join(row))
PY
wait "$bench"
