#!/usr/bin/env python3
"""Per-hop latency of Diameter messages in a loopback capture, one request in flight.

Reads a pcap (tcpdump -i lo -w FILE tcp) and, for every pair of consecutive Diameter
messages of COMMAND (default 272, Credit-Control), the time from the first leaving to the
second leaving: with one request in flight this is what the node between them took (or the
peer, for a request and its answer). Transitions are named by direction and ports.

    scripts/hop-latency.py FILE [--command 272] [--ports 3870=home,3880=visited]

Only the Python standard library; IPv4 over Ethernet (Linux lo) or Linux cooked captures;
one message per TCP segment (true at one in flight).
"""
import argparse
import collections
import struct


def messages(path, command):
    with open(path, "rb") as f:
        header = f.read(24)
        magic = struct.unpack("<I", header[:4])[0]
        scale = 1e9 if magic == 0xA1B23C4D else 1e6
        link = struct.unpack("<I", header[20:24])[0]
        offset = {1: 14, 113: 16}.get(link, 0)
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            sec, frac, incl, _ = struct.unpack("<IIII", rec)
            data = f.read(incl)
            ip = data[offset:]
            if len(ip) < 20 or ip[0] >> 4 != 4:
                continue
            tcp = ip[(ip[0] & 15) * 4:]
            sport, dport = struct.unpack(">HH", tcp[:4])
            payload = tcp[(tcp[12] >> 4) * 4:]
            if len(payload) < 20 or payload[0] != 1:
                continue
            if int.from_bytes(payload[5:8], "big") != command:
                continue
            request = bool(payload[4] & 0x80)
            yield sec + frac / scale, sport, dport, request


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pcap")
    ap.add_argument("--command", type=int, default=272)
    ap.add_argument("--ports", default="", help="names of listening ports: 3870=home,...")
    ap.add_argument("--top", type=int, default=12)
    a = ap.parse_args()
    names = dict(p.split("=") for p in a.ports.split(",") if p)

    def side(port):
        return names.get(str(port), str(port))

    def label(m):
        _, s, d, req = m
        return f"{'request' if req else 'answer'} {side(s)}->{side(d)}"

    msgs = list(messages(a.pcap, a.command))
    gaps = collections.defaultdict(list)
    for x, y in zip(msgs, msgs[1:]):
        gaps[(label(x), label(y))].append((y[0] - x[0]) * 1e6)
    print(f"{len(msgs)} messages of command {a.command}")
    for (x, y), v in sorted(gaps.items(), key=lambda kv: -len(kv[1]))[: a.top]:
        v.sort()
        q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
        print(f"{len(v):6} p50 {q(0.5):7.1f} µs  p90 {q(0.9):7.1f} µs   {x}  =>  {y}")


if __name__ == "__main__":
    main()
