#!/usr/bin/env bash
# Instructions per request of a `dra` build under callgrind (deterministic, unlike times on
# the shared machine): the DRA in MODE (proxy or redirect) in front of `diameter-bench echo`,
# `pcef-sim load --app gx --threads 1 --subscribers 2 --updates 14 --in-flight 16` through
# it for N1 and then N2 sessions (16 requests each); per request =
# (Ir at N2 - Ir at N1) / ((N2 - N1) * 16), so the start-up cancels out. Redirect mode: the
# client keeps each 3006 as its answer (--redirects count). NODE_EXTRA: lines added to the
# DRA's [node] table (e.g. 'validate = false').
#
# Usage: scripts/callgrind-dra.sh DRA_BIN proxy|redirect [N1=300] [N2=1300]
# Needs valgrind and release builds of pcef-sim and diameter-bench (CARGO_TARGET_DIR or
# target/). Everything started here is stopped by PID on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=$1 MODE=$2 N1=${3:-300} N2=${4:-1300}
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$(mktemp -d /tmp/callgrind-dra.XXXXXX)"
BENCH_NAME=callgrind-dra
# shellcheck source=lib/bench-common.sh
source "$ROOT/scripts/lib/bench-common.sh"

read -r P_ECHO P_DRA < <(free_ports 2)
"$TARGET/release/diameter-bench" echo --listen "127.0.0.1:$P_ECHO" --host echo.server.net \
    --realm bench --threads 1 >"$OUT/echo.log" 2>&1 &
PIDS+=("$!")
wait_for "$OUT/echo.log" "listening on" 10
cat >"$OUT/dra.toml" <<EOF
[node]
origin_host = "dra.cg.net"
origin_realm = "cg.net"
unknown_peer = "accept"
${NODE_EXTRA:-}

[[node.listen]]
addr = "127.0.0.1:$P_DRA"

[dra]
mode = "$MODE"
redirect_usage = "DONT_CACHE"
termination = "redirect"

[[dra.pcrf]]
host = "echo.server.net"
connect = "127.0.0.1:$P_ECHO"

[store]
kind = "memory"
EOF
extra=()
[[ $MODE == redirect ]] && extra=(--redirects count)

instructions() { # sessions
    rm -f "$OUT"/cg.out.*
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out.%p" "$BIN" \
        --config "$OUT/dra.toml" --threads 1 >"$OUT/dra.log" 2>&1 &
    local d=$!
    PIDS+=("$d")
    for _ in $(seq 150); do ss -ltn | grep -q ":$P_DRA " && break; sleep 0.2; done
    sleep 3 # its connection to the echo server
    "$TARGET/release/pcef-sim" load --app gx --to "127.0.0.1:$P_DRA" --to-host dra.cg.net \
        --dest-realm bench --host load.bench --realm client.net --threads 1 --subscribers 2 \
        --updates 14 --in-flight 16 --duration 600 --warmup 0 --sessions "$1" --timeout 30 \
        --json "${extra[@]}" >"$OUT/load-$1.json"
    kill -INT "$d"
    wait "$d" || true
    log "$1 sessions: $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['answers'], 'answers', d['result_codes'])" "$OUT/load-$1.json")"
    callgrind_annotate "$OUT"/cg.out.* 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}
a=$(instructions "$N1")
b=$(instructions "$N2")
echo "$BIN $MODE: Ir $a at $N1 sessions, $b at $N2 -> $(((b - a) / ((N2 - N1) * 16))) instructions per request (output in $OUT)"
