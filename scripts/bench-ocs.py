#!/usr/bin/env python3
"""OCS benchmarks with `pcef-sim load` over loopback (issue 11 point 9), in one sitting:

  fsync   the disk's fdatasync latency (4 KiB writes in the OCS's data directory) — the
          yardstick of a durable commit — measured before and after the load runs;
  ccru    H-OCS CCR-U/CCA with durable commits (redb, group commit) at --in-flight:
          TPS, CPU µs per CCR of the ocs process, p50/p99, and the mean group-commit batch
          size and commit time from the OCS's Prometheus metrics; --reps repetitions;
  nodur   the same with [store] durable = false (no fsync), one run, to show the fsync's
          share;
  fd      freeDiameterd (Debian 1.2.1) with scripts/fd_gy_server.c, a Gy server extension
          of our own that answers every CCR 2001 with a grant and keeps nothing (Debian ships
          no test_cc), under the same load as ccru, runs interleaved with ccru's;
  memory  a fresh OCS, --sessions sessions opened with CCR-I and left open (`--hold`):
          the ocs process's VmRSS growth and the data file's growth per live session.

    cargo build --release -p ocs -p pcef-sim
    scripts/bench-ocs.py [--bin target/release] [--reps 3] [--duration 20] [--in-flight 64]
                         [--sessions 100000] [--nice -5] [--store 'KEY = VALUE']
                         [--json out.json]

Load processes (the ocs and pcef-sim) run under `nice -n NICE` when permitted. The 1-minute
load average is printed with each figure. Every process started here is stopped by PID.
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ACCOUNTS = 1000
IMSI0 = 1010000100000  # 001010000100000 and up


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_listening(port, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port}")


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def nice_prefix(n):
    if n is None:
        return []
    try:
        subprocess.run(["nice", "-n", str(n), "true"], check=True, capture_output=True)
        return ["nice", "-n", str(n)]
    except (subprocess.CalledProcessError, FileNotFoundError):
        print(f"# nice -n {n} not permitted: running at normal priority", file=sys.stderr)
        return []


def config(dirname, durable, store_extra=()):
    """The demo configuration (ocs/examples/home.toml) with `durable` and ACCOUNTS more
    subscribers holding 10^12 octets each."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "ocs", "examples", "home.toml")) as f:
        text = f.read()
    text = text.replace("durable = true", f"durable = {'true' if durable else 'false'}")
    # The fold keys are the defaults; builds before 9feb53c refuse them (unknown keys), and
    # A/B runs compare against such builds.
    text = re.sub(r"(?m)^fold_(changes|interval) = .*\n", "", text)
    if store_extra:
        text = text.replace("[store]\n", "[store]\n" + "".join(f"{kv}\n" for kv in store_extra), 1)
    lines = [text]
    for i in range(ACCOUNTS):
        lines.append(
            f'[[account]]\nid = "bench-{i}"\nimsi = "{IMSI0 + i:015d}"\n'
            f"balance = {{ total-octets = 1000000000000 }}\n"
        )
    path = os.path.join(dirname, "bench.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


class Ocs:
    def __init__(self, args, durable):
        self.dir = tempfile.mkdtemp(prefix="bench-ocs-", dir=args.workdir)
        self.port, self.admin, self.metrics = free_ports(3)
        self.data = os.path.join(self.dir, "ocs.redb")
        cmd = args.nice + [
            os.path.join(args.bin, "ocs"),
            "--config", config(self.dir, durable, args.store),
            "--listen", f"127.0.0.1:{self.port}",
            "--admin", f"127.0.0.1:{self.admin}",
            "--metrics", f"127.0.0.1:{self.metrics}",
            "--data", self.data,
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, "ocs.log"), "w"),
            env={**os.environ, "RUST_LOG": "warn"},
        )
        wait_listening(self.port)
        wait_listening(self.metrics)

    def scrape(self):
        """(batch size sum, count, commit seconds sum, count) from /metrics."""
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5).read().decode()
        v = {}
        for line in body.splitlines():
            if line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) == 2 and parts[0].split("{")[0] in (
                "ocs_store_batch_size_sum", "ocs_store_batch_size_count",
                "ocs_store_commit_seconds_sum", "ocs_store_commit_seconds_count",
                "ocs_store_fold_seconds_sum", "ocs_store_fold_seconds_count",
            ):
                v[parts[0].split("{")[0]] = float(parts[1])
        return v

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class FdServer:
    """freeDiameterd with the fd_gy_server extension, Identity ocs.fd.test."""

    def __init__(self, args):
        self.dir = tempfile.mkdtemp(prefix="bench-fd-", dir=args.workdir)
        (self.port,) = free_ports(1)
        here = os.path.dirname(os.path.abspath(__file__))
        ext = os.path.join(self.dir, "fd_gy_server.fdx")
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", ext,
                        os.path.join(here, "fd_gy_server.c"), "-lfdcore", "-lfdproto"], check=True)
        with open(os.path.join(self.dir, "acl_wl.conf"), "w") as f:
            f.write("ALLOW_IPSEC pcef.sim\n")
        fdx = "/usr/lib/freeDiameter"
        conf = os.path.join(self.dir, "fd.conf")
        with open(conf, "w") as f:
            f.write(f"""Identity = "ocs.fd.test";
Realm = "home.test";
Port = {self.port};
SecPort = 0;
No_SCTP;
No_IPv6;
AppServThreads = 4;
LoadExtension = "{fdx}/dict_nasreq.fdx";
LoadExtension = "{fdx}/dict_dcca.fdx";
LoadExtension = "{fdx}/dict_dcca_3gpp.fdx";
LoadExtension = "{fdx}/acl_wl.fdx" : "{self.dir}/acl_wl.conf";
LoadExtension = "{ext}";
""")
        self.proc = subprocess.Popen(
            args.nice + ["freeDiameterd", "-c", conf], stdin=subprocess.DEVNULL,
            stdout=open(os.path.join(self.dir, "fd.log"), "w"), stderr=subprocess.STDOUT)
        wait_listening(self.port)

    def stop(self):
        Ocs.stop(self)


def fd_run(args):
    fd = FdServer(args)
    try:
        r = load(args, fd, [
            "--to-host", "ocs.fd.test",
            "--subscribers", str(ACCOUNTS), "--imsi-start", f"{IMSI0:015d}",
            "--in-flight", str(args.in_flight), "--updates", "1000", "--used-octets", "100",
            "--duration", str(args.duration), "--warmup", "2",
        ])
    finally:
        fd.stop()
    cpu = r["server_cpu"][0]
    return {
        "server": "freeDiameterd + fd_gy_server (no store)",
        "tps": round(r["tps"]),
        "server_cpu_us_per_ccr": round(cpu["cpu_us_per_request"], 1) if cpu["cpu_us_per_request"] else None,
        "server_cpu_percent": round(cpu["cpu_percent"]) if cpu["cpu_percent"] else None,
        "client_cpu_us_per_ccr": round(r["client_cpu_us_per_request"] or 0, 1),
        "p50_us": r["latency_us"]["p50"], "p99_us": r["latency_us"]["p99"],
        "p999_us": r["latency_us"]["p999"],
        "result_codes": r["result_codes"], "errors": r["errors"],
        "loadavg": loadavg(),
    }


def load(args, ocs, extra):
    cmd = args.nice + [
        os.path.join(args.bin, "pcef-sim"), "load",
        "--to", f"127.0.0.1:{ocs.port}",
        "--server-pid", str(ocs.proc.pid),
        "--json",
    ] + extra
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def fsync_yardstick(dirname, n=500):
    """fdatasync after a 4 KiB write into a file of 1 MiB: latency in µs (p50, p99, mean)
    and the CPU time of the calling thread per fdatasync (the kernel's work for it)."""
    path = os.path.join(dirname, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    lat = []
    cpu = 0.0
    try:
        block = b"x" * 4096
        for i in range(n):
            os.pwrite(fd, block, (i % 256) * 4096)
            t, c = time.perf_counter(), time.thread_time()
            os.fdatasync(fd)
            cpu += time.thread_time() - c
            lat.append((time.perf_counter() - t) * 1e6)
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    return {"p50_us": round(lat[len(lat) // 2]), "p99_us": round(lat[int(len(lat) * 0.99)]),
            "mean_us": round(statistics.mean(lat)), "cpu_us": round(cpu / n * 1e6, 1),
            "loadavg": loadavg()}


def ccru_run(args, durable):
    ocs = Ocs(args, durable)
    try:
        m0 = ocs.scrape()
        r = load(args, ocs, [
            "--subscribers", str(ACCOUNTS), "--imsi-start", f"{IMSI0:015d}",
            "--in-flight", str(args.in_flight), "--updates", "1000", "--used-octets", "100",
            "--duration", str(args.duration), "--warmup", "2",
        ])
        m1 = ocs.scrape()
    finally:
        ocs.stop()
    d = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1}
    cpu = r["server_cpu"][0]
    return {
        "durable": durable,
        "tps": round(r["tps"]),
        "server_cpu_us_per_ccr": round(cpu["cpu_us_per_request"], 1) if cpu["cpu_us_per_request"] else None,
        "server_cpu_percent": round(cpu["cpu_percent"]) if cpu["cpu_percent"] else None,
        "client_cpu_us_per_ccr": round(r["client_cpu_us_per_request"] or 0, 1),
        "p50_us": r["latency_us"]["p50"], "p99_us": r["latency_us"]["p99"],
        "p999_us": r["latency_us"]["p999"],
        "update_share": round(r["by_type"]["update"]["requests"] / max(r["requests"], 1), 3),
        "result_codes": r["result_codes"], "errors": r["errors"],
        "mean_batch": round(d["ocs_store_batch_size_sum"] / d["ocs_store_batch_size_count"], 1)
        if d.get("ocs_store_batch_size_count") else None,
        "commits_per_s": round(d["ocs_store_commit_seconds_count"] / (args.duration + 2))
        if d.get("ocs_store_commit_seconds_count") else None,
        "mean_commit_us": round(d["ocs_store_commit_seconds_sum"] / d["ocs_store_commit_seconds_count"] * 1e6)
        if d.get("ocs_store_commit_seconds_count") else None,
        "folds_per_s": round(d["ocs_store_fold_seconds_count"] / (args.duration + 2), 1)
        if d.get("ocs_store_fold_seconds_count") else None,
        "mean_fold_us": round(d["ocs_store_fold_seconds_sum"] / d["ocs_store_fold_seconds_count"] * 1e6)
        if d.get("ocs_store_fold_seconds_count") else None,
        "loadavg": loadavg(),
    }


def memory_run(args):
    ocs = Ocs(args, True)
    try:
        time.sleep(1)
        size0 = os.path.getsize(ocs.data)
        r = load(args, ocs, [
            "--subscribers", str(ACCOUNTS), "--imsi-start", f"{IMSI0:015d}",
            "--in-flight", "64", "--hold", "--sessions", str(args.sessions),
            "--duration", "3000", "--warmup", "0",
        ])
        time.sleep(1)
        with open(f"/proc/{ocs.proc.pid}/status") as f:
            rss1 = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        size1 = os.path.getsize(ocs.data)
    finally:
        ocs.stop()
    rss0 = r["server_cpu"][0]["rss_kib"][0]
    ok = r["by_type"]["initial"]["result_codes"].get("2001", 0)
    return {
        "sessions_open": ok, "result_codes": r["result_codes"],
        "setup_tps": round(r["tps"]),
        "rss_kib": [rss0, rss1], "rss_bytes_per_session": round((rss1 - rss0) * 1024 / max(ok, 1)),
        "data_file_bytes": [size0, size1],
        "data_bytes_per_session": round((size1 - size0) / max(ok, 1)),
        "loadavg": loadavg(),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--in-flight", type=int, default=64)
    ap.add_argument("--sessions", type=int, default=100000)
    ap.add_argument("--nice", type=int, default=-5)
    ap.add_argument("--workdir", default=None, help="where the data files go (the disk measured)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["ccru", "nodur", "fd", "memory"])
    ap.add_argument("--store", action="append", default=[], metavar="'KEY = VALUE'",
                    help="a line added to the OCS's [store] table, e.g. 'max_batch = 256'")
    ap.add_argument("--json")
    args = ap.parse_args()
    args.nice = nice_prefix(args.nice)
    args.workdir = args.workdir or tempfile.gettempdir()
    out = {"nice": " ".join(args.nice) or "none", "cpus": os.cpu_count()}
    out["fsync_before"] = fsync_yardstick(args.workdir)
    print("fsync before", out["fsync_before"], flush=True)
    if "ccru" not in args.skip:
        out["ccru"] = []
        out["fd"] = []
        for i in range(args.reps):
            r = ccru_run(args, True)
            print("ccru durable", r, flush=True)
            out["ccru"].append(r)
            if "fd" not in args.skip:
                r = fd_run(args)
                print("freeDiameter", r, flush=True)
                out["fd"].append(r)
    if "nodur" not in args.skip:
        out["nodur"] = ccru_run(args, False)
        print("ccru not durable", out["nodur"], flush=True)
    out["fsync_after"] = fsync_yardstick(args.workdir)
    print("fsync after", out["fsync_after"], flush=True)
    # The fsync yardstick's CPU per fdatasync, times the commits (each one fdatasync) per
    # CCR: what the durable runs spend in the kernel for the disk, and the rest.
    fsync_cpu = (out["fsync_before"]["cpu_us"] + out["fsync_after"]["cpu_us"]) / 2
    for r in out.get("ccru", []):
        if r.get("commits_per_s") and r.get("tps") and r.get("server_cpu_us_per_ccr"):
            share = fsync_cpu * r["commits_per_s"] / r["tps"]
            r["fsync_cpu_us_per_ccr"] = round(share, 1)
            r["server_cpu_us_per_ccr_without_fsync"] = round(r["server_cpu_us_per_ccr"] - share, 1)
            print("durable: fsync share", r["fsync_cpu_us_per_ccr"], "µs/CCR, the rest",
                  r["server_cpu_us_per_ccr_without_fsync"], flush=True)
    if "memory" not in args.skip:
        out["memory"] = memory_run(args)
        print("memory", out["memory"], flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
