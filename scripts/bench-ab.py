#!/usr/bin/env python3
"""A/B benchmark of two diameter-bench binaries (an older build against a newer one) in one
sitting, runs interleaved so that both see the same machine:

    echo A, echo B:   diameter-bench load (B) -> diameter-bench echo (A or B)
    relay A, relay B: diameter-bench load (B) -> diameter-bench relay (A or B) -> echo (B)

The load client is always B's, so only the server or relay under test differs. Prints, per
scenario and in-flight count, the medians of throughput, p50/p99 latency and CPU per
transaction of the process under test, and the B/A ratios.

    scripts/bench-ab.py OLD_BIN NEW_BIN [--reps 3] [--duration 5] [--in-flight 1 8 64 256]

Every process started here is stopped by PID before it exits.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time


def free_ports(n):
    """`n` distinct loopback ports that were free a moment ago (all held open while chosen,
    so that no two are the same)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_listening(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Servers:
    def __init__(self):
        self.procs = []

    def start(self, args):
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="the older diameter-bench binary")
    ap.add_argument("b", help="the newer diameter-bench binary")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--in-flight", type=int, nargs="+", default=[1, 8, 64, 256])
    args = ap.parse_args()

    servers = Servers()
    try:
        under_test = {}
        ports = iter(free_ports(5))
        echo_b = next(ports)
        servers.start([args.b, "echo", "--listen", f"127.0.0.1:{echo_b}"])
        wait_listening(echo_b)
        for name, binary in (("A", args.a), ("B", args.b)):
            port = next(ports)
            host = f"echo-{name.lower()}.bench"
            p = servers.start([binary, "echo", "--listen", f"127.0.0.1:{port}",
                               "--host", host])
            under_test[f"echo {name}"] = (port, host, p)
            # Each relay its own identity: two peers with one Origin-Host are one peer to
            # the echo server behind them (RFC 6733 §5.6.4).
            port, host = next(ports), f"relay-{name.lower()}.bench"
            p = servers.start([binary, "relay", "--listen", f"127.0.0.1:{port}", "--host", host,
                               "--to", f"127.0.0.1:{echo_b}", "--to-host", "echo.bench"])
            under_test[f"relay {name}"] = (port, host, p)
        for port, _, _ in under_test.values():
            wait_listening(port)
        time.sleep(1)

        results = {}
        for rep in range(args.reps):
            for n in args.in_flight:
                for scenario, (port, host, proc) in under_test.items():
                    if proc.poll() is not None:
                        raise RuntimeError(f"{scenario} exited with {proc.returncode}")
                    pid = proc.pid
                    out = subprocess.run(
                        [args.b, "load", "--to", f"127.0.0.1:{port}", "--to-host", host,
                         "--in-flight", str(n), "--duration", str(args.duration),
                         "--warmup", str(args.warmup), "--server-pid", str(pid), "--json"],
                        capture_output=True, text=True, check=True)
                    d = json.loads(out.stdout)
                    if d["errors"] or d["non_success"]:
                        raise RuntimeError(f"{scenario} n={n}: {d['errors']} errors, "
                                           f"{d['non_success']} answers other than 2001")
                    results.setdefault((scenario, n), []).append(d)
                    print(f"rep {rep} {scenario:8} n={n:<4} tps={d['tps']:.0f} "
                          f"p50={d['latency_us']['p50']} p99={d['latency_us']['p99']} "
                          f"cpu_us={d['server_cpu_us_per_txn'][0][1]} "
                          f"loadavg={os.getloadavg()[0]:.2f}", file=sys.stderr)
    finally:
        servers.stop()

    def med(rs, f):
        return statistics.median(f(r) for r in rs)

    print("| scenario | in flight | A TPS | B TPS | B/A | A p50/p99 µs | B p50/p99 µs "
          "| A CPU µs/txn | B CPU µs/txn |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in ("echo", "relay"):
        for n in args.in_flight:
            a, b = results[(f"{kind} A", n)], results[(f"{kind} B", n)]
            ta, tb = med(a, lambda r: r["tps"]), med(b, lambda r: r["tps"])
            row = [kind, n, f"{ta:,.0f}", f"{tb:,.0f}", f"{tb / ta:.2f}"]
            for rs in (a, b):
                row.append(f"{med(rs, lambda r: r['latency_us']['p50']):.0f} / "
                           f"{med(rs, lambda r: r['latency_us']['p99']):.0f}")
            for rs in (a, b):
                row.append(f"{med(rs, lambda r: r['server_cpu_us_per_txn'][0][1]):.2f}")
            print("| " + " | ".join(str(c) for c in row) + " |")


if __name__ == "__main__":
    main()
