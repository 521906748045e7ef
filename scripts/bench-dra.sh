#!/usr/bin/env bash
# DRA benchmarks over loopback, end to end, with Gx sessions from `pcef-sim load --app gx`
# (per in-flight slot, sessions one after the other: CCR-I with Subscription-Id,
# Framed-IP-Address and Called-Station-Id, UPDATES CCR-Us, CCR-T; the keys a DRA binds by).
# Set-ups (the name in the tables first):
#   - echo:     load -> diameter-bench echo          (no agent: the yardstick for added latency)
#   - proxy:    load -> dra (proxy mode) -> echo     (the echo server is the DRA's one PCRF;
#               every CCR-I binds, CCR-U follow the binding, CCR-T unbinds when answered)
#   - proxypoll: the same DRA with --busy-poll-us 200 (polling the sockets between messages
#               instead of sleeping, as the busy relay; for a DRA on cores of its own)
#   - relay:    load -> diameter-bench relay -> echo (the node's own forwarder, no work per
#               request and no busy polling: the yardstick of what wake-ups allow a proxy
#               that sleeps between messages)
#   - busy:     load -> diameter-bench relay, busy-polling -> echo (the cheapest forwarder we
#               have, doing no work a DRA does: the ceiling of any agent on this machine)
#   - wire:     with WIRE=1, load -> tcp_wire (a byte-copying forwarder) -> echo
#   - fd:       load -> freeDiameterd (relay) -> echo
#   - redirect: load --redirects count -> dra (redirect mode, DONT_CACHE, terminations
#               redirected too): every request gets 3006 from the DRA, counted as its answer;
#               TPS = redirect answers per second
#   - redirect2: the same with two load processes of half the in-flight sessions each (TPS summed)
#   - echocount: load --redirects count -> echo (the redirect client's own ceiling: the same
#               client code per request, answered by a server that does nothing)
#   - pcrf:     load -> pcrf (the real home PCRF, demo configuration)
#   - pcrfproxy: load -> dra (proxy mode) -> pcrf     (added latency over `pcrf`)
# at 1/64/256 requests in flight, REPS repetitions, the set-ups interleaved so they see the
# same machine conditions; medians printed as tables with the 1-minute load average of each
# run. Everything runs under `nice -n $NICE` (the machine's 2 CPUs are shared with builds).
#
# Usage: scripts/bench-dra.sh   (env: DURATION=5 WARMUP=1 REPS=3 INFLIGHT="1 64 256"
#                                     UPDATES=14 THREADS=1 NICE=-10 OUT=dir SKIP_BUILD=1
#                                     SKIP_FD=1 WIRE=1 ONLY="proxy fd ...")
# THREADS is --threads of the DRA, the client, the relay and the echo server (1: one runtime
# thread each, as the node relay bench). The DRA keeps bindings in memory ([store] kind =
# "memory") and logs at warn (RUST_LOG=warn). ONLY limits the set-ups run.
# Needs: cargo, python3, freeDiameterd (Debian package freediameterd) unless SKIP_FD=1.
# Everything started here is stopped by PID on exit (trap), whatever the exit path.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-5}"
WARMUP="${WARMUP:-1}"
REPS="${REPS:-3}"
INFLIGHT="${INFLIGHT:-1 64 256}"
UPDATES="${UPDATES:-14}"
THREADS="${THREADS:-1}"
NICE="${NICE:--10}"
WIRE="${WIRE:-}"
ONLY="${ONLY:-echo proxy proxypoll relay busy wire fd redirect redirect2 echocount pcrf pcrfproxy}"
OUT="${OUT:-$(mktemp -d /tmp/bench-dra.XXXXXX)}"
mkdir -p "$OUT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BENCH="$TARGET/release/diameter-bench"
DRA="$TARGET/release/dra"
SIM="$TARGET/release/pcef-sim"
PCRF="$TARGET/release/pcrf"
WIRE_BIN="$TARGET/release/examples/tcp_wire"
N=(nice -n "$NICE")
BENCH_NAME=bench-dra
# shellcheck source=lib/bench-common.sh
source "$ROOT/scripts/lib/bench-common.sh"

wanted() { [[ " $ONLY " == *" $1 "* ]]; }

if [[ -z "${SKIP_BUILD:-}" ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p diameter-bench -p dra -p pcef-sim -p pcrf)
    if [[ -n $WIRE ]]; then
        (cd "$ROOT" && cargo build --release -p diameter-node --example tcp_wire)
    fi
fi

HAVE_FD=1
if [[ -n "${SKIP_FD:-}" ]] || ! command -v freeDiameterd >/dev/null; then
    HAVE_FD=0
    log "freeDiameterd not run (SKIP_FD set or not installed)"
fi

read -r P_ECHO P_PROXY P_REDIR P_FD P_BUSY P_WIRE P_PCRF P_PPROXY P_POLL P_RELAY < <(free_ports 10)

"${N[@]}" "$BENCH" echo --listen "127.0.0.1:$P_ECHO" --host echo.server.net --realm bench \
    --threads "$THREADS" >"$OUT/echo.log" 2>&1 &
ECHO_PID=$!; PIDS+=("$ECHO_PID")
wait_for "$OUT/echo.log" "listening on" 10

"${N[@]}" "$BENCH" relay --listen "127.0.0.1:$P_BUSY" --to "127.0.0.1:$P_ECHO" \
    --to-host echo.server.net --host dra.busy.net --realm busy.net --threads 1 \
    --busy-poll-us 200 >"$OUT/relay-busy.log" 2>&1 &
BUSY_PID=$!; PIDS+=("$BUSY_PID")
wait_for "$OUT/relay-busy.log" "listening on" 10

"${N[@]}" "$BENCH" relay --listen "127.0.0.1:$P_RELAY" --to "127.0.0.1:$P_ECHO" \
    --to-host echo.server.net --host dra.relay0.net --realm relay0.net --threads 1 \
    >"$OUT/relay-plain.log" 2>&1 &
RELAY_PID=$!; PIDS+=("$RELAY_PID")
wait_for "$OUT/relay-plain.log" "listening on" 10

WIRE_PID=""
if [[ -n $WIRE ]]; then
    "${N[@]}" "$WIRE_BIN" "127.0.0.1:$P_WIRE" "127.0.0.1:$P_ECHO" >"$OUT/wire.log" 2>&1 &
    WIRE_PID=$!; PIDS+=("$WIRE_PID")
fi

# The real PCRF (demo subscribers), no operator endpoint.
RUST_LOG=warn "${N[@]}" "$PCRF" --listen "127.0.0.1:$P_PCRF" --no-admin >"$OUT/pcrf.log" 2>&1 &
PCRF_PID=$!; PIDS+=("$PCRF_PID")

dra_config() { # file host realm port mode pcrf_host pcrf_port
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
host = "$6"
connect = "127.0.0.1:$7"

[store]
kind = "memory"
EOF
}
dra_config "$OUT/dra-proxy.toml" dra.ours.net ours.net "$P_PROXY" proxy echo.server.net "$P_ECHO"
dra_config "$OUT/dra-redirect.toml" dra.redir.net redir.net "$P_REDIR" redirect echo.server.net "$P_ECHO"
dra_config "$OUT/dra-poll.toml" dra.poll.net poll.net "$P_POLL" proxy echo.server.net "$P_ECHO"
dra_config "$OUT/dra-pcrf.toml" dra.home.test home.test "$P_PPROXY" proxy pcrf.home.test "$P_PCRF"
start_dra() { # name [extra dra args]
    local name=$1; shift
    RUST_LOG=warn "${N[@]}" "$DRA" --config "$OUT/dra-$name.toml" --threads "$THREADS" "$@" \
        >"$OUT/dra-$name.log" 2>&1 &
    PIDS+=("$!")
    echo "$!"
}
PROXY_PID=$(start_dra proxy)
REDIR_PID=$(start_dra redirect)
PPROXY_PID=$(start_dra pcrf)
POLL_PID=""
if [[ $THREADS == 1 ]]; then POLL_PID=$(start_dra poll --busy-poll-us 200); fi  # needs one thread

if [[ $HAVE_FD == 1 ]]; then
    # As scripts/bench-node.sh.
    fd_relay_conf "$P_FD" "$P_ECHO"
    "${N[@]}" freeDiameterd -c "$OUT/freeDiameter.conf" >"$OUT/freediameterd.log" 2>&1 &
    FD_PID=$!; PIDS+=("$FD_PID")
    wait_for "$OUT/freediameterd.log" "'STATE_OPEN'.*'echo.server.net'" 15
fi
# The DRAs connect to their PCRF on their own: give them their CER round.
sleep 2

MACHINE="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) CPUs, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r)"
log "machine: $MACHINE"
log "pids: echo $ECHO_PID, dra proxy $PROXY_PID, dra redirect $REDIR_PID, dra proxy to pcrf $PPROXY_PID, pcrf $PCRF_PID, busy relay $BUSY_PID, freeDiameterd ${FD_PID:-none}; output in $OUT"

# One pcef-sim load; its JSON report in $OUT/NAME-N-REP[-i].json with the load average.
# Origin-Host load.bench: the one freeDiameterd's ACL accepts. Destination-Realm: the
# echo server's (bench; freeDiameterd routes by it), the PCRF's for the PCRF set-ups.
# Subscribers: one per session in front of the echo server (as a DRA sees a large
# population); the PCRF's demo SPR knows two, so there every UE has many IP-CAN sessions.
load_cmd() { # to to_host in_flight extra...
    local to=$1 host=$2 n=$3 realm=bench subs=10000000; shift 3
    if [[ $host == pcrf.home.test || $host == dra.home.test ]]; then realm=home.test subs=2; fi
    echo "${N[@]}" "$SIM" load --app gx --to "$to" --to-host "$host" --dest-realm "$realm" --host load.bench \
        --realm client.net --threads "$THREADS" --subscribers "$subs" --updates "$UPDATES" \
        --in-flight "$n" --duration "$DURATION" --warmup "$WARMUP" --timeout 10 --json "$@"
}
annotate() { # file loadavg name
    python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
f, la, name = sys.argv[1:4]
d = json.load(open(f)); d["loadavg"] = la; d["setup"] = name
json.dump(d, open(f, "w"))
l = d.get("latency_us") or {}
srv = " ".join(f"{c['cpu_us_per_request']:.2f}" if c.get("cpu_us_per_request") is not None else "n/a"
               for c in d["server_cpu"])
cli = d.get("client_cpu_us_per_request")
print(f"{name:9} n={d['in_flight']:<3} tps={d['tps']:.0f} redirects/s={d['redirects_per_s']:.0f} "
      f"p50={l.get('p50')} p99={l.get('p99')} err={d['errors']} codes={d['result_codes']} "
      f"srv_cpu_us={srv} cli_cpu_us={cli if cli is None else round(cli, 2)} loadavg={la}", file=sys.stderr)
EOF
}
run_load() { # name to to_host in_flight rep server_pids... [-- extra args]
    local name=$1 to=$2 host=$3 n=$4 rep=$5; shift 5
    local args=() extra=() p
    while [[ $# -gt 0 && $1 != -- ]]; do args+=(--server-pid "$1"); shift; done
    [[ $# -gt 0 ]] && { shift; extra=("$@"); }
    local la; la="$(cut -d' ' -f1-3 /proc/loadavg)"
    local f="$OUT/$name-$n-$rep.json"
    # shellcheck disable=SC2046
    run_fg $(load_cmd "$to" "$host" "$n" "${args[@]}" "${extra[@]}") >"$f" 2>"$OUT/$name-$n-$rep.err"
    annotate "$f" "$la" "$name"
}
# Two load processes of n/2 in flight each at once; each report kept.
run_load2() { # name to to_host in_flight rep server_pid extra...
    local name=$1 to=$2 host=$3 n=$4 rep=$5 pid=$6; shift 6
    local half=$(( n / 2 > 0 ? n / 2 : 1 )) la; la="$(cut -d' ' -f1-3 /proc/loadavg)"
    local a b
    # shellcheck disable=SC2046
    $(load_cmd "$to" "$host" "$half" --server-pid "$pid" "$@") >"$OUT/$name-$n-$rep-1.json" 2>/dev/null &
    a=$!; PIDS+=("$a")
    # shellcheck disable=SC2046
    $(load_cmd "$to" "$host" "$half" --server-pid "$pid" "$@") >"$OUT/$name-$n-$rep-2.json" 2>/dev/null &
    b=$!; PIDS+=("$b")
    wait "$a" "$b"
    annotate "$OUT/$name-$n-$rep-1.json" "$la" "$name"
    annotate "$OUT/$name-$n-$rep-2.json" "$la" "$name"
}

for rep in $(seq "$REPS"); do
    for n in $INFLIGHT; do
        if wanted echo; then run_load echo "127.0.0.1:$P_ECHO" echo.server.net "$n" "$rep" "$ECHO_PID"; fi
        if wanted proxy; then run_load proxy "127.0.0.1:$P_PROXY" dra.ours.net "$n" "$rep" "$PROXY_PID" "$ECHO_PID"; fi
        if [[ -n $POLL_PID ]] && wanted proxypoll; then run_load proxypoll "127.0.0.1:$P_POLL" dra.poll.net "$n" "$rep" "$POLL_PID" "$ECHO_PID"; fi
        if wanted relay; then run_load relay "127.0.0.1:$P_RELAY" dra.relay0.net "$n" "$rep" "$RELAY_PID" "$ECHO_PID"; fi
        if wanted busy; then run_load busy "127.0.0.1:$P_BUSY" dra.busy.net "$n" "$rep" "$BUSY_PID" "$ECHO_PID"; fi
        if [[ -n $WIRE_PID ]] && wanted wire; then
            run_load wire "127.0.0.1:$P_WIRE" echo.server.net "$n" "$rep" "$WIRE_PID" "$ECHO_PID"
        fi
        if [[ $HAVE_FD == 1 ]] && wanted fd; then
            run_load fd "127.0.0.1:$P_FD" dra.relay.net "$n" "$rep" "$FD_PID" "$ECHO_PID"
        fi
        if wanted redirect; then
            run_load redirect "127.0.0.1:$P_REDIR" dra.redir.net "$n" "$rep" "$REDIR_PID" -- --redirects count
        fi
        if wanted redirect2; then
            run_load2 redirect2 "127.0.0.1:$P_REDIR" dra.redir.net "$n" "$rep" "$REDIR_PID" --redirects count
        fi
        if wanted echocount; then
            run_load echocount "127.0.0.1:$P_ECHO" echo.server.net "$n" "$rep" "$ECHO_PID" -- --redirects count
        fi
        if wanted pcrf; then run_load pcrf "127.0.0.1:$P_PCRF" pcrf.home.test "$n" "$rep" "$PCRF_PID"; fi
        if wanted pcrfproxy; then
            run_load pcrfproxy "127.0.0.1:$P_PPROXY" dra.home.test "$n" "$rep" "$PPROXY_PID" "$PCRF_PID"
        fi
    done
done

# What the DRAs hold at the end (sessions cut off mid-way by the end of each run stay bound).
for pid in "$PROXY_PID" "$REDIR_PID" "$PPROXY_PID" ${POLL_PID:+"$POLL_PID"}; do
    log "dra pid $pid: VmRSS $(awk '/VmRSS/{print $2, $3}' "/proc/$pid/status")"
done

cleanup

python3 - "$OUT" "$MACHINE" "$DURATION" "$REPS" <<'EOF'
import glob, json, os, re, statistics, sys
out, machine, duration, reps = sys.argv[1:5]
med = statistics.median
print(f"\nMachine: {machine}; {reps} repetitions of {duration} s each, medians; raw results in {out}")
# (setup, in flight) -> rep -> reports (two for redirect2)
runs = {}
for f in glob.glob(os.path.join(out, "*.json")):
    m = re.match(r"([a-z0-9]+)-(\d+)-(\d+)(?:-\d)?\.json$", os.path.basename(f))
    if not m:
        continue
    d = json.load(open(f))
    runs.setdefault((m[1], int(m[2])), {}).setdefault(m[3], []).append(d)
def cpu(d, i):
    s = d["server_cpu"]
    return s[i]["cpu_us_per_request"] if s else None
def rep_figures(ds):
    tps = sum(d["tps"] for d in ds)
    red = sum(d["redirects_per_s"] for d in ds)
    lat = [d["latency_us"] for d in ds if d.get("latency_us")]
    agent = cpu(ds[0], 0) if ds[0]["server_cpu"] else None
    # Two processes at once: the agent's CPU in the first one's window was spent on the
    # answers of both.
    if len(ds) > 1 and agent is not None:
        agent = agent * ds[0]["answers"] / max(1, sum(d["answers"] for d in ds))
    return {
        "tps": tps, "red": red,
        "p50": med([l["p50"] for l in lat]) if lat else float("nan"),
        "p99": med([l["p99"] for l in lat]) if lat else float("nan"),
        "agent": agent,
        "last": ds[0]["server_cpu"][-1]["cpu_us_per_request"] if len(ds[0]["server_cpu"]) > 1 else None,
        "cli": med([d["client_cpu_us_per_request"] or float("nan") for d in ds]),
        "err": sum(d["errors"] for d in ds),
        "codes": {k: sum(x["result_codes"].get(k, 0) for x in ds) for d in ds for k in d["result_codes"]},
        "load": ds[0]["loadavg"].split()[0],
    }
def summary(s, n):
    reps_ = runs.get((s, n))
    if not reps_:
        return None
    rs = [rep_figures(ds) for ds in reps_.values()]
    m = lambda k: med([r[k] for r in rs if r[k] is not None]) if any(r[k] is not None for r in rs) else None
    codes = {}
    for r in rs:
        for k, v in r["codes"].items():
            codes[k] = codes.get(k, 0) + v
    return {"tps": m("tps"), "red": m("red"), "p50": m("p50"), "p99": m("p99"), "agent": m("agent"),
            "last": m("last"), "cli": m("cli"), "err": sum(r["err"] for r in rs), "codes": codes,
            "load": " / ".join(r["load"] for r in rs)}
ns = sorted({n for (_, n) in runs})
labels = (("echo", "none (load → echo)"), ("proxy", "dra proxy → echo"),
          ("proxypoll", "dra proxy, busy-poll → echo"),
          ("relay", "diameter-bench relay → echo"), ("busy", "diameter-bench relay, busy-poll → echo"),
          ("wire", "tcp_wire → echo"), ("fd", "freeDiameterd relay → echo"),
          ("redirect", "dra redirect (3006 counted)"), ("redirect2", "dra redirect, two clients"),
          ("echocount", "none, redirect client (load --redirects count → echo)"),
          ("pcrf", "none (load → pcrf)"), ("pcrfproxy", "dra proxy → pcrf"))
f2 = lambda x: "—" if x is None else f"{x:.2f}"
print("\n| in flight | set-up | TPS | redirects/s | p50 µs | p99 µs | agent CPU µs/txn | server CPU µs/txn | client CPU µs/txn | errors | result codes | loadavg (1 min) |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
for n in ns:
    for s, label in labels:
        e = summary(s, n)
        if e:
            # Without an agent, the first --server-pid is the server itself.
            if s in ("echo", "pcrf", "echocount"):
                agent, server = "—", f2(e["agent"])
            else:
                agent, server = f2(e["agent"]), f2(e["last"])
            codes = " ".join(f"{k}:{v}" for k, v in sorted(e["codes"].items()))
            print(f"| {n} | {label} | {e['tps']:,.0f} | {e['red']:,.0f} | {e['p50']:.0f} | {e['p99']:.0f} | {agent} | {server} | {f2(e['cli'])} | {e['err']} | {codes} | {e['load']} |")
print("\n| in flight | proxy TPS ÷ freeDiameterd | proxy, busy-poll TPS ÷ freeDiameterd | relay TPS ÷ freeDiameterd | busy relay TPS ÷ freeDiameterd | proxy CPU/txn ÷ freeDiameterd | added p50 µs: proxy (over echo) | freeDiameterd | dra proxy over pcrf |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for n in ns:
    o, f, e, b = summary("proxy", n), summary("fd", n), summary("echo", n), summary("busy", n)
    q, rl = summary("proxypoll", n), summary("relay", n)
    p, pp = summary("pcrf", n), summary("pcrfproxy", n)
    r = lambda a, k: f"{a[k]/f[k]:.2f}" if a and f and a[k] and f[k] else "—"
    add = lambda a, base: f"{a['p50']-base['p50']:+.0f}" if a and base else "—"
    print(f"| {n} | {r(o, 'tps')}× | {r(q, 'tps')}× | {r(rl, 'tps')}× | {r(b, 'tps')}× | {r(o, 'agent')} | {add(o, e)} | {add(f, e)} | {add(pp, p)} |")
EOF
