#!/usr/bin/env bash
# DRA benchmarks over loopback, end to end, with Gx sessions (`diameter-bench load --gx`:
# per in-flight slot, sessions of CCR-I with Subscription-Id, Framed-IP-Address and
# Called-Station-Id, 14 CCR-U, CCR-T):
#   - echo:     load -> echo                         (no DRA: the yardstick for added latency)
#   - proxy:    load -> dra (proxy mode) -> echo     (the echo server is the DRA's one PCRF;
#               every CCR-I binds, CCR-U follow the binding, CCR-T unbinds when answered)
#   - fd:       load -> freeDiameterd (relay) -> echo
#   - redirect: load -> dra (redirect mode, DONT_CACHE, terminations redirected too): every
#               request gets 3006 from the DRA and the client sends it again to the echo
#               server; TPS = redirect answers per second (each transaction is one)
# at 1/64/256 requests in flight, REPS repetitions, the scenarios interleaved so they see the
# same machine conditions; medians printed as a table with the 1-minute load average of each
# run. Everything runs under `nice -n $NICE` (the machine's 2 CPUs are shared with builds).
#
# Usage: scripts/bench-dra.sh   (env: DURATION=5 WARMUP=1 REPS=3 INFLIGHT="1 64 256"
#                                     THREADS=1 NICE=-10 OUT=dir SKIP_BUILD=1 SKIP_FD=1)
# THREADS is --threads of the DRA, the client and the echo server (1: one runtime thread each,
# as the node relay bench; 0: one worker per CPU). The DRA keeps bindings in memory
# ([store] kind = "memory") and logs at warn (RUST_LOG=warn).
# Needs: cargo, python3, freeDiameterd (Debian package freediameterd) unless SKIP_FD=1.
# Everything started here is stopped by PID on exit (trap), whatever the exit path.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-5}"
WARMUP="${WARMUP:-1}"
REPS="${REPS:-3}"
INFLIGHT="${INFLIGHT:-1 64 256}"
THREADS="${THREADS:-1}"
NICE="${NICE:--10}"
OUT="${OUT:-$(mktemp -d /tmp/bench-dra.XXXXXX)}"
mkdir -p "$OUT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BENCH="$TARGET/release/diameter-bench"
DRA="$TARGET/release/dra"
N=(nice -n "$NICE")
BENCH_NAME=bench-dra
# shellcheck source=lib/bench-common.sh
source "$ROOT/scripts/lib/bench-common.sh"

if [[ -z "${SKIP_BUILD:-}" ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p diameter-bench -p dra)
fi

HAVE_FD=1
if [[ -n "${SKIP_FD:-}" ]] || ! command -v freeDiameterd >/dev/null; then
    HAVE_FD=0
    log "freeDiameterd not run (SKIP_FD set or not installed)"
fi

read -r P_ECHO P_PROXY P_REDIR P_FD < <(free_ports 4)

CLIENT=(--host load.bench --realm client.net --threads "$THREADS" --gx)

"${N[@]}" "$BENCH" echo --listen "127.0.0.1:$P_ECHO" --host echo.server.net --realm bench \
    --threads "$THREADS" >"$OUT/echo.log" 2>&1 &
ECHO_PID=$!; PIDS+=("$ECHO_PID")
wait_for "$OUT/echo.log" "listening on" 10

dra_config() { # file host realm port mode
    cat >"$1" <<EOF
[node]
origin_host = "$2"
origin_realm = "$3"
unknown_peer = "accept"

[[node.listen]]
addr = "127.0.0.1:$4"

[dra]
mode = "$5"
redirect_usage = "DONT_CACHE"
termination = "redirect"

[[dra.pcrf]]
host = "echo.server.net"
connect = "127.0.0.1:$P_ECHO"

[store]
kind = "memory"
EOF
}
# The client follows the redirect DRA's 3006 to echo.server.net: where that host listens.
cat >"$OUT/load-redirect.toml" <<EOF
[node]
origin_host = "load.bench"
origin_realm = "client.net"

[node.hosts]
"echo.server.net" = "127.0.0.1:$P_ECHO"
EOF
dra_config "$OUT/dra-proxy.toml" dra.ours.net ours.net "$P_PROXY" proxy
dra_config "$OUT/dra-redirect.toml" dra.redir.net redir.net "$P_REDIR" redirect
RUST_LOG=warn "${N[@]}" "$DRA" --config "$OUT/dra-proxy.toml" --threads "$THREADS" \
    >"$OUT/dra-proxy.log" 2>&1 &
PROXY_PID=$!; PIDS+=("$PROXY_PID")
RUST_LOG=warn "${N[@]}" "$DRA" --config "$OUT/dra-redirect.toml" --threads "$THREADS" \
    >"$OUT/dra-redirect.log" 2>&1 &
REDIR_PID=$!; PIDS+=("$REDIR_PID")

if [[ $HAVE_FD == 1 ]]; then
    # As scripts/bench-node.sh.
    fd_relay_conf "$P_FD" "$P_ECHO"
    "${N[@]}" freeDiameterd -c "$OUT/freeDiameter.conf" >"$OUT/freediameterd.log" 2>&1 &
    FD_PID=$!; PIDS+=("$FD_PID")
    wait_for "$OUT/freediameterd.log" "'STATE_OPEN'.*'echo.server.net'" 15
fi
# The DRAs connect to their PCRF (the echo server) on their own: give them their CER round.
sleep 2

MACHINE="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) CPUs, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r)"
log "machine: $MACHINE"
log "ports: echo $P_ECHO, dra proxy $P_PROXY, dra redirect $P_REDIR, freeDiameterd $P_FD; output in $OUT"

run_load() { # name to to_host in_flight rep server_pids...
    local name=$1 to=$2 host=$3 n=$4 rep=$5; shift 5
    local args=() p f="$OUT/$name-$n-$rep.json"
    if [[ $name == redirect ]]; then args+=(--config "$OUT/load-redirect.toml"); fi
    for p in "$@"; do args+=(--server-pid "$p"); done
    local la; la="$(cut -d' ' -f1-3 /proc/loadavg)"
    run_fg "${N[@]}" "$BENCH" load --to "$to" --to-host "$host" "${CLIENT[@]}" --in-flight "$n" \
        --duration "$DURATION" --warmup "$WARMUP" "${args[@]}" --json >"$f.tmp" 2>"$OUT/$name-$n-$rep.err"
    python3 - "$f.tmp" "$la" "$name" >"$f" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); d["loadavg"] = sys.argv[2]; d["scenario"] = sys.argv[3]
print(json.dumps(d))
EOF
    rm -f "$f.tmp"
    log "$(python3 - "$f" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); l = d["latency_us"]
srv = " ".join(f"{c:.2f}" if c is not None else "n/a" for _, c in d["server_cpu_us_per_txn"])
print(f"{d['scenario']:8} n={d['in_flight']:<3} tps={d['tps']:.0f} p50={l['p50']} p99={l['p99']} "
      f"err={d['errors']} non2001={d['non_success']} srv_cpu_us={srv} "
      f"cli_cpu_us={d['client_cpu_us_per_txn']:.2f} loadavg={d['loadavg']}")
EOF
)"
}

for rep in $(seq "$REPS"); do
    for n in $INFLIGHT; do
        run_load echo "127.0.0.1:$P_ECHO" echo.server.net "$n" "$rep" "$ECHO_PID"
        run_load proxy "127.0.0.1:$P_PROXY" dra.ours.net "$n" "$rep" "$PROXY_PID" "$ECHO_PID"
        if [[ $HAVE_FD == 1 ]]; then
            run_load fd "127.0.0.1:$P_FD" dra.relay.net "$n" "$rep" "$FD_PID" "$ECHO_PID"
        fi
        run_load redirect "127.0.0.1:$P_REDIR" dra.redir.net "$n" "$rep" "$REDIR_PID" "$ECHO_PID"
    done
done

# What the DRAs hold at the end (sessions cut off mid-way by the end of each run stay bound).
for pid in "$PROXY_PID" "$REDIR_PID"; do
    log "dra pid $pid: VmRSS $(awk '/VmRSS/{print $2, $3}' "/proc/$pid/status")"
done

cleanup

python3 - "$OUT" "$MACHINE" "$DURATION" "$REPS" <<'EOF'
import glob, json, os, statistics, sys
out, machine, duration, reps = sys.argv[1:5]
med = statistics.median
print(f"\nMachine: {machine}; {reps} repetitions of {duration} s each, medians; raw results in {out}")
runs = {}
for f in glob.glob(os.path.join(out, "*-*-*.json")):
    d = json.load(open(f))
    runs.setdefault((d["scenario"], d["in_flight"]), []).append(d)
def summary(s, n):
    rs = runs.get((s, n))
    if not rs:
        return None
    m = lambda k: med([k(r) for r in rs])
    return {
        "tps": m(lambda r: r["tps"]),
        "p50": m(lambda r: r["latency_us"]["p50"]),
        "p99": m(lambda r: r["latency_us"]["p99"]),
        "cpu": m(lambda r: r["server_cpu_us_per_txn"][0][1] or float("nan")),
        "cpu2": m(lambda r: r["server_cpu_us_per_txn"][-1][1] or float("nan")),
        "cli": m(lambda r: r["client_cpu_us_per_txn"] or float("nan")),
        "err": sum(r["errors"] for r in rs),
        "non": sum(r["non_success"] for r in rs),
        "load": " / ".join(r["loadavg"].split()[0] for r in rs),
        "each": [r["tps"] for r in sorted(rs, key=lambda r: r.get("loadavg"))],
    }
ns = sorted({n for (_, n) in runs})
labels = (("echo", "none (load -> echo)"), ("proxy", "dra proxy"), ("fd", "freeDiameterd relay"),
          ("redirect", "dra redirect"))
print("\n| in flight | between client and echo | TPS | p50 µs | p99 µs | agent CPU µs/txn | echo CPU µs/txn | client CPU µs/txn | errors | non-2001 answers | loadavg (1 min) |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for n in ns:
    for s, label in labels:
        e = summary(s, n)
        if e:
            agent = "—" if s == "echo" else f"{e['cpu']:.2f}"
            print(f"| {n} | {label} | {e['tps']:,.0f} | {e['p50']:.0f} | {e['p99']:.0f} | {agent} | {e['cpu2']:.2f} | {e['cli']:.2f} | {e['err']} | {e['non']} | {e['load']} |")
print("\n| in flight | proxy TPS ÷ freeDiameterd | proxy CPU/txn ÷ freeDiameterd | proxy added p50 µs (over echo) | freeDiameterd added p50 µs |")
print("|---:|---:|---:|---:|---:|")
for n in ns:
    o, f, e = summary("proxy", n), summary("fd", n), summary("echo", n)
    if o and e:
        ft = f"{o['tps']/f['tps']:.2f}×" if f else "—"
        fc = f"{o['cpu']/f['cpu']:.2f}" if f else "—"
        fa = f"{f['p50']-e['p50']:+.0f}" if f else "—"
        print(f"| {n} | {ft} | {fc} | {o['p50']-e['p50']:+.0f} | {fa} |")
EOF
