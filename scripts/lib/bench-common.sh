# Shared by the loopback benchmark scripts (bench-node.sh, bench-dra.sh); sourced, not run.
# Set BENCH_NAME (the log prefix) and OUT (the output folder) before sourcing.
#
# Every process a script starts is tracked by PID and stopped on exit (trap), whatever the
# exit path: long-running servers in PIDS, the current foreground measurement in CHILD (run
# in the background so that a signal is seen at once).

PIDS=()
CHILD=""
cleanup() {
    local pid
    if [[ -n "$CHILD" ]]; then
        kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
        CHILD=""
    fi
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Wait up to 5 s for each, then SIGKILL that PID.
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$BENCH_NAME] $*" >&2; }

# Run a command as a tracked child and wait for it (so INT/TERM interrupt the wait).
run_fg() {
    local rc=0
    "$@" &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    return "$rc"
}

# Wait until `file` holds a line matching `pattern`, at most `timeout_s` seconds.
wait_for() { # file pattern timeout_s
    local i
    for i in $(seq $(($3 * 10))); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    log "timeout waiting for '$2' in $1"; cat "$1" >&2 || true
    return 1
}

# N free TCP ports on one line (bound on 0.0.0.0: the Debian freeDiameterd listens on all
# addresses; all held open while chosen, so no two are the same).
free_ports() { # n
    python3 - "$1" <<'PY'
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss:
    s.bind(("0.0.0.0", 0))
print(*[s.getsockname()[1] for s in ss])
for s in ss:
    s.close()
PY
}

# freeDiameterd as a relay (dra.relay.net, realm relay.net) on `port` in front of the echo
# server echo.server.net on `echo_port`, accepting the load client load.bench: writes
# $OUT/freeDiameter.conf and its ACL file. Debian's freeDiameter 1.2.1 has no
# IncomingQueueLimit/OutgoingQueueLimit/LocalQueueLimit keywords (its parser rejects them);
# its queue sizes are built in.
fd_relay_conf() { # port echo_port
    local ext=/usr/lib/freeDiameter
    echo 'ALLOW_IPSEC load.bench' >"$OUT/acl_wl.conf"
    cat >"$OUT/freeDiameter.conf" <<CONF
Identity = "dra.relay.net";
Realm    = "relay.net";
Port = $1;
SecPort = 0;
No_SCTP;
No_IPv6;
AppServThreads = 4;
LoadExtension = "$ext/dict_nasreq.fdx";
LoadExtension = "$ext/dict_dcca.fdx";
LoadExtension = "$ext/dict_dcca_3gpp.fdx";
LoadExtension = "$ext/acl_wl.fdx" : "$OUT/acl_wl.conf";
ConnectPeer = "echo.server.net" { ConnectTo = "127.0.0.1"; Port = $2; No_TLS; No_SCTP; };
CONF
}
