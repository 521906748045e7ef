#!/usr/bin/env bash
# Instructions per transaction of one diameter-bench echo or relay, counted by callgrind, which
# the host's load does not change (wall-clock and CPU figures do):
#
#   scripts/callgrind-node.sh echo|relay BIN [IN_FLIGHT] [SHORT_S] [LONG_S] [OUT_DIR]
#
# BIN runs under valgrind --tool=callgrind twice, loaded by this checkout's
# target/release/diameter-bench for SHORT_S (default 3) and LONG_S (default 8) seconds; the
# start-up and shutdown cost is the same in both, so instructions per answer are
#   (total of the long run − total of the short run) ÷ (answers long − answers short).
# For a relay, the echo server behind it is this checkout's binary too (not counted). The
# callgrind files stay in OUT_DIR (default: a temporary directory, removed) for
# callgrind_annotate. Every process started here is stopped by PID.
set -euo pipefail
mode=$1; bin=$2; inflight=${3:-256}; short=${4:-3}; long=${5:-8}; keep=${6:-}
here="$(cd "$(dirname "$0")/.." && pwd)"
tool="$here/target/release/diameter-bench"
out=${keep:-$(mktemp -d)}
mkdir -p "$out"
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  if [ -z "$keep" ]; then rm -rf "$out"; fi
}
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# One counted run of `secs` seconds: writes "TOTAL ANSWERS" to $out/$tag.res.
run() {
  local secs=$1 tag=$2 p e host target
  p=$(port)
  if [ "$mode" = relay ]; then
    e=$(port)
    "$tool" echo --listen "127.0.0.1:$e" --host echo.cg > /dev/null 2>&1 & pids+=($!)
    sleep 0.5
    valgrind --tool=callgrind --callgrind-out-file="$out/$tag.cg" "$bin" relay \
      --listen "127.0.0.1:$p" --host relay.cg --to "127.0.0.1:$e" --to-host echo.cg \
      > "$out/$tag.log" 2>&1 & pids+=($!)
    host=relay.cg
  else
    valgrind --tool=callgrind --callgrind-out-file="$out/$tag.cg" "$bin" echo \
      --listen "127.0.0.1:$p" --host echo.cg > "$out/$tag.log" 2>&1 & pids+=($!)
    host=echo.cg
  fi
  target=${pids[-1]}
  for _ in $(seq 1 100); do
    python3 -c "import socket;socket.create_connection(('127.0.0.1',$p),timeout=0.2).close()" \
      2> /dev/null && break
    sleep 0.2
  done
  "$tool" load --to "127.0.0.1:$p" --to-host "$host" --in-flight "$inflight" \
    --duration "$secs" --warmup 0 --json > "$out/$tag.json"
  # SIGINT: the node disconnects its peers and exits, and callgrind writes its counts.
  kill -INT "$target"; wait "$target" || true
  if [ "$mode" = relay ]; then kill "${pids[-2]}" 2> /dev/null || true; fi
  local total answers
  total=$(callgrind_annotate "$out/$tag.cg" 2> /dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  answers=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['answers'])" "$out/$tag.json")
  echo "$total $answers" > "$out/$tag.res"
}

run "$short" short
run "$long" long
read -r t1 n1 < "$out/short.res"
read -r t2 n2 < "$out/long.res"
python3 - "$t1" "$n1" "$t2" "$n2" "$mode" "$inflight" << 'PY'
import sys
t1, n1, t2, n2 = map(int, sys.argv[1:5])
print(f"{sys.argv[5]} at {sys.argv[6]} in flight: {(t2 - t1) / (n2 - n1):.0f} instructions per "
      f"transaction ({n2 - n1} answers between the runs)")
PY
