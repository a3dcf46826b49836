#!/usr/bin/env python3
"""perf/bench_memory_return.py — does memory go back after a flood?

For each server binary (side by side, in one run): start it (--shards 2
--echo), warm it, read its RSS (base); then --flooders clients each flood
pings without reading (they are closed 1008 at their queue cap) while
--holders clients each hold an unfinished 1 MiB /echo message; read the
peak; everyone leaves; RSS is read every second for --settle seconds.

    .venv/bin/python perf/bench_memory_return.py --server-bin /tmp/rc/bin/ringcast
    .venv/bin/python perf/bench_memory_return.py --server-bin A,B,C   # variants side by side

Prints one row per binary: base, peak, and RSS 1/5/10/30 s after, in MB.
Loopback only; bounded in time (about 10 s + --settle per binary).
"""
import argparse
import base64
import os
import socket
import subprocess
import sys
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def ws(port, path):
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        d = c.recv(4096)
        if not d:
            raise RuntimeError("no handshake answer")
        head += d
    return c


def flood(c, seconds):
    """Masked empty pings, never reading, until the server stops taking them."""
    ping = bytes([0x89, 0x80, 1, 2, 3, 4]) * 20000
    c.setblocking(False)
    t0 = last = time.time()
    while time.time() - t0 < seconds:
        try:
            c.send(ping)
            last = time.time()
        except BlockingIOError:
            if time.time() - last > 1:
                return
            time.sleep(0.01)
        except OSError:
            return


def run(binary, a):
    port, admin = free_port(), free_port()
    p = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
                          "--shards", "2", "--echo"] + a.server_arg, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.time() > deadline or p.poll() is not None:
                    raise RuntimeError(f"{binary} did not start")
                time.sleep(0.05)
        for _ in range(20):
            ws(port, "/ws").close()
        time.sleep(1)
        base = rss_mb(p.pid)
        socks, threads = [], []
        for _ in range(a.flooders):
            c = ws(port, "/ws")
            socks.append(c)
            t = threading.Thread(target=flood, args=(c, 6))
            t.start()
            threads.append(t)
        for _ in range(a.holders):
            c = ws(port, "/echo")
            socks.append(c)
            size = 1 << 20  # binary frame of 1 MiB announced, all but its last byte sent
            c.sendall(bytes([0x82, 0xFF]) + size.to_bytes(8, "big") + b"\0\0\0\0" + b"\0" * (size - 1))
        peak = rss_mb(p.pid)
        for t in threads:
            t.join()
            peak = max(peak, rss_mb(p.pid))
        for c in socks:
            c.close()
        after = []
        for _ in range(a.settle):
            time.sleep(1)
            after.append(rss_mb(p.pid))
        return base, peak, after
    finally:
        p.terminate()
        p.wait(15)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server-bin", default="zig-out/bin/ringcast", help="comma-separated binaries")
    ap.add_argument("--server-arg", action="append", default=[], help="extra server flag (repeatable)")
    ap.add_argument("--flooders", type=int, default=100)
    ap.add_argument("--holders", type=int, default=60)
    ap.add_argument("--settle", type=int, default=30)
    a = ap.parse_args()
    print(f"{'server':40} {'base':>6} {'peak':>6} {'1 s':>6} {'5 s':>6} {'10 s':>6} {'end':>6}   (RSS, MB)")
    for b in a.server_bin.split(","):
        base, peak, after = run(b, a)
        pick = lambda i: after[min(i, len(after) - 1)]
        print(f"{b:40} {base:6.1f} {peak:6.1f} {pick(0):6.1f} {pick(4):6.1f} {pick(9):6.1f} {after[-1]:6.1f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
