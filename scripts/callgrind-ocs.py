#!/usr/bin/env python3
"""Instructions per CCR of an `ocs` build under callgrind, per thread (deterministic, unlike
times on the shared machine; BENCHMARKS.md "OCS", "Store work per CCR").

The ocs of BIN (bench-ocs.py's configuration: the demo plus 1,000 subscribers; durable or
not) runs under `valgrind --tool=callgrind --separate-threads=yes`; once it listens its
counters are zeroed (`callgrind_control -z`), `pcef-sim load` (64 in flight, 1,000 CCR-U
per session, 100 octets each) runs for --duration seconds, the counters are dumped
(`callgrind_control -d`) and the ocs stopped. Prints the CCRs answered and each thread's Ir
per CCR; the store's writer thread is the one running `ocs::store::redb::writer`.

    scripts/callgrind-ocs.py --bin target/release [--durable] [--duration 15] [--json F]

pcef-sim is taken from --client-bin (default: --bin). Everything started here is stopped by
PID.
"""
import argparse
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("bench_ocs", os.path.join(HERE, "bench-ocs.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def totals(path):
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", path], capture_output=True, text=True).stdout
    m = re.search(r"^([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", out, re.M)
    if not m:
        m = re.search(r"^([\d,]+)\s+PROGRAM TOTALS", out, re.M)
    ir = int(m.group(1).replace(",", "")) if m else 0
    return ir, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--client-bin")
    ap.add_argument("--durable", action="store_true")
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--in-flight", type=int, default=64)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json")
    args = ap.parse_args()
    client = args.client_bin or args.bin
    d = tempfile.mkdtemp(prefix="cg-ocs-", dir=args.workdir)
    port, metrics = bench.free_ports(2)
    cfg = bench.config(d, args.durable)
    cmd = [
        "valgrind", "--tool=callgrind", "--separate-threads=yes",
        f"--callgrind-out-file={d}/cg.%p",
        os.path.join(args.bin, "ocs"), "--config", cfg,
        "--listen", f"127.0.0.1:{port}", "--metrics", f"127.0.0.1:{metrics}",
        "--data", os.path.join(d, "ocs.redb"),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(d, "ocs.log"), "w"),
                            env={**os.environ, "RUST_LOG": "warn"})
    try:
        bench.wait_listening(port, timeout=120)
        time.sleep(1)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True,
                       capture_output=True)
        load = subprocess.run([
            os.path.join(client, "pcef-sim"), "load", "--to", f"127.0.0.1:{port}",
            "--subscribers", str(bench.ACCOUNTS), "--imsi-start", f"{bench.IMSI0:015d}",
            "--in-flight", str(args.in_flight), "--updates", "1000", "--used-octets", "100",
            "--duration", str(args.duration), "--warmup", "0", "--json",
        ], capture_output=True, text=True, check=True)
        r = json.loads(load.stdout)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True,
                       capture_output=True)
        time.sleep(1)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    answers = r["answers"]
    dumps = sorted(glob.glob(f"{d}/cg.{proc.pid}.1-*"))
    threads = []
    for f in dumps:
        ir, text = totals(f)
        writer = re.search(r"ocs::store::redb::writer \[", text) is not None
        threads.append({"file": os.path.basename(f), "ir": ir, "writer": writer,
                        "ir_per_ccr": round(ir / answers) if answers else None})
    total = sum(t["ir"] for t in threads)
    res = {
        "bin": args.bin, "durable": args.durable, "answers": answers,
        "tps_under_valgrind": round(r["tps"]),
        "update_share": round(r["by_type"]["update"]["requests"] / max(r["requests"], 1), 3),
        "result_codes": r["result_codes"], "errors": r["errors"],
        "all_threads_ir_per_ccr": round(total / answers) if answers else None,
        "writer_ir_per_ccr": sum(t["ir_per_ccr"] or 0 for t in threads if t["writer"]),
        "threads": threads, "dir": d,
    }
    print(json.dumps(res, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
