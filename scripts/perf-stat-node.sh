#!/usr/bin/env bash
# System calls and CPU of one diameter-bench echo or relay under load, from `perf stat`:
#
#   scripts/perf-stat-node.sh echo|relay BIN [IN_FLIGHT] [SECONDS]
#
# BIN runs the process under test; the load client (and, for a relay, the echo server behind
# it) is this checkout's target/release/diameter-bench, so two builds can be compared with the
# same client. Prints answers, TPS, task-clock per transaction and system calls per
# transaction. EVENTS (comma-separated perf events) adds more counters, each printed per
# transaction, e.g. EVENTS=context-switches,cpu-migrations,syscalls:sys_enter_futex. Needs
# perf (linux-perf) and perf_event_paranoid ≤ 2 for the process's own events. Every process
# started here is stopped by PID.
set -euo pipefail
mode=$1; bin=$2; inflight=${3:-64}; secs=${4:-5}
here="$(cd "$(dirname "$0")/.." && pwd)"
tool="$here/target/release/diameter-bench"
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
out=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$out"' EXIT
p=$(port)
if [ "$mode" = relay ]; then
  e=$(port)
  "$tool" echo --listen "127.0.0.1:$e" --host echo.perf > /dev/null 2>&1 & pids+=($!)
  sleep 0.5
  "$bin" relay --listen "127.0.0.1:$p" --host relay.perf --to "127.0.0.1:$e" --to-host echo.perf \
    > /dev/null 2>&1 & pids+=($!)
  host=relay.perf
else
  "$bin" echo --listen "127.0.0.1:$p" --host echo.perf > /dev/null 2>&1 & pids+=($!)
  host=echo.perf
fi
target=${pids[-1]}
sleep 1.5
events=syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,task-clock
perf stat -x, -e "$events${EVENTS:+,$EVENTS}" \
  -p "$target" -o "$out/perf" & stat=$!
# perf takes a moment to attach (longer with tracepoints): counting idle time is cheaper
# than missing the start of the run, which made transactions look cheaper than they are.
sleep 0.5
"$tool" load --to "127.0.0.1:$p" --to-host "$host" --in-flight "$inflight" --duration "$secs" \
  --warmup 0 --json > "$out/load.json"
kill -INT "$stat"; wait "$stat" || true
EVENTS="${EVENTS:-}" python3 - "$out" <<'PY'
import json, os, sys
d = json.load(open(sys.argv[1] + "/load.json"))
n = d["answers"]
stats = {}
for line in open(sys.argv[1] + "/perf"):
    f = line.strip().split(",")
    if len(f) > 2 and f[0].replace(".", "").isdigit():
        stats[f[2]] = float(f[0])
base = ("syscalls:sys_enter_sendto", "syscalls:sys_enter_recvfrom", "syscalls:sys_enter_epoll_wait")
sys_calls = sum(stats.get(k, 0) for k in base)
extra = [e for e in os.environ["EVENTS"].split(",") if e]
print(f"answers {n}  tps {d['tps']:.0f}  cpu {stats.get('task-clock', 0) * 1000 / n:.2f} µs/txn  "
      f"syscalls {sys_calls / n:.3f}/txn  errors {d['errors']}"
      + "".join(f"  {e} {stats.get(e, 0) / n:.3f}/txn" for e in extra))
PY
