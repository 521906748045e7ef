#!/usr/bin/env bash
# Node benchmarks over loopback, end to end:
#   - loopback TCP round trip (100-byte ping-pong, 1 in flight; examples/loopback_rtt.rs)
#   - node echo:  diameter-bench load -> diameter-bench echo
#   - relay:      diameter-bench load -> diameter-bench relay -> diameter-bench echo
#                 the same with the relay busy-polling (--busy-poll-us BUSY_POLL_US)
#                 with WIRE=1: diameter-bench load -> tcp_wire -> diameter-bench echo, a
#                 byte-copying forwarder that never sleeps (examples/tcp_wire.rs): a relay
#                 doing no work, as a yardstick
#                 diameter-bench load -> freeDiameterd (relay) -> diameter-bench echo
# at 1/8/64/256 requests in flight, REPS repetitions each (interleaved, so the three
# scenarios see the same machine conditions), medians printed as a table.
#
# Usage: scripts/bench-node.sh            (env: DURATION=5 WARMUP=1 REPS=3 INFLIGHT="1 8 64 256"
#                                                 THREADS=1 BUSY_POLL_US=200 OUT=dir
#                                                 WIRE=1 SKIP_BUILD=1  SKIP_FD=1)
# THREADS is diameter-bench's --threads for our client, relay and echo server (1: one runtime
# thread each, the tool's default; 0: one worker per CPU). BUSY_POLL_US=0 skips the
# busy-polling relay.
# Needs: cargo, python3, freeDiameterd (Debian package freediameterd) unless SKIP_FD=1.
# Everything started here is stopped by PID on exit (trap), whatever the exit path.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-5}"
WARMUP="${WARMUP:-1}"
REPS="${REPS:-3}"
INFLIGHT="${INFLIGHT:-1 8 64 256}"
THREADS="${THREADS:-1}"
BUSY_POLL_US="${BUSY_POLL_US:-200}"
OUT="${OUT:-$(mktemp -d /tmp/bench-node.XXXXXX)}"
mkdir -p "$OUT"
BENCH="$ROOT/target/release/diameter-bench"
RTT="$ROOT/target/release/examples/loopback_rtt"
WIRE_BIN="$ROOT/target/release/examples/tcp_wire"
WIRE="${WIRE:-}"
BENCH_NAME=bench-node
# shellcheck source=lib/bench-common.sh
source "$ROOT/scripts/lib/bench-common.sh"

if [[ -z "${SKIP_BUILD:-}" ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p diameter-bench \
        && cargo build --release -p diameter-node --example loopback_rtt --example tcp_wire)
fi

HAVE_FD=1
if [[ -n "${SKIP_FD:-}" ]] || ! command -v freeDiameterd >/dev/null; then
    HAVE_FD=0
    log "freeDiameterd not run (SKIP_FD set or not installed)"
fi

read -r P_ECHO P_RELAY P_BUSY P_FD P_WIRE < <(free_ports 5)

# Realms/identities: the load client is load.bench in realm client.net (its requests carry
# that Origin-Host and Origin-Realm) and sends to Destination-Realm "bench", which the
# echo server owns; each relay has a realm of its own.
CLIENT=(--host load.bench --realm client.net --threads "$THREADS")

"$BENCH" echo --listen "127.0.0.1:$P_ECHO" --host echo.server.net --realm bench --threads "$THREADS" \
    >"$OUT/echo.log" 2>&1 &
ECHO_PID=$!; PIDS+=("$ECHO_PID")
wait_for "$OUT/echo.log" "listening on" 10

"$BENCH" relay --listen "127.0.0.1:$P_RELAY" --to "127.0.0.1:$P_ECHO" --to-host echo.server.net \
    --host dra.ours.net --realm ours.net --threads "$THREADS" >"$OUT/relay.log" 2>&1 &
RELAY_PID=$!; PIDS+=("$RELAY_PID")
wait_for "$OUT/relay.log" "listening on" 10

if [[ $BUSY_POLL_US != 0 ]]; then
    "$BENCH" relay --listen "127.0.0.1:$P_BUSY" --to "127.0.0.1:$P_ECHO" --to-host echo.server.net \
        --host dra.busy.net --realm busy.net --threads 1 --busy-poll-us "$BUSY_POLL_US" \
        >"$OUT/relay-busy.log" 2>&1 &
    BUSY_PID=$!; PIDS+=("$BUSY_PID")
    wait_for "$OUT/relay-busy.log" "listening on" 10
fi

if [[ -n $WIRE ]]; then
    "$WIRE_BIN" "127.0.0.1:$P_WIRE" "127.0.0.1:$P_ECHO" >"$OUT/wire.log" 2>&1 &
    WIRE_PID=$!; PIDS+=("$WIRE_PID")
    wait_for "$OUT/wire.log" "listening on" 10
fi

if [[ $HAVE_FD == 1 ]]; then
    fd_relay_conf "$P_FD" "$P_ECHO"
    freeDiameterd -c "$OUT/freeDiameter.conf" >"$OUT/freediameterd.log" 2>&1 &
    FD_PID=$!; PIDS+=("$FD_PID")
    wait_for "$OUT/freediameterd.log" "'STATE_OPEN'.*'echo.server.net'" 15
fi
# Our relay connects to the echo server on its own; give it its CER round.
sleep 1

MACHINE="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) CPUs, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r)"
log "machine: $MACHINE"
log "ports: echo $P_ECHO, our relay $P_RELAY (busy-polling: $P_BUSY), freeDiameterd $P_FD; output in $OUT"

# Loopback RTT, REPS runs.
for r in $(seq "$REPS"); do
    echo "loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >"$OUT/rtt-$r.txt"
    run_fg "$RTT" 100000 >>"$OUT/rtt-$r.txt"
    log "rtt rep $r: $(tr '\n' ' ' <"$OUT/rtt-$r.txt")"
done

run_load() { # name to to_host in_flight rep server_pids...
    local name=$1 to=$2 host=$3 n=$4 rep=$5; shift 5
    local args=() p f="$OUT/$name-$n-$rep.json"
    for p in "$@"; do args+=(--server-pid "$p"); done
    local la; la="$(cut -d' ' -f1-3 /proc/loadavg)"
    run_fg "$BENCH" load --to "$to" --to-host "$host" "${CLIENT[@]}" --in-flight "$n" \
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
print(f"{d['scenario']:4} n={d['in_flight']:<3} tps={d['tps']:.0f} p50={l['p50']} p99={l['p99']} "
      f"p99.9={l['p999']} err={d['errors']} non2001={d['non_success']} srv_cpu_us={srv} "
      f"cli_cpu_us={d['client_cpu_us_per_txn']:.2f} loadavg={d['loadavg']}")
EOF
)"
}

for rep in $(seq "$REPS"); do
    for n in $INFLIGHT; do
        if [[ $n == 1 ]]; then
            # The round trip right before the 1-in-flight echo run, for a paired comparison
            # (the host's loopback latency drifts within minutes).
            run_fg "$RTT" 20000 >"$OUT/rttpair-$rep.txt"
        fi
        run_load echo "127.0.0.1:$P_ECHO" echo.server.net "$n" "$rep" "$ECHO_PID"
        run_load ours "127.0.0.1:$P_RELAY" dra.ours.net "$n" "$rep" "$RELAY_PID" "$ECHO_PID"
        if [[ $BUSY_POLL_US != 0 ]]; then
            run_load busy "127.0.0.1:$P_BUSY" dra.busy.net "$n" "$rep" "$BUSY_PID" "$ECHO_PID"
        fi
        if [[ -n $WIRE ]]; then
            run_load wire "127.0.0.1:$P_WIRE" echo.server.net "$n" "$rep" "$WIRE_PID" "$ECHO_PID"
        fi
        if [[ $HAVE_FD == 1 ]]; then
            run_load fd "127.0.0.1:$P_FD" dra.relay.net "$n" "$rep" "$FD_PID" "$ECHO_PID"
        fi
    done
done

cleanup

python3 - "$OUT" "$MACHINE" "$DURATION" "$REPS" <<'EOF'
import glob, json, os, re, statistics, sys
out, machine, duration, reps = sys.argv[1:5]
med = statistics.median
print(f"\nMachine: {machine}; {reps} repetitions of {duration} s each, medians; raw results in {out}")
rtt = {"std": [], "tokio": []}
for f in sorted(glob.glob(os.path.join(out, "rtt-*.txt"))):
    for line in open(f):
        m = re.match(r"(std|tokio)\s+n \d+\s+p50 ([\d.]+)", line)
        if m:
            rtt[m.group(1)].append(float(m.group(2)))
for k, v in rtt.items():
    if v:
        print(f"Loopback TCP RTT ({k}, 100 B, 1 in flight): p50 median {med(v):.1f} µs (runs: {', '.join(f'{x:.1f}' for x in v)})")
runs = {}
for f in glob.glob(os.path.join(out, "*-*-*.json")):
    d = json.load(open(f))
    runs.setdefault((d["scenario"], d["in_flight"]), []).append(d)
def stat(rs, key):
    return med([key(r) for r in rs])
def srv(i):
    return lambda r: (r["server_cpu_us_per_txn"][i][1] or float("nan"))
def summary(s, n):
    rs = runs.get((s, n))
    if not rs:
        return None
    return {
        "tps": stat(rs, lambda r: r["tps"]),
        "p50": stat(rs, lambda r: r["latency_us"]["p50"]),
        "p99": stat(rs, lambda r: r["latency_us"]["p99"]),
        "p999": stat(rs, lambda r: r["latency_us"]["p999"]),
        "cpu": stat(rs, srv(0)),
        "cpu2": stat(rs, srv(1)) if len(rs[0]["server_cpu_us_per_txn"]) > 1 else None,
        "cli": stat(rs, lambda r: r["client_cpu_us_per_txn"] or float("nan")),
        "err": sum(r["errors"] + r["non_success"] for r in rs),
        "load": " / ".join(r["loadavg"].split()[0] for r in rs),
    }
ns = sorted({n for (_, n) in runs})
pairs = []
for f in sorted(glob.glob(os.path.join(out, "rttpair-*.txt"))):
    rep = re.search(r"rttpair-(\d+)", f).group(1)
    e = os.path.join(out, f"echo-1-{rep}.json")
    t = [float(m.group(1)) for m in (re.match(r"tokio\s+n \d+\s+p50 ([\d.]+)", l) for l in open(f)) if m]
    if t and os.path.exists(e):
        pairs.append((t[0], json.load(open(e))["latency_us"]["p50"]))
if pairs:
    print("\nOne in flight against the loopback round trip measured just before (tokio ping-pong, p50 µs):")
    print("| rep | RTT p50 | echo p50 | echo − RTT |")
    print("|---:|---:|---:|---:|")
    for i, (t, e) in enumerate(pairs, 1):
        print(f"| {i} | {t:.1f} | {e} | {e - t:+.1f} |")
    print(f"median excess: {med([e - t for t, e in pairs]):+.1f} µs")
print("\nEcho (load -> echo)")
print("| in flight | TPS | p50 µs | p99 µs | p99.9 µs | echo CPU µs/txn | client CPU µs/txn | errors | loadavg (1 min) |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for n in ns:
    e = summary("echo", n)
    if e:
        print(f"| {n} | {e['tps']:,.0f} | {e['p50']:.0f} | {e['p99']:.0f} | {e['p999']:.0f} | {e['cpu']:.2f} | {e['cli']:.2f} | {e['err']} | {e['load']} |")
print("\nRelay (load -> relay -> echo)")
print("| in flight | relay | TPS | p50 µs | p99 µs | p99.9 µs | relay CPU µs/txn | echo CPU µs/txn | errors | loadavg (1 min) |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
for n in ns:
    for s, label in (("ours", "ours"), ("busy", "ours, busy-poll"), ("wire", "tcp_wire (yardstick)"), ("fd", "freeDiameterd")):
        e = summary(s, n)
        if e:
            print(f"| {n} | {label} | {e['tps']:,.0f} | {e['p50']:.0f} | {e['p99']:.0f} | {e['p999']:.0f} | {e['cpu']:.2f} | {e['cpu2']:.2f} | {e['err']} | {e['load']} |")
if any(s == "fd" for (s, _) in runs):
    print("\nRatios ours / freeDiameterd (medians)")
    print("| in flight | relay | TPS | p50 | p99 | p99.9 | relay CPU/txn |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n in ns:
        for s, label in (("ours", "ours"), ("busy", "ours, busy-poll"), ("wire", "tcp_wire (yardstick)")):
            o, f = summary(s, n), summary("fd", n)
            if o and f:
                print(f"| {n} | {label} | {o['tps']/f['tps']:.2f}× | {o['p50']/f['p50']:.2f} | {o['p99']/f['p99']:.2f} | {o['p999']/f['p999']:.2f} | {o['cpu']/f['cpu']:.2f} |")
EOF
