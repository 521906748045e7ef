#!/usr/bin/env python3
"""Instructions per message of every codec operation, two checkouts side by side (A/B):

    scripts/codec-instructions.py OLD_CHECKOUT NEW_CHECKOUT [--skip-build] [--only VECTOR]

Each checkout is built with its own target dir (CHECKOUT/target, CARGO_INCREMENTAL=0,
release) after NEW's `diameter-codec/examples/instructions.rs` and the writer it shares with
the criterion bench (`diameter-codec/benches/support/`) are copied into OLD, so both sides
run the same operation code. Then for every vector and operation, alternating OLD and NEW,
the example runs under `valgrind --tool=callgrind` 1000 and 3000 times; the cost per message
is (total(3000) - total(1000)) / 2000, which takes out start-up and dictionary loading.
Prints a Markdown table: OLD, NEW, the change, and whether NEW is at or below OLD.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

VECTORS = ["gy_ccr_u", "gx_cca_5_rules", "cer"]
OPS = ["decode", "validate", "decode+validate", "encode", "write"]
SHARED = [
    "diameter-codec/examples/instructions.rs",
    "diameter-codec/benches/support/write_gy_ccr_u.rs",
]


def sync_example(old, new):
    """Copies the counting example and its shared writer from NEW into OLD."""
    for rel in SHARED:
        dst = os.path.join(old, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(os.path.join(new, rel), dst)


def build(checkout):
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(checkout, "target"), CARGO_INCREMENTAL="0")
    subprocess.run(
        ["cargo", "build", "--release", "-p", "diameter-codec", "--example", "instructions"],
        cwd=checkout,
        env=env,
        check=True,
    )
    return os.path.join(checkout, "target", "release", "examples", "instructions")


def total(binary, vector, op, n, tmp):
    """Instructions of one run of `binary VECTOR OP N` (callgrind's totals line)."""
    out = os.path.join(tmp, "cg.out")
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, vector, op, str(n)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with open(out) as f:
        for line in f:
            m = re.match(r"(?:totals|summary):\s+(\d+)", line)
            if m:
                os.remove(out)
                return int(m.group(1))
    raise RuntimeError(f"no totals in callgrind output of {binary} {vector} {op} {n}")


def per_message(binary, vector, op, tmp):
    return (total(binary, vector, op, 3000, tmp) - total(binary, vector, op, 1000, tmp)) / 2000


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--skip-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--only", choices=VECTORS, help="one vector")
    args = ap.parse_args()
    old, new = os.path.abspath(args.old), os.path.abspath(args.new)
    sync_example(old, new)
    bins = {}
    for side, checkout in (("old", old), ("new", new)):
        bins[side] = (
            os.path.join(checkout, "target", "release", "examples", "instructions")
            if args.skip_build
            else build(checkout)
        )

    def rev(c):
        r = subprocess.run(["git", "-C", c, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "-C", c, "status", "--porcelain", "--untracked-files=no", "--", "diameter-codec/src"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return r.stdout.strip() + ("+dirty" if dirty else "")

    print(f"OLD {old} at {rev(old)}; NEW {new} at {rev(new)}; load average {os.getloadavg()[0]:.2f}")
    print()
    print("| vector | operation | OLD | NEW | NEW − OLD | change | NEW ≤ OLD |")
    print("|---|---|---:|---:|---:|---:|---|")
    worse = 0
    with tempfile.TemporaryDirectory() as tmp:
        for vector in [args.only] if args.only else VECTORS:
            for op in OPS:
                if op == "write" and vector != "gy_ccr_u":
                    continue
                a = per_message(bins["old"], vector, op, tmp)
                b = per_message(bins["new"], vector, op, tmp)
                ok = b <= a
                worse += not ok
                # Rounded first, so that equal counts print as +0.0, not -0.0.
                diff = round(b - a, 1) + 0.0
                print(
                    f"| {vector} | {op} | {a:,.1f} | {b:,.1f} | {diff:+,.1f} | {100 * diff / a:+.2f} % | {'yes' if ok else 'NO'} |",
                    flush=True,
                )
    print()
    print(f"load average at the end {os.getloadavg()[0]:.2f}; cells where NEW costs more: {worse}")
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
