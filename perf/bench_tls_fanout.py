#!/usr/bin/env python3
"""perf/bench_tls_fanout.py — wss:// against ws://: fan-out to 10,000 subscribers,
handshakes, and memory per idle connection, in one run.

Certificates: a throwaway CA and a leaf for DNS:localhost,IP:127.0.0.1 per key
type (ECDSA P-256 and RSA-2048, each signed by a CA of its own type), made
with the openssl CLI in a fresh /tmp directory. The load generator verifies
the chain and the name (loadgen --tls --tls-ca CA, SNI localhost), as a real
client does.

Modes (the same server flags in every mode: the plain mode's server has the
ECDSA TLS listener too, unused):

  plain   ws:// on --listen
  ecdsa   wss:// on --tls-listen, ECDSA P-256 leaf
  rsa     wss:// on --tls-listen, RSA-2048 leaf

  ringcast --listen 127.0.0.1:P --admin-listen 127.0.0.1:A --tls-listen 127.0.0.1:Q --tls-cert LEAF --tls-key KEY
           --shards 2 --demo --demo-topics 1 --demo-rate R --demo-size 256 --batch-ms 0
           --tls-handshake-timeout-ms 60000 --idle-timeout-s 3600

(R = --rate, default 10 msgs/s: 100,000 deliveries/s at 10,000 subscribers;
over TLS the server's encryption and loadgen's decryption cost ~10 µs per
delivery together, so 200,000/s already fills both CPUs of this machine.
--idle-timeout-s: loadgen's subscribers never write after subscribing, and a
TLS ramp on a busy machine can outlast the default 90 s.) Per mode, two
phases, each against a server process of its own (started fresh, stopped
with SIGTERM after it):
  1. idle:   loadgen --conns N_IDLE --topics bench:idle (a topic nothing is
             published on) --connect-rate 100000 --max-pending 64: a ramp the
             client does not pace, so it runs at what the two sides manage.
             Server CPU from /proc/PID/stat when loadgen starts and when it
             prints "ramp done"; server RSS before loadgen starts and at
             WINDOW START (every connection open, subscribed and idle).
               handshakes/s             loadgen's handshakes_per_s: TLS
                                        handshakes (wss) or WebSocket upgrades
                                        (plain) ÷ connect phase
               server CPU-µs/handshake  server CPU over the ramp ÷ connections
               B/idle conn              (RSS at WINDOW START − RSS before) ÷ N_IDLE
  2. fanout (modes in --fanout-modes, default plain,ecdsa: the key type does
             not touch the per-delivery path): loadgen --conns N --topics
             demo:BTC with the same fast ramp, --warmup, --duration; server
             CPU, machine busy time and RSS at WINDOW START / WINDOW END
             exactly as perf/bench_fanout.py (whose helpers this imports).
               server CPU-ns/delivery   server CPU in the window ÷ deliveries

Both sides share the machine's 2 CPUs: loadgen (one thread by default)
decrypts every record it receives, so in the TLS rows the client's
ChaCha20-Poly1305 work competes with the server's; and the client side of a
TLS handshake (ECDHE, chain and CertificateVerify verification) costs about
as much as the server side. The loadgen CPU % columns show what it took.

Also runs perf/ktls_probe.c (built into perf/build/ktls_probe) and prints
whether the kernel offers kernel TLS (the "tls" TCP ULP).

    ./dev.sh build --prefix /tmp/rc-fast
    .venv/bin/python perf/bench_tls_fanout.py --server-bin /tmp/rc-fast/bin/ringcast
    .venv/bin/python perf/bench_tls_fanout.py --modes plain,ecdsa --rate 5 --idle-conns 5000

One markdown table per part; everything in perf/results/tls-fanout-<timestamp>.json.
Server counters that mean trouble (TLS handshake failures and timeouts,
slow-consumer and idle closes, conflated messages) are scraped from /metrics
(on the admin listener, A) at the end of each phase and printed when non-zero.
"""
import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time

import bench_fanout as bf

KTLS_SRC = bf.PERF / "ktls_probe.c"
KTLS_BIN = bf.PERF / "build" / "ktls_probe"
MODES = ("plain", "ecdsa", "rsa")
# server counters reported per phase (a run with any of these non-zero is suspect)
TROUBLE = ["ringcast_tls_handshake_failures_total", "ringcast_tls_handshake_timeouts_total",
           "ringcast_slow_consumer_closes_total", "ringcast_idle_closes_total", "ringcast_messages_conflated_total"]


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {r.stderr.strip()}")


def make_certs(d):
    """{kind: (ca, leaf, key)} for kind in ecdsa, rsa, under directory d."""
    out = {}
    ext = d / "leaf.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    for kind, newkey in (("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                         ("rsa", ["-newkey", "rsa:2048"])):
        openssl("req", "-x509", *newkey, "-nodes", "-keyout", f"ca-{kind}.key", "-out", f"ca-{kind}.pem",
                "-days", "2", "-subj", f"/CN=ringcast bench CA {kind}", cwd=d)
        openssl("req", *newkey, "-nodes", "-keyout", f"{kind}.key", "-out", f"{kind}.csr",
                "-subj", "/CN=localhost", cwd=d)
        openssl("x509", "-req", "-in", f"{kind}.csr", "-CA", f"ca-{kind}.pem", "-CAkey", f"ca-{kind}.key",
                "-CAcreateserial", "-days", "2", "-extfile", "leaf.ext", "-out", f"{kind}.pem", cwd=d)
        out[kind] = (d / f"ca-{kind}.pem", d / f"{kind}.pem", d / f"{kind}.key")
    return out


def ktls_probe():
    """(available, output) from perf/ktls_probe.c, built when stale."""
    if not KTLS_BIN.exists() or KTLS_BIN.stat().st_mtime < KTLS_SRC.stat().st_mtime:
        KTLS_BIN.parent.mkdir(parents=True, exist_ok=True)
        cmd = [os.environ.get("CC", "cc"), "-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
               str(KTLS_SRC), "-o", str(KTLS_BIN)]
        bf.log("building " + " ".join(cmd))
        subprocess.run(cmd, check=True)
    r = subprocess.run([str(KTLS_BIN)], capture_output=True, text=True, timeout=30)
    return r.returncode == 0, r.stdout.strip()


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (bf.free_port() twice can return the same one)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def server_cmd(a, port, tls_port, cert, key, admin_port):
    # --idle-timeout-s: loadgen's subscribers never write after subscribing, and
    # a TLS ramp on a busy 2-CPU machine can outlast the default 90 s.
    # /metrics is scraped from the admin listener (plain HTTP).
    return [a.server_bin, "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin_port}",
            "--tls-listen", f"127.0.0.1:{tls_port}",
            "--tls-cert", str(cert), "--tls-key", str(key), "--shards", str(a.shards), "--demo",
            "--demo-topics", "1", "--demo-rate", f"{a.rate:g}", "--demo-size", str(a.size),
            "--batch-ms", str(a.batch_ms), "--tls-handshake-timeout-ms", "60000", "--idle-timeout-s", "3600",
            *a.server_arg]


def lg_cmd(a, mode, ca, port, conns, topic, warmup, duration, json_path):
    cmd = [str(bf.LOADGEN_BIN), "--port", str(port), "--path", "/ws", "--conns", str(conns),
           "--topics", topic, "--warmup", str(warmup), "--duration", str(duration),
           "--connect-rate", str(a.connect_rate), "--max-pending", str(a.max_pending),
           "--connect-timeout", "60", "--threads", str(a.loadgen_threads), "--json", str(json_path)]
    if mode != "plain":
        cmd += ["--tls", "--tls-insecure"] if a.insecure else ["--tls", "--tls-ca", str(ca)]
    return cmd + a.loadgen_arg


def run_loadgen(a, server, port, cmd, json_path, conns, on_line):
    """Runs one loadgen against the running server; on_line(line) sees each
    stderr line (after the sample is taken). Returns (exit, result)."""
    bf.log(" ".join(cmd))
    lg = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1)
    budget = conns / 50 + 60 + a.warmup + a.duration + 60
    watchdog = threading.Timer(budget, lambda: (bf.log("loadgen overran its time; killing it"), lg.kill()))
    watchdog.start()
    try:
        for line in lg.stderr:
            line = line.rstrip("\n")
            on_line(line)
            print(f"  {line}", file=sys.stderr, flush=True)
        rc = lg.wait()
    finally:
        watchdog.cancel()
    if server.proc.poll() is not None:
        raise RuntimeError(f"server exited during the run (status {server.proc.returncode}); see {server.log_path}")
    if not json_path.exists():
        raise RuntimeError(f"loadgen wrote no result (exit {rc})")
    return rc, json.loads(json_path.read_text())


def idle_phase(a, mode, server, admin_port, lg_port, ca, stamp):
    pid = server.proc.pid
    time.sleep(1.0)  # the server's start-up allocations settle
    rss0, _ = bf.proc_rss_kb(pid)
    m0 = bf.scrape_metrics(admin_port)
    json_path = bf.RESULTS / f"tls-fanout-{stamp}-loadgen-{mode}-idle.json"
    cmd = lg_cmd(a, mode, ca, lg_port, a.idle_conns, "bench:idle", 1, 0.5, json_path)
    s = {"cpu0": bf.proc_cpu_ns(pid), "t0": time.monotonic(), "busy0": bf.machine_busy_ns()}

    def on_line(line):
        if line.startswith("loadgen: ramp done"):
            s["cpu1"], s["t1"], s["busy1"] = bf.proc_cpu_ns(pid), time.monotonic(), bf.machine_busy_ns()
        elif line == "WINDOW START":
            s["rss1"], _ = bf.proc_rss_kb(pid)

    rc, res = run_loadgen(a, server, lg_port, cmd, json_path, a.idle_conns, on_line)
    if "cpu1" not in s or "rss1" not in s:
        raise RuntimeError("the idle run never finished its ramp")
    m1 = bf.scrape_metrics(admin_port)
    wall = s["t1"] - s["t0"]
    cpu = s["cpu1"] - s["cpu0"]
    n = res["conns_established"]
    lg_cpu = res["ramp_client_cpu_s"]
    busy = (s["busy1"][0] - s["busy0"][0]) / 1e9
    return {
        "loadgen_cmd": cmd,
        "loadgen_exit": rc,
        "conns": n,
        "handshake_failures": res["handshake_failures"],
        "handshakes_per_s": res["handshakes_per_s"],
        "connect_s": res["connect_s"],
        "tls_handshake_ms_mean": res["tls_handshake_ms"]["mean"],
        "tls_version": res.get("tls_version"),
        "tls_cipher": res.get("tls_cipher"),
        "tls_group": res.get("tls_group"),
        "server_cpu_us_per_handshake": cpu / 1e3 / n if n else None,
        "client_cpu_us_per_handshake": lg_cpu * 1e6 / n if n else None,
        "ramp_server_cpu_pct": 100.0 * cpu / 1e9 / wall if wall > 0 else None,
        "ramp_loadgen_cpu_pct": 100.0 * lg_cpu / res["connect_s"] if res["connect_s"] else None,
        "ramp_other_cpu_pct": max(0.0, 100.0 * (busy - cpu / 1e9 - lg_cpu) / wall) if wall > 0 else None,
        "ramp_softirq_cpu_pct": 100.0 * (s["busy1"][1] - s["busy0"][1]) / 1e9 / wall if wall > 0 else None,
        "rss_before_kb": rss0,
        "rss_idle_kb": s["rss1"],
        "bytes_per_idle_conn": (s["rss1"] - rss0) * 1024 / n if n else None,
        "server_tls_handshakes": (m1.get("ringcast_tls_handshakes_total", 0) - m0.get("ringcast_tls_handshakes_total", 0)
                                  if m0 and m1 else None),
        "server_tls_handshake_failures": (m1.get("ringcast_tls_handshake_failures_total", 0)
                                          - m0.get("ringcast_tls_handshake_failures_total", 0) if m0 and m1 else None),
        "loadgen": res,
    }


def fanout_phase(a, mode, server, admin_port, lg_port, ca, stamp):
    pid = server.proc.pid
    json_path = bf.RESULTS / f"tls-fanout-{stamp}-loadgen-{mode}-fanout.json"
    cmd = lg_cmd(a, mode, ca, lg_port, a.conns, a.topic, a.warmup, a.duration, json_path)
    s = {}

    def on_line(line):
        if line in ("WINDOW START", "WINDOW END"):
            k = "0" if line == "WINDOW START" else "1"
            s["cpu" + k], s["t" + k], s["busy" + k] = bf.proc_cpu_ns(pid), time.monotonic(), bf.machine_busy_ns()
            if k == "1":
                s["rss_kb"], s["hwm_kb"] = bf.proc_rss_kb(pid)
            s["metrics" + k] = bf.scrape_metrics(admin_port)  # after the CPU sample

    rc, res = run_loadgen(a, server, lg_port, cmd, json_path, a.conns, on_line)
    if "cpu1" not in s:
        raise RuntimeError("no measured window (loadgen interrupted or the ramp failed)")
    cpu = s["cpu1"] - s["cpu0"]
    wall = s["t1"] - s["t0"]
    d = res["deliveries"]
    lg_pct = 100.0 * res["client_cpu_s"] / res["window_s"] if res["window_s"] else None
    m0, m1 = s["metrics0"], s["metrics1"]
    return {
        "loadgen_cmd": cmd,
        "loadgen_exit": rc,
        "conns": res["conns_open"],
        "deliveries_per_s": res["deliveries_per_s"],
        "target_deliveries_per_s": a.rate * a.conns,
        "server_cpu_ns": cpu,
        "server_cpu_ns_per_delivery": cpu / d if d else None,
        "server_cpu_pct": 100.0 * cpu / 1e9 / wall if wall > 0 else None,
        "loadgen_cpu_pct": lg_pct,
        "loadgen_cpu_ns_per_delivery": res["client_cpu_s"] * 1e9 / d if d else None,
        "other_cpu_pct": max(0.0, 100.0 * ((s["busy1"][0] - s["busy0"][0]) - cpu) / 1e9 / wall - lg_pct)
        if wall > 0 and lg_pct is not None else None,
        "softirq_cpu_pct": 100.0 * (s["busy1"][1] - s["busy0"][1]) / 1e9 / wall if wall > 0 else None,
        "server_rss_mb": s["rss_kb"] / 1024,
        "server_peak_rss_mb": s["hwm_kb"] / 1024,
        "wire_bytes_per_delivery": res["wire_bytes"] / d if d else None,
        "handshakes_per_s": res["handshakes_per_s"],
        "server_deliveries_per_s": ((m1["ringcast_deliveries_total"] - m0["ringcast_deliveries_total"]) / wall
                                    if "ringcast_deliveries_total" in m0 and "ringcast_deliveries_total" in m1
                                    and wall > 0 else None),
        "loadgen": res,
    }


def run_phase(a, mode, phase, certs, stamp, fn):
    """One phase against a server process of its own (so the fan-out's RSS is
    not the idle phase's high-water mark)."""
    port, tls_port, admin_port = free_ports(3)
    ca, leaf, key = certs["ecdsa" if mode == "plain" else mode]
    cmd = server_cmd(a, port, tls_port, leaf, key, admin_port)
    lg_port = port if mode == "plain" else tls_port
    bf.log(f"mode {mode}, {phase}")
    bf.log(" ".join(cmd))
    server = bf.Server(cmd, bf.RESULTS / f"tls-fanout-{stamp}-server-{mode}-{phase}.log")
    try:
        server.wait_listening(port)
        server.wait_listening(tls_port)
        server.wait_listening(admin_port)
        # That probe was a TCP connect and close on the TLS port: the server
        # counts one failed handshake, maybe a moment later; keep it in m0.
        deadline = time.monotonic() + 2
        while (m0 := bf.scrape_metrics(admin_port)).get("ringcast_tls_handshake_failures_total", 0) < 1 \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        res = fn(a, mode, server, admin_port, lg_port, ca, stamp)
        m1 = bf.scrape_metrics(admin_port)
        res["server_trouble"] = {k: m1[k] - m0.get(k, 0) for k in TROUBLE if m1.get(k, 0) - m0.get(k, 0)}
    finally:
        rc = server.stop()
    res.update({"server_cmd": cmd, "server_exit": rc, "server_log": str(server.log_path.relative_to(bf.ROOT))})
    return res


def run_mode(a, mode, certs, stamp):
    out = {"mode": mode, "idle": run_phase(a, mode, "idle", certs, stamp, idle_phase)}
    if mode in a.fanout_modes:
        time.sleep(1)
        out["fanout"] = run_phase(a, mode, "fanout", certs, stamp, fanout_phase)
    return out


def num(v, f="{:,.0f}"):
    return "–" if v is None else f.format(v)


def label(mode):
    return {"plain": "ws:// (plain)", "ecdsa": "wss:// ECDSA P-256", "rsa": "wss:// RSA-2048"}[mode]


def fmt_fanout(runs):
    head = ("| mode | conns | deliveries/s | server CPU-ns/delivery | loadgen CPU-ns/delivery | wire B/delivery "
            "| p50/p99 latency µs | lost | dup | server RSS MB | server CPU % | loadgen CPU % | softirq CPU % "
            "| other CPU % |")
    lines = [head, "|---|" + "---:|" * (head.count("|") - 2)]
    for r in runs:
        f = r.get("fanout")
        if not f:
            continue
        lg, lat = f["loadgen"], f["loadgen"]["latency_us"]
        lines.append(
            f"| {label(r['mode'])} | {f['conns']} | {f['deliveries_per_s']:,.0f} | "
            f"{num(f['server_cpu_ns_per_delivery'])} | {num(f['loadgen_cpu_ns_per_delivery'])} | "
            f"{num(f['wire_bytes_per_delivery'], '{:,.1f}')} | {lat['p50']:,} / {lat['p99']:,} | "
            f"{lg['lost']} | {lg['duplicated']} | {f['server_rss_mb']:.1f} | {bf.pct(f['server_cpu_pct'])} | "
            f"{bf.pct(f['loadgen_cpu_pct'])} | {bf.pct(f['softirq_cpu_pct'])} | {bf.pct(f['other_cpu_pct'])} |")
    return "\n".join(lines)


def fmt_idle(runs):
    head = ("| mode | conns | handshakes/s | server CPU-µs/handshake | loadgen CPU-µs/handshake | mean handshake ms "
            "| failures | server RSS before → idle MB | B/idle conn | ramp server CPU % | ramp loadgen CPU % "
            "| ramp other CPU % | TLS |")
    lines = [head, "|---|" + "---:|" * (head.count("|") - 3) + "---|"]
    for r in runs:
        i = r["idle"]
        tls = (f"{i['tls_version']} {i['tls_cipher']} {i['tls_group']}" if r["mode"] != "plain" else "–")
        lines.append(
            f"| {label(r['mode'])} | {i['conns']} | {i['handshakes_per_s']:,.0f} | "
            f"{num(i['server_cpu_us_per_handshake'], '{:,.1f}')} | {num(i['client_cpu_us_per_handshake'], '{:,.1f}')} | "
            f"{num(i['tls_handshake_ms_mean'] if r['mode'] != 'plain' else None, '{:,.1f}')} | "
            f"{i['handshake_failures']} | {i['rss_before_kb'] / 1024:.1f} → {i['rss_idle_kb'] / 1024:.1f} | "
            f"{num(i['bytes_per_idle_conn'])} | {bf.pct(i['ramp_server_cpu_pct'])} | "
            f"{bf.pct(i['ramp_loadgen_cpu_pct'])} | {bf.pct(i['ramp_other_cpu_pct'])} | {tls} |")
    return "\n".join(lines)


def problems(r, a):
    out = []
    i = r["idle"]
    if i["conns"] < a.idle_conns:
        out.append(f"idle: only {i['conns']} of {a.idle_conns} connections established")
    if i["loadgen"]["errors"]:
        out.append(f"idle: {i['loadgen']['errors']} errors {i['loadgen']['error_detail']}")
    if i["ramp_other_cpu_pct"] is not None and i["ramp_other_cpu_pct"] > 10:
        out.append(f"idle: other processes used {i['ramp_other_cpu_pct']:.0f}% of a CPU during the ramp")
    if r["mode"] != "plain" and i["server_tls_handshakes"] is not None and i["server_tls_handshakes"] != i["conns"]:
        out.append(f"idle: server counted {i['server_tls_handshakes']:.0f} TLS handshakes for {i['conns']} connections")
    if i.get("server_trouble"):
        out.append(f"idle: server counters {i['server_trouble']}")
    f = r.get("fanout")
    if f:
        if f.get("server_trouble"):
            out.append(f"fanout: server counters {f['server_trouble']}")
        lg = f["loadgen"]
        if f["conns"] < a.conns:
            out.append(f"fanout: only {f['conns']} of {a.conns} connections open at the end")
        if lg["errors"]:
            out.append(f"fanout: {lg['errors']} errors {lg['error_detail']}")
        if lg["lost"] or lg["duplicated"]:
            out.append(f"fanout: lost {lg['lost']}, duplicated {lg['duplicated']}")
        if f["deliveries_per_s"] < 0.95 * f["target_deliveries_per_s"]:
            out.append(f"fanout: delivered {f['deliveries_per_s']:,.0f}/s of {f['target_deliveries_per_s']:,.0f}/s "
                       f"(server or loadgen saturated?)")
        if f["other_cpu_pct"] is not None and f["other_cpu_pct"] > 10:
            out.append(f"fanout: other processes used {f['other_cpu_pct']:.0f}% of a CPU during the window: "
                       f"the machine was not quiet, the figures are not comparable")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bf.add_common_args(ap, "messages/s published on the topic (default 10: 100K deliveries/s at 10K subscribers; "
                           "over TLS the server's encryption and loadgen's decryption cost ~10 µs per delivery "
                           "together, so 200K/s already fills both CPUs)")
    ap.set_defaults(rate=10, connect_rate=100000)
    ap.add_argument("--size", type=int, default=256, help="--demo-size BYTES (default 256)")
    ap.add_argument("--batch-ms", type=int, default=0, help="server --batch-ms (default 0)")
    ap.add_argument("--modes", default="plain,ecdsa,rsa", help="comma list of plain, ecdsa, rsa (default all)")
    ap.add_argument("--fanout-modes", default="plain,ecdsa",
                    help="modes that also run the fan-out part (default plain,ecdsa)")
    ap.add_argument("--idle-conns", type=int, default=10000, help="connections of the idle part (default 10000)")
    ap.add_argument("--max-pending", type=int, default=64,
                    help="loadgen --max-pending: connections in their handshake at once (default 64)")
    ap.add_argument("--insecure", action="store_true", help="loadgen --tls-insecure instead of --tls-ca")
    ap.add_argument("--loadgen-arg", action="append", default=[], help="extra loadgen flag, repeatable")
    a = ap.parse_args()
    a.modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    a.fanout_modes = [m.strip() for m in a.fanout_modes.split(",") if m.strip()]
    for m in a.modes + a.fanout_modes:
        if m not in MODES:
            sys.exit(f"bench_tls_fanout: unknown mode {m!r} (plain, ecdsa, rsa)")
    a.conns_max = max(a.conns, a.idle_conns)
    conns = a.conns
    a.conns = a.conns_max  # prepare() checks RLIMIT_NOFILE against the larger part
    stamp, nofile = bf.prepare(a, "bench_tls_fanout")
    a.conns = conns

    ktls_ok, ktls_out = ktls_probe()
    for line in ktls_out.splitlines():
        bf.log(f"ktls_probe: {line}")

    certdir = pathlib.Path(tempfile.mkdtemp(prefix="ringcast-tls-bench-", dir="/tmp"))
    certs = make_certs(certdir)
    bf.log(f"certificates in {certdir}")

    runs = []
    for mode in a.modes:
        try:
            runs.append(run_mode(a, mode, certs, stamp))
        except RuntimeError as e:
            sys.exit(f"bench_tls_fanout: mode {mode}: {e}")
        time.sleep(1)  # let TIME_WAIT and the kernel settle between modes

    out = {
        "benchmark": "tls-fanout",
        "timestamp": stamp,
        "git": bf.git_describe(),
        "machine": bf.machine_info(nofile),
        "server": a.server_bin,
        "options": vars(a),
        "certificates": str(certdir),
        "ktls": {"available": ktls_ok, "probe": ktls_out},
        "runs": runs,
    }
    path = bf.RESULTS / f"tls-fanout-{stamp}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")

    print()
    print(f"TLS fan-out: {a.conns} subscribers of {a.topic}, {a.size}-byte demo messages, {a.rate:g} msgs/s "
          f"published (target {a.rate * a.conns:,.0f} deliveries/s), ringcast --shards {a.shards} "
          f"--batch-ms {a.batch_ms}, window {a.duration:g} s after {a.warmup:g} s warm-up; loadgen "
          f"{a.loadgen_threads} thread(s), {'no verification' if a.insecure else 'verifying the chain and name'}, "
          f"on the same {os.cpu_count()} CPUs: its TLS decryption competes with the server")
    print()
    print(fmt_fanout(runs))
    print()
    print(f"Handshakes and idle memory: {a.idle_conns} connections subscribed to a silent topic, ramp "
          f"--connect-rate {a.connect_rate:g} --max-pending {a.max_pending} (not paced: as fast as both sides go)")
    print()
    print(fmt_idle(runs))
    print()
    byid = {r["mode"]: r for r in runs}
    if "plain" in byid:
        base = byid["plain"]
        for m in ("ecdsa", "rsa"):
            if m in byid and byid[m]["idle"]["bytes_per_idle_conn"] and base["idle"]["bytes_per_idle_conn"]:
                print(f"{label(m)}: {byid[m]['idle']['bytes_per_idle_conn'] - base['idle']['bytes_per_idle_conn']:,.0f} "
                      f"B more per idle connection than plain")
            if m in byid and byid[m].get("fanout") and base.get("fanout"):
                tf, pf = byid[m]["fanout"], base["fanout"]
                if tf["server_cpu_ns_per_delivery"] and pf["server_cpu_ns_per_delivery"]:
                    print(f"{label(m)}: server CPU per delivery {tf['server_cpu_ns_per_delivery']:,.0f} ns vs "
                          f"{pf['server_cpu_ns_per_delivery']:,.0f} ns plain "
                          f"(× {tf['server_cpu_ns_per_delivery'] / pf['server_cpu_ns_per_delivery']:.2f})")
    print(f"kernel TLS: {'available' if ktls_ok else 'unavailable'} — {ktls_out.splitlines()[-1] if ktls_out else '?'}")
    for r in runs:
        p = problems(r, a)
        if p:
            print(f"{r['mode']}: " + "; ".join(p))
    print(f"results: {path.relative_to(bf.ROOT)}")
    bad = any(r["idle"]["loadgen_exit"] != 0 or (r.get("fanout") or {}).get("loadgen_exit", 0) != 0 for r in runs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
