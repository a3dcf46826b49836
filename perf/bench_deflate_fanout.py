#!/usr/bin/env python3
"""perf/bench_deflate_fanout.py — permessage-deflate at fan-out: 10,000 subscribers
of one demo topic, 1 KiB JSON messages, compression off against on.

Rows, in one run on the same machine (one server per row):
  off   ringcast --deflate=off,  loadgen without --deflate (nobody compresses)
  on    ringcast --deflate=on,   loadgen --deflate (every subscriber negotiates)
  half  ringcast --deflate=on,   loadgen --deflate-every 2 (every other subscriber)
each with  --listen 127.0.0.1:<free port> --admin-listen 127.0.0.1:<free port>
           --shards 2 --demo --demo-topics 1 --demo-size 1024 --demo-rate R --batch-ms 0
and        perf/build/loadgen --conns N --topics demo:BTC --warmup 3 --duration 10 [--deflate…]
measured like perf/bench_fanout.py (whose machinery this imports): server CPU
from /proc/PID/stat and the machine's busy time from /proc/stat at loadgen's
WINDOW START / WINDOW END, plus the server's /metrics counters (from its admin
listener) at the same two instants. One markdown table, everything in
perf/results/deflate-fanout-<timestamp>.json.

  wire bytes/delivery     bytes the subscribers read from their sockets in the
                          window (frame headers included) ÷ deliveries
  payload bytes/delivery  message bytes after inflating ÷ deliveries (= --size)
  server CPU-ns/delivery  server utime+stime, all threads, in the window ÷ deliveries
  compressions/s          ringcast_compressions_total delta ÷ window: the server
                          compresses each message once, whatever the subscriber count

loadgen inflates every compressed message with zlib, except that a worker
reuses its result for bytes identical to a payload it inflated recently (the
server sends the same bytes to every subscriber; see perf/loadgen.c):
--loadgen-arg=--no-inflate-cache runs zlib per delivery, which at 1M
deliveries/s needs more CPU than the machine has beside the server.

    ./dev.sh build && .venv/bin/python perf/bench_deflate_fanout.py
    .venv/bin/python perf/bench_deflate_fanout.py --rate 50 --modes off,on --level 6
"""
import argparse
import json
import os
import sys
import time

import bench_fanout as bf

MODES = {
    # name: (server --deflate, loadgen flags, label)
    "off": ("off", [], "off"),
    "on": ("on", ["--deflate"], "on, all compressed"),
    "half": ("on", ["--deflate-every", "2"], "on, half compressed"),
}
METRICS = ["ringcast_compressions_total", "ringcast_frames_deflated_total", "ringcast_compressed_deliveries_total",
           "ringcast_deliveries_total", "ringcast_bytes_sent_total", "ringcast_sends_total"]


def run_mode(a, mode, stamp):
    server_deflate, lg_flags, label = MODES[mode]
    port, admin_port = bf.free_port(), bf.free_port()
    while admin_port == port:
        admin_port = bf.free_port()
    # /metrics is read from the admin listener
    cmd = [a.server_bin, "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin_port}",
           "--shards", str(a.shards), "--demo",
           "--demo-topics", "1", "--demo-size", str(a.size), "--demo-rate", f"{a.rate:g}",
           "--batch-ms", str(a.batch_ms), f"--deflate={server_deflate}"]
    if a.level is not None:
        cmd.append(f"--deflate-level={a.level}")
    cmd += a.server_arg
    bf.log(f"mode {mode}")
    lg_json = bf.RESULTS / f"deflate-fanout-{stamp}-loadgen-{mode}.json"
    lg_cmd = bf.loadgen_cmd(a, port, lg_json, lg_flags + a.loadgen_arg)
    run = bf.measure(a, cmd, port, bf.RESULTS / f"deflate-fanout-{stamp}-server-{mode}.log", lg_cmd, lg_json,
                     metrics=METRICS, admin_port=admin_port)
    lg = run["loadgen"]
    d = lg["deliveries"]
    m = run["metrics_per_s"]
    run.update({
        "mode": mode,
        "label": label,
        "deflate_conns": lg.get("deflate_negotiated", 0),
        "wire_bytes_per_delivery": lg["wire_bytes"] / d if d else None,
        "payload_bytes_per_delivery": lg["payload_bytes"] / d if d else None,
        "compressions_per_s": m["ringcast_compressions_total"],
        # the server's own view, as a cross-check of the client's wire bytes
        "server_bytes_sent_per_delivery": (m["ringcast_bytes_sent_total"] / m["ringcast_deliveries_total"]
                                           if m["ringcast_bytes_sent_total"] is not None
                                           and m["ringcast_deliveries_total"] else None),
    })
    return run


def fmt_table(runs):
    def num(v, f="{:,.0f}"):
        return "–" if v is None else f.format(v)

    head = ("| mode | conns | deflate conns | deliveries/s | wire bytes/delivery | payload bytes/delivery "
            "| server CPU-ns/delivery | compressions/s | p50/p99 latency µs | lost | dup "
            "| server CPU % | loadgen CPU % | softirq CPU % | other CPU % |")
    lines = [head, "|---|" + "---:|" * (head.count("|") - 2)]
    for r in runs:
        lg = r["loadgen"]
        lat = lg["latency_us"]
        lines.append(
            f"| {r['label']} | {r['conns']} | {r['deflate_conns']} | {r['deliveries_per_s']:,.0f} | "
            f"{num(r['wire_bytes_per_delivery'], '{:,.1f}')} | {num(r['payload_bytes_per_delivery'], '{:,.1f}')} | "
            f"{num(r['server_cpu_ns_per_delivery'])} | {num(r['compressions_per_s'], '{:,.1f}')} | "
            f"{lat['p50']:,} / {lat['p99']:,} | {lg['lost']} | {lg['duplicated']} | "
            f"{bf.pct(r['server_cpu_pct'])} | {bf.pct(r['loadgen_cpu_pct'])} | {bf.pct(r['softirq_cpu_pct'])} | "
            f"{bf.pct(r['other_cpu_pct'])} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bf.add_common_args(ap, "messages/s published on the topic (default 100: 1M deliveries/s at 10K subscribers)")
    ap.add_argument("--size", type=int, default=1024, help="--demo-size BYTES (default 1024)")
    ap.add_argument("--modes", default="off,on,half", help="comma list of off, on, half (default all three)")
    ap.add_argument("--batch-ms", type=int, default=0, help="server --batch-ms (default 0)")
    ap.add_argument("--level", type=int, default=None, help="server --deflate-level (default: the server's)")
    ap.add_argument("--loadgen-arg", action="append", default=[],
                    help="extra loadgen flag, repeatable (e.g. --loadgen-arg=--no-inflate-cache)")
    a = ap.parse_args()
    modes = [x.strip() for x in a.modes.split(",") if x.strip()]
    for mode in modes:
        if mode not in MODES:
            sys.exit(f"bench_deflate_fanout: unknown mode {mode!r} (off, on, half)")
    stamp, nofile = bf.prepare(a, "bench_deflate_fanout")

    runs = []
    for mode in modes:
        try:
            runs.append(run_mode(a, mode, stamp))
        except RuntimeError as e:
            sys.exit(f"bench_deflate_fanout: mode {mode}: {e}")
        time.sleep(1)  # let TIME_WAIT and the kernel settle between runs

    out = {
        "benchmark": "deflate-fanout",
        "timestamp": stamp,
        "git": bf.git_describe(),
        "machine": bf.machine_info(nofile),
        "server": a.server_bin,
        "options": vars(a),
        "runs": runs,
    }
    path = bf.RESULTS / f"deflate-fanout-{stamp}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")

    print()
    level = f"--deflate-level {a.level}" if a.level is not None else "the server's default --deflate-level"
    print(f"Deflate fan-out: {a.conns} subscribers of {a.topic}, {a.size}-byte demo JSON, {a.rate:g} msgs/s "
          f"published (target {a.rate * a.conns:,.0f} deliveries/s), ringcast --shards {a.shards} "
          f"--batch-ms {a.batch_ms}, {level}, window {a.duration:g} s after {a.warmup:g} s warm-up, "
          f"{os.cpu_count()} CPUs shared with the load generator")
    print()
    print(fmt_table(runs))
    print()
    for r in runs:
        lg = r["loadgen"]
        problems = bf.common_problems(r, a)
        if r["deflate_conns"] != lg["deflate_offered"]:
            problems.append(f"{r['deflate_conns']} connections negotiated permessage-deflate, "
                            f"{lg['deflate_offered']} offered it ({lg['deflate_declined']} declined)")
        if r["mode"] != "off" and not lg.get("compressed_messages"):
            problems.append("no compressed message arrived")
        if r["payload_bytes_per_delivery"] is not None and abs(r["payload_bytes_per_delivery"] - a.size) > 0.5:
            problems.append(f"payload bytes/delivery {r['payload_bytes_per_delivery']:.1f}, not --size {a.size}")
        if problems:
            print(f"{r['mode']}: " + "; ".join(problems))
    print(f"results: {path.relative_to(bf.ROOT)}")
    bad = any(r["loadgen_exit"] != 0 for r in runs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
