#!/usr/bin/env python3
"""perf/bench_redis.py — ringcast fed through Redis pub/sub: how many messages/s
one node takes in from Redis, and Redis PUBLISH → WebSocket client latency at
10,000 subscribers.

One run starts its own redis-server (the Debian one: 127.0.0.1, a free port,
--save '' --appendonly no) and then, one server per row,
  ringcast --listen 127.0.0.1:<free port> --admin-listen 127.0.0.1:<free port>
           --shards 2 --batch-ms 0 --redis redis://127.0.0.1:<redis port>
  perf/build/loadgen --conns N --topics bench:redis --warmup 3 --duration 10
  perf/build/redis_pub --topic bench:redis --rate R     (PUBLISH ringcast:bench:redis …)
The publisher (perf/redis_pub.c, raw RESP) starts once ringcast has
SUBSCRIBEd the channel (PUBSUB NUMSUB), and sends
{"topic":"bench:redis","seq":N,"ts":<unix µs at PUBLISH>,"pad":"xx…"}, so
loadgen checks every delivery's sequence (lost, dup) and measures PUBLISH →
client latency. Rows (--rate-list, default max,100,10):

  max   ingest: --ingest-conns subscribers (default 1); the publisher pipelines
        PUBLISH as fast as Redis takes them, but holds back while ringcast's
        connection has more than --omem-cap bytes waiting in Redis (CLIENT LIST
        omem): without that Redis would hit its pub/sub output-buffer limit
        and drop ringcast's connection. "pace set by" says which side was the
        bottleneck: "ringcast" when the publisher had to wait for it (then
        ingested msgs/s is what this node takes in from Redis on this machine),
        else "Redis+publisher" (ringcast kept up; the figure is a lower bound).
        The server gets --max-queue-bytes 256M in this row (--ingest-queue-bytes):
        with the default 1 MiB a few ms of loadgen lag at these rates is a
        slow-consumer close (1008), which would end the row.
  R     latency: --conns subscribers (default 10,000), R PUBLISH/s on a fixed
        schedule, one command each, ts stamped as it is sent: R × conns
        deliveries/s.

Measured like perf/bench_fanout.py (whose helpers this imports), between
loadgen's WINDOW START and WINDOW END: ringcast's, redis-server's and the
publisher's CPU from /proc/PID/stat, the machine's busy and softirq time from
/proc/stat, ringcast's /metrics on its admin listener (ringcast_redis_messages_total → ingested
msgs/s) and Redis's INFO commandstats (PUBLISH calls → PUBLISH/s).
server CPU-ns/msg = ringcast CPU ÷ messages ingested from Redis;
server CPU-ns/delivery = ringcast CPU ÷ messages the clients received.
Everything goes to perf/results/redis-<timestamp>.json (or --json PATH), the
server and Redis logs beside it. Every process shares the same CPUs (on the
2-core development VM: ringcast, Redis, the publisher and loadgen): compare
rows of one run, and read "other CPU %" (must be near 0).

    ./dev.sh build --prefix /tmp/rc-fast
    .venv/bin/python perf/bench_redis.py --server-bin /tmp/rc-fast/bin/ringcast
    .venv/bin/python perf/bench_redis.py --rate-list max --ingest-conns 4 --duration 5
"""
import argparse
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import bench_fanout as bf

PUB_SRC = bf.PERF / "redis_pub.c"
PUB_BIN = bf.PERF / "build" / "redis_pub"
CHANNEL_PREFIX = "ringcast:"
METRICS = ["ringcast_redis_messages_total", "ringcast_redis_dropped_total", "ringcast_redis_disconnects_total",
           "ringcast_redis_connects_total", "ringcast_redis_connect_failures_total", "ringcast_deliveries_total",
           "ringcast_frames_built_total", "ringcast_redis_up"]


def build_pub():
    """Builds perf/build/redis_pub when it is missing or older than redis_pub.c."""
    if PUB_BIN.exists() and PUB_BIN.stat().st_mtime >= PUB_SRC.stat().st_mtime:
        return
    PUB_BIN.parent.mkdir(parents=True, exist_ok=True)
    cmd = [os.environ.get("CC", "cc"), "-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
           "-o", str(PUB_BIN), str(PUB_SRC)]
    bf.log("building " + " ".join(cmd))
    subprocess.run(cmd, check=True)


# --- a few Redis commands over raw RESP -------------------------------------

def _read_reply(f):
    line = f.readline()
    if not line:
        raise OSError("Redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError("Redis: " + rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RuntimeError(f"Redis: unexpected reply {line!r}")


def redis_cmd(port, *args, timeout=2.0):
    """One command on a fresh connection; the parsed reply."""
    req = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(x.encode())}\r\n".encode() + x.encode() + b"\r\n" for x in map(str, args))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req)
        with s.makefile("rb") as f:
            return _read_reply(f)


def publish_calls(port):
    """PUBLISH commands Redis has executed (INFO commandstats), or None."""
    try:
        for line in redis_cmd(port, "INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_publish:"):
                return int(line.split("calls=")[1].split(",")[0])
        return 0
    except (OSError, RuntimeError, ValueError, IndexError):
        return None


def pubsub_clients(port):
    """[{addr, omem, sub, psub}] of Redis's pub/sub connections (CLIENT LIST TYPE pubsub)."""
    out = []
    try:
        text = redis_cmd(port, "CLIENT", "LIST", "TYPE", "pubsub")
    except (OSError, RuntimeError):
        return out
    for line in text.splitlines():
        kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
        out.append({k: (int(v) if v.isdigit() else v) for k, v in kv.items()
                    if k in ("addr", "omem", "sub", "psub", "ssub", "tot-mem")})
    return out


class Redis:
    """redis-server on 127.0.0.1:<free port>, nothing persisted, logging to log_path."""

    def __init__(self, binary, log_path):
        self.port = bf.free_port()
        self.dir = tempfile.mkdtemp(prefix="rc-bench-redis-")
        self.log_path = log_path
        self.cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", self.dir, "--logfile", str(log_path), "--daemonize", "no"]
        bf.log(" ".join(x if x else "''" for x in self.cmd))
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited at start (status {self.proc.returncode}); see {log_path}")
            try:
                if redis_cmd(self.port, "PING", timeout=0.5) == "PONG":
                    break
            except (OSError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer PING within 10 s; see {log_path}")
            time.sleep(0.05)
        self.version = redis_cmd(self.port, "INFO", "server").split("redis_version:")[1].split()[0]

    def stop(self):
        bf.stop_process(self.proc, 10, what="redis-server")
        shutil.rmtree(self.dir, ignore_errors=True)


def http_status(port, path, timeout=1.0):
    """(status, body) of GET path, or (None, "") if the server does not answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body.decode(errors="replace")
    except (OSError, IndexError, ValueError):
        return None, ""


def wait_ready(server, port, timeout=10):
    """Waits for /readyz 200 on port (the admin listener): ringcast has its Redis connection."""
    deadline = time.monotonic() + timeout
    status, body = None, ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited at start (status {server.proc.returncode}); see {server.log_path}")
        status, body = http_status(port, "/readyz")
        if status == 200:
            return
        time.sleep(0.05)
    raise RuntimeError(f"/readyz still {status} {body.strip()} after {timeout} s: ringcast did not connect to Redis")


def start_publisher_when_subscribed(a, redis_port, rate, holder, stop):
    """Thread body: waits until ringcast has SUBSCRIBEd the channel, then starts redis_pub."""
    chan = CHANNEL_PREFIX + a.topic
    while not stop.is_set():
        try:
            n = redis_cmd(redis_port, "PUBSUB", "NUMSUB", chan)[1]
        except (OSError, RuntimeError, IndexError, TypeError):
            n = 0
        if n >= 1:
            break
        stop.wait(0.05)
    if stop.is_set():
        return
    cmd = [str(PUB_BIN), "--port", str(redis_port), "--topic", a.topic, "--prefix", CHANNEL_PREFIX,
           "--rate", "max" if rate == "max" else f"{rate:g}", "--size", str(a.size),
           "--omem-cap", str(a.omem_cap)]
    bf.log(" ".join(cmd))
    holder["cmd"] = cmd
    holder["t_start"] = time.monotonic()
    holder["proc"] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_publisher(holder):
    p = holder.get("proc")
    if p is None:
        return None, None, ""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        res = None
    return res, p.returncode, err


def cpu_or_none(pid):
    try:
        return bf.proc_cpu_ns(pid)
    except (OSError, ValueError, IndexError):
        return None


def measure(a, redis, rate, conns, server_cmd, port, admin_port, server_log, lg_cmd, lg_json):
    """One row: server + loadgen + publisher; samples at loadgen's window edges
    (/readyz and /metrics from admin_port, the server's --admin-listen)."""
    bf.log(" ".join(server_cmd))
    server = bf.Server(server_cmd, server_log)
    holder, stop = {}, threading.Event()
    starter = None
    sample = {}
    try:
        server.wait_listening(port)
        server.wait_listening(admin_port)
        wait_ready(server, admin_port)
        bf.log(" ".join(lg_cmd))
        lg = subprocess.Popen(lg_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1)
        starter = threading.Thread(target=start_publisher_when_subscribed,
                                   args=(a, redis.port, rate, holder, stop), daemon=True)
        starter.start()
        budget = conns / a.connect_rate + 15 + a.warmup + a.duration + 60
        watchdog = threading.Timer(budget, lambda: (bf.log("loadgen overran its time; killing it"), lg.kill()))
        watchdog.start()
        try:
            for line in lg.stderr:
                line = line.rstrip("\n")
                if line in ("WINDOW START", "WINDOW END"):
                    k = "0" if line == "WINDOW START" else "1"
                    pub = holder.get("proc")
                    sample["cpu" + k], sample["t" + k] = bf.proc_cpu_ns(server.proc.pid), time.monotonic()
                    sample["redis_cpu" + k] = cpu_or_none(redis.proc.pid)
                    sample["pub_cpu" + k] = cpu_or_none(pub.pid) if pub is not None else None
                    sample["busy" + k] = bf.machine_busy_ns()
                    if k == "1":
                        sample["rss_kb"], sample["hwm_kb"] = bf.proc_rss_kb(server.proc.pid)
                    # after the CPU samples: these queries are not counted in the window
                    sample["metrics" + k] = bf.scrape_metrics(admin_port)
                    sample["publish_calls" + k] = publish_calls(redis.port)
                    if k == "1":
                        sample["pubsub_clients"] = pubsub_clients(redis.port)
                print(f"  {line}", file=sys.stderr, flush=True)
            rc = lg.wait()
        finally:
            watchdog.cancel()
        if server.proc.poll() is not None:
            bf.log(f"server exited during the run (status {server.proc.returncode}); see {server_log}")
        if not lg_json.exists():
            raise RuntimeError(f"loadgen wrote no result (exit {rc})")
        res = json.loads(lg_json.read_text())
    finally:
        stop.set()
        if starter is not None:
            starter.join(5)
        pub_res, pub_rc, pub_err = stop_publisher(holder)
        server_rc = server.stop()
    if "cpu1" not in sample:
        raise RuntimeError("no measured window (loadgen interrupted or the ramp failed)")
    if pub_res is None:
        raise RuntimeError(f"the publisher never started or printed no result (exit {pub_rc}): {pub_err.strip()}")

    wall = sample["t1"] - sample["t0"]

    def delta(k):
        x0, x1 = sample.get(k + "0"), sample.get(k + "1")
        return None if x0 is None or x1 is None else x1 - x0

    def per_s(v):
        return None if v is None or wall <= 0 else v / wall

    def cpu_pct(ns):
        return None if ns is None or wall <= 0 else 100.0 * ns / 1e9 / wall

    m0, m1 = sample.get("metrics0", {}), sample.get("metrics1", {})
    mdelta = {n: (m1[n] - m0[n]) if n in m0 and n in m1 else None for n in METRICS}
    cpu_ns = sample["cpu1"] - sample["cpu0"]
    redis_ns, pub_ns = delta("redis_cpu"), delta("pub_cpu")
    deliveries = res["deliveries"]
    ingested = mdelta["ringcast_redis_messages_total"]
    lg_pct = 100.0 * res["client_cpu_s"] / res["window_s"] if res["window_s"] else None
    busy_ns = sample["busy1"][0] - sample["busy0"][0]
    other = None
    if wall > 0 and lg_pct is not None:
        other = max(0.0, cpu_pct(busy_ns - cpu_ns - (redis_ns or 0) - (pub_ns or 0)) - lg_pct)
    paused_frac = pub_res["paused_s"] / pub_res["elapsed_s"] if pub_res.get("elapsed_s") else 0.0
    return {
        "rate": rate,
        "server_cmd": server_cmd,
        "server_exit": server_rc,
        "server_log": str(server_log.relative_to(bf.ROOT)) if server_log.is_relative_to(bf.ROOT) else str(server_log),
        "loadgen_cmd": lg_cmd,
        "loadgen_exit": rc,
        "publisher_cmd": holder.get("cmd"),
        "publisher_exit": pub_rc,
        "publisher": pub_res,
        "publisher_stderr": pub_err.strip(),
        "publisher_paused_frac": paused_frac,
        "pace_set_by": ("–" if rate != "max" else "ringcast" if paused_frac > 0.05 else "Redis+publisher"),
        "conns": res["conns_open"],
        "target_conns": conns,
        "publish_per_s": per_s(delta("publish_calls")),
        "ingest_per_s": per_s(ingested),
        "deliveries_per_s": res["deliveries_per_s"],
        "target_deliveries_per_s": None if rate == "max" else rate * conns,
        "server_cpu_ns": cpu_ns,
        "server_cpu_ns_per_msg": cpu_ns / ingested if ingested else None,
        "server_cpu_ns_per_delivery": cpu_ns / deliveries if deliveries else None,
        "server_cpu_pct": cpu_pct(cpu_ns),
        "redis_cpu_pct": cpu_pct(redis_ns),
        "publisher_cpu_pct": cpu_pct(pub_ns),
        "loadgen_cpu_pct": lg_pct,
        "softirq_cpu_pct": cpu_pct(sample["busy1"][1] - sample["busy0"][1]),
        "other_cpu_pct": other,
        "server_rss_mb": sample["rss_kb"] / 1024,
        "server_peak_rss_mb": sample["hwm_kb"] / 1024,
        "metrics_delta": mdelta,
        "metrics_end": {n: m1.get(n) for n in METRICS},
        "redis_pubsub_clients_end": sample.get("pubsub_clients"),
        "loadgen": res,
    }


def run_row(a, redis, rate, stamp):
    conns = a.ingest_conns if rate == "max" else a.conns
    tag = "max" if rate == "max" else f"{rate:g}"
    port, admin_port = bf.free_port(), bf.free_port()
    while admin_port == port:
        admin_port = bf.free_port()
    cmd = [a.server_bin, "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin_port}",
           "--shards", str(a.shards), "--batch-ms", str(a.batch_ms),
           "--redis", f"redis://127.0.0.1:{redis.port}"]
    if rate == "max" and a.ingest_queue_bytes not in ("", "0"):
        cmd.append(f"--max-queue-bytes={a.ingest_queue_bytes}")
    cmd += a.server_arg
    lg_json = bf.RESULTS / f"redis-{stamp}-loadgen-{tag}.json"
    ns = argparse.Namespace(**{**vars(a), "conns": conns})
    extra = ["--src-addrs", a.src_addrs] if a.src_addrs else []
    lg_cmd = bf.loadgen_cmd(ns, port, lg_json, extra + a.loadgen_arg)
    bf.log(f"rate {tag}: {conns} subscribers")
    return measure(a, redis, rate, conns, cmd, port, admin_port, bf.RESULTS / f"redis-{stamp}-server-{tag}.log", lg_cmd,
                   lg_json)


def problems_of(r, a):
    lg = r["loadgen"]
    p = []
    if lg["conns_open"] < r["target_conns"]:
        p.append(f"only {lg['conns_open']} of {r['target_conns']} connections open at the end")
    if lg["errors"]:
        p.append(f"{lg['errors']} loadgen errors {lg['error_detail']}")
    if lg["lost"] or lg["duplicated"]:
        p.append(f"LOST {lg['lost']}, DUPLICATED {lg['duplicated']}")
    t = r["target_deliveries_per_s"]
    if t and r["deliveries_per_s"] < 0.95 * t:
        p.append(f"delivered {r['deliveries_per_s']:,.0f}/s of {t:,.0f}/s (server or loadgen saturated?)")
    md = r["metrics_delta"]
    for name, what in (("ringcast_redis_disconnects_total", "Redis disconnects"),
                       ("ringcast_redis_connect_failures_total", "Redis connect failures"),
                       ("ringcast_redis_dropped_total", "messages from Redis dropped")):
        if md.get(name):
            p.append(f"{md[name]:.0f} {what} in the window ({name})")
    if md.get("ringcast_redis_messages_total") is None:
        p.append("no ringcast_redis_messages_total in /metrics")
    if r["metrics_end"].get("ringcast_redis_up") == 0:
        p.append("ringcast_redis_up 0 at the end of the window")
    pub = r["publisher"]
    if pub.get("errors") or pub.get("failure") or r["publisher_exit"] not in (0, None):
        p.append(f"publisher: exit {r['publisher_exit']}, {pub.get('errors')} error replies, "
                 f"failure {pub.get('failure')} {r['publisher_stderr']}")
    if pub.get("replies") != pub.get("sent"):
        p.append(f"publisher: {pub.get('sent')} sent, {pub.get('replies')} replies")
    if r["rate"] != "max" and r["publish_per_s"] is not None and r["publish_per_s"] < 0.98 * r["rate"]:
        p.append(f"the publisher managed {r['publish_per_s']:,.1f} PUBLISH/s of {r['rate']:g} "
                 f"(more than a tick late {pub.get('late_ticks')} times: machine overloaded?)")
    if r["server_exit"] not in (0, None):
        p.append(f"server exit status {r['server_exit']}")
    log_path = bf.ROOT / r["server_log"]
    try:
        errs = [ln for ln in log_path.read_text(errors="replace").splitlines() if "ERROR" in ln]
        if errs:
            p.append(f"{len(errs)} ERROR lines in {r['server_log']}, first: {errs[0][:200]}")
    except OSError:
        pass
    if r["other_cpu_pct"] is not None and r["other_cpu_pct"] > 10:
        p.append(f"other processes used {r['other_cpu_pct']:.0f}% of a CPU during the window: "
                 f"the machine was not quiet, the figures are not comparable")
    return p


def fmt_table(runs):
    def num(v, f="{:,.0f}"):
        return "–" if v is None else f.format(v)

    head = ("| publish rate | conns | pace set by | Redis PUBLISH/s | ingested msgs/s | deliveries/s "
            "| server CPU-ns/msg | server CPU-ns/delivery | p50/p99/p99.9 latency µs | lost | dup "
            "| server CPU % | redis CPU % | publisher CPU % | loadgen CPU % | softirq CPU % | other CPU % |")
    lines = [head, "|---|---:|---|" + "---:|" * (head.count("|") - 4)]
    for r in runs:
        lg = r["loadgen"]
        lat = lg["latency_us"]
        label = "max (pipelined)" if r["rate"] == "max" else f"{r['rate']:g}/s"
        lines.append(
            f"| {label} | {r['conns']} | {r['pace_set_by']} | {num(r['publish_per_s'])} | {num(r['ingest_per_s'])} | "
            f"{r['deliveries_per_s']:,.0f} | {num(r['server_cpu_ns_per_msg'])} | "
            f"{num(r['server_cpu_ns_per_delivery'])} | {lat['p50']:,} / {lat['p99']:,} / {lat['p999']:,} | "
            f"{lg['lost']} | {lg['duplicated']} | {bf.pct(r['server_cpu_pct'])} | {bf.pct(r['redis_cpu_pct'])} | "
            f"{bf.pct(r['publisher_cpu_pct'])} | {bf.pct(r['loadgen_cpu_pct'])} | {bf.pct(r['softirq_cpu_pct'])} | "
            f"{bf.pct(r['other_cpu_pct'])} |")
    return "\n".join(lines)


def parse_rates(s):
    out = []
    for x in s.split(","):
        x = x.strip()
        if not x:
            continue
        if x == "max":
            out.append("max")
            continue
        try:
            v = float(x)
        except ValueError:
            sys.exit(f"bench_redis: --rate-list: {x!r} is neither 'max' nor a number")
        if v <= 0:
            sys.exit("bench_redis: --rate-list: rates must be > 0")
        out.append(v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate-list", default="max,100,10",
                    help="comma list of rows: 'max' (ingest) and/or PUBLISH/s (default max,100,10)")
    ap.add_argument("--conns", type=int, default=10000, help="subscribers in the fixed-rate rows (default 10000)")
    ap.add_argument("--ingest-conns", type=int, default=1, help="subscribers in the 'max' row (default 1)")
    ap.add_argument("--duration", type=float, default=10, help="measured window, s (default 10)")
    ap.add_argument("--warmup", type=float, default=3, help="after loadgen's ramp, before the window (default 3)")
    ap.add_argument("--size", type=int, default=256, help="bytes per published message (default 256)")
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--batch-ms", type=int, default=0, help="server --batch-ms (default 0)")
    ap.add_argument("--server-bin", default=str(bf.ROOT / "zig-out" / "bin" / "ringcast"))
    ap.add_argument("--server-arg", action="append", default=[],
                    help="extra server flag, repeatable (e.g. --server-arg=--max-queue-bytes=4194304)")
    ap.add_argument("--redis-server", default="redis-server", help="redis-server binary (default: from PATH)")
    ap.add_argument("--topic", default="bench:redis", help="topic (channel ringcast:<topic>; default bench:redis)")
    ap.add_argument("--omem-cap", type=int, default=4 << 20,
                    help="'max' row: the publisher waits while ringcast's Redis output buffer holds more than this "
                         "many bytes (default 4 MiB; 0 = never wait, and Redis may drop ringcast's connection)")
    ap.add_argument("--ingest-queue-bytes", default="256M",
                    help="'max' row: server --max-queue-bytes (default 256M; 0 = the server's 1 MiB). At ~700K "
                         "msgs/s 1 MiB is ~5 ms of a subscriber's lag, and the server rightly closes a subscriber "
                         "that far behind (1008), which ends the row")
    ap.add_argument("--connect-rate", type=float, default=2000, help="loadgen connections/s during the ramp")
    ap.add_argument("--loadgen-threads", type=int, default=1)
    ap.add_argument("--src-addrs", default="", help="loadgen --src-addrs (e.g. 127.0.0.1,127.0.0.2)")
    ap.add_argument("--loadgen-arg", action="append", default=[], help="extra loadgen flag, repeatable")
    ap.add_argument("--json", default=None, help="write the results here (default perf/results/redis-<timestamp>.json)")
    a = ap.parse_args()
    rates = parse_rates(a.rate_list)
    if not rates:
        sys.exit("bench_redis: empty --rate-list")
    if a.size < 64:
        sys.exit("bench_redis: --size must be at least 64")
    conns_fixed = a.conns
    # bf.prepare raises RLIMIT_NOFILE to fit a.conns: make that the largest row
    a.conns = max(a.conns if any(r != "max" for r in rates) else 0, a.ingest_conns if "max" in rates else 0)
    stamp, nofile = bf.prepare(a, "bench_redis")  # also builds loadgen, makes perf/results
    build_pub()
    try:
        help_text = subprocess.run([a.server_bin, "--help"], capture_output=True, text=True, timeout=10)
        if "--redis" not in help_text.stdout + help_text.stderr:
            sys.exit(f"bench_redis: {a.server_bin} has no --redis flag (built before Redis support?)")
    except (OSError, subprocess.TimeoutExpired) as e:
        sys.exit(f"bench_redis: {a.server_bin} --help: {e}")
    redis_bin = shutil.which(a.redis_server) or a.redis_server

    a.conns = conns_fixed
    redis = Redis(redis_bin, bf.RESULTS / f"redis-{stamp}-redis-server.log")
    runs = []
    try:
        for rate in rates:
            try:
                runs.append(run_row(a, redis, rate, stamp))
            except RuntimeError as e:
                sys.exit(f"bench_redis: rate {rate}: {e}")
            time.sleep(1)  # let TIME_WAIT and the kernel settle between runs
    finally:
        redis.stop()

    out = {
        "benchmark": "redis",
        "timestamp": stamp,
        "git": bf.git_describe(),
        "machine": bf.machine_info(nofile),
        "server": a.server_bin,
        "redis_server": {"binary": redis_bin, "version": redis.version, "cmd": redis.cmd},
        "options": vars(a),
        "runs": runs,
    }
    path = pathlib.Path(a.json) if a.json else bf.RESULTS / f"redis-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")

    print()
    print(f"Redis ingest and latency: ringcast --shards {a.shards} --batch-ms {a.batch_ms} --redis, redis-server "
          f"{redis.version} on loopback, {a.size}-byte messages on {CHANNEL_PREFIX}{a.topic}, window "
          f"{a.duration:g} s after {a.warmup:g} s warm-up, {os.cpu_count()} CPUs shared by ringcast, Redis, "
          f"the publisher and the load generator")
    print()
    print(fmt_table(runs))
    print()
    bad = False
    for r in runs:
        problems = problems_of(r, a)
        if problems:
            bad = True
            print(f"rate {r['rate']}: " + "; ".join(problems))
        if r["rate"] == "max":
            print(f"rate max: publisher held back {100 * r['publisher_paused_frac']:.0f}% of its run by the "
                  f"{a.omem_cap}-byte omem cap (max omem seen {r['publisher']['max_omem']:,} bytes)")
    shown = path.relative_to(bf.ROOT) if path.resolve().is_relative_to(bf.ROOT) else path
    print(f"results: {shown}")
    bad = bad or any(r["loadgen_exit"] != 0 for r in runs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
