#!/usr/bin/env python3
"""Summarises a heaptrack profile's peak memory consumers, per socket.

    python3 scripts/heap-top.py PROFILE.zst SOCKETS [N]

Runs `heaptrack_print` (Debian's heaptrack package) and prints the N (default 10)
allocation sites holding the most memory at the peak, each named by the first frame of
ours (phx_server, phx_protocol, the floor) or, failing that, of a dependency that is not
the allocator or the runtime's spawn machinery, with bytes per socket.
"""
import re
import subprocess
import sys

OURS = ("phx_server::", "phx_protocol::", "floor_server::", "conformance_server::")
PLUMBING = ("alloc::", "_RNv", "std::", "core::", "hashbrown::", "<alloc", "__rust", "_rdl",
            "tokio::runtime::task", "tokio::runtime::scheduler", "tokio::task::spawn",
            "tokio::runtime::context", "tokio_util::task", "bytes::bytes_mut::BytesMut::with_capacity",
            "bytes::bytes_mut::BytesMut::reserve", "_$LT$alloc", "_$LT$core")


def demangled(frame):
    return frame.replace("$LT$", "<").replace("$GT$", ">").replace("$u20$", " ").replace(
        "$C$", ",").replace("$u7b$", "{").replace("$u7d$", "}").replace("..", "::")


def name_of(frames):
    cleaned = [re.sub(r"::h[0-9a-f]{16}$", "", demangled(f)) for f in frames]
    for f in cleaned:
        if any(o in f for o in OURS):
            return f
    for f in cleaned:
        if not f.startswith(PLUMBING):
            return f
    return cleaned[-1] if cleaned else "?"


def main():
    profile, sockets = sys.argv[1], int(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    out = subprocess.run(
        ["heaptrack_print", "-f", profile, "--print-peaks", "1", "--print-allocators", "0",
         "--print-temporary", "0", "--print-leaks", "0",
         "--peak-limit", "20", "--sub-peak-limit", "200"],
        capture_output=True, text=True, check=True).stdout
    entries = []
    current = None
    for line in out.splitlines():
        m = re.match(r"^\s*([\d.]+)([KMG]?)B? consumed over (\d+) calls from:?", line)
        m = re.match(r"^(\s*)([\d.]+)([KMG]?) consumed over (\d+) calls from", line)
        if m:
            scale = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}[m.group(3)]
            current = [float(m.group(2)) * scale, int(m.group(4)), []]
            entries.append(current)
            continue
        m = re.match(r"^\s+(\S.*)$", line)
        if current is not None and m and not line.strip().startswith(("at ", "in ")):
            current[2].append(m.group(1).strip())
    peak = re.search(r"peak heap memory consumption: ([\d.]+)([KMG]?)", out)
    merged = {}
    for size, calls, frames in entries:
        key = name_of(frames)
        s, c = merged.get(key, (0.0, 0))
        merged[key] = (s + size, c + calls)
    if peak:
        total = float(peak.group(1)) * {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}[peak.group(2)]
        print(f"peak heap: {total / 1e6:.1f} MB = {total / sockets:.0f} B per socket ({sockets} sockets);"
              " below, each site's own peak (they peak together while every socket is open)")
    print("| bytes per socket | allocations per socket | site |\n|---|---|---|")
    for key, (size, calls) in sorted(merged.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"| {size / sockets:.0f} | {calls / sockets:.2f} | `{key[:110]}` |")


if __name__ == "__main__":
    main()
