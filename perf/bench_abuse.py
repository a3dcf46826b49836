#!/usr/bin/env python3
"""perf/bench_abuse.py — healthy subscribers beside hostile clients (issue 12, scenario "abuse").

Two runs in one invocation, one fresh server each, the same duration:

  baseline  1,000 healthy subscribers (perf/build/loadgen), nothing else;
  abuse     the same 1,000 subscribers beside 1,000 hostile clients
            (perf/build/abuse, built from perf/abuse.c): never reading
            (firehose + ping floods), slowloris (HTTP heads and WebSocket
            frames one byte a second), pipelined GET /healthz and /metrics
            floods, unfinished messages (1–15 MiB on /echo with --echo,
            60 KB and 8 MiB announced on /ws), and permessage-deflate bombs
            inflating to 16 MiB, reconnecting whenever the server closes
            them. By default the server runs as in production, without
            /echo (a conformance-testing endpoint); --echo adds it and
            aims the hostile clients at it too.

Each run:
  1. start  ringcast --listen 127.0.0.1:<free> --admin-listen 127.0.0.1:<free> --shards 2
            --demo --demo-rate R --demo-size 256 --demo-topics 32 (--echo with --echo)
            --stall-timeout-s 5 --message-timeout-ms 2000   (limit flags only if the binary knows them)
  2. abuse run: start the hostile clients, wait --lead seconds
  3. run    loadgen --conns 1000 --topic-count 32 (each subscriber takes every demo topic)
            --warmup 3 --duration D: lost/duplicated from per-topic seq, latency percentiles
  4. stop the hostile clients and, --tail seconds later, the server
and once a second all along: the server's VmRSS, the machine's kernel TCP
memory (/proc/net/sockstat "TCP: … mem" pages × 4096), the kernel memory of
the server's own sockets and of each client group (ss -tm: r + w + f per
socket), and the server's /metrics from the admin listener
(ringcast_connections, ringcast_queued_bytes, the close counters; missing
ones are left out).

Prints the healthy subscribers' figures side by side (abuse ÷ baseline),
the memory peaks against the documented bound

    user memory   ≤ RSS before any client + connections × (max-queue-bytes + 64 KiB) + max-partial-bytes
    kernel memory ≤ connections × 2 × (sndbuf + rcvbuf)      (the server's sockets)

and what the hostile clients met. Everything (loadgen and abuse JSON, the
time series, the commands) goes to perf/results/<timestamp>-abuse/
(results.json, report.md, memory.png when matplotlib imports, server logs).

    perf/run setup        # builds perf/build/loadgen, makes perf/build/harness-venv (matplotlib)
    perf/build/harness-venv/bin/python perf/bench_abuse.py
    perf/build/harness-venv/bin/python perf/bench_abuse.py --hostile 500 --duration 20 --runs abuse
    perf/build/harness-venv/bin/python perf/bench_abuse.py --abuse-arg=--mix=bomb=1000

Server and clients share the machine's CPUs: the hostile clients' own CPU
and the loopback softirq are reported beside the server's.
"""
import argparse
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench_fanout as bf  # noqa: E402  (the shared benchmark machinery)

PERF, ROOT, RESULTS = bf.PERF, bf.ROOT, bf.RESULTS
ABUSE_SRC = PERF / "abuse.c"
ABUSE_BIN = PERF / "build" / "abuse"
log = bf.log

KIB, MIB = 1024, 1024 * 1024
METRICS = ["ringcast_connections", "ringcast_ws_connections", "ringcast_queued_bytes",
           "ringcast_slow_consumer_closes_total", "ringcast_stall_closes_total",
           "ringcast_connections_refused_total", "ringcast_message_timeouts_total",
           "ringcast_partial_input_closes_total", "ringcast_partial_bytes",
           "ringcast_messages_conflated_total", "ringcast_client_errors_total"]
CLOSE_COUNTERS = ["ringcast_slow_consumer_closes_total", "ringcast_stall_closes_total",
                  "ringcast_connections_refused_total", "ringcast_message_timeouts_total",
                  "ringcast_partial_input_closes_total"]
# The documented limits and their defaults (README, `ringcast --help`): the bound uses what the server runs with.
LIMIT_DEFAULTS = {"--max-queue-bytes": 1 * MIB, "--sndbuf": 128 * KIB, "--rcvbuf": 128 * KIB,
                  "--max-partial-bytes": 256 * MIB, "--max-client-message-bytes": 64 * KIB}


def build_abuse():
    """Builds perf/build/abuse when it is missing or older than abuse.c."""
    if ABUSE_BIN.exists() and ABUSE_BIN.stat().st_mtime >= ABUSE_SRC.stat().st_mtime:
        return
    ABUSE_BIN.parent.mkdir(parents=True, exist_ok=True)
    cmd = [os.environ.get("CC", "cc"), "-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-o", str(ABUSE_BIN),
           str(ABUSE_SRC), "-lz"]
    log("building " + " ".join(cmd))
    subprocess.run(cmd, check=True)


def parse_size(v):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)i?[bB]?\s*", str(v))
    if not m:
        raise ValueError(v)
    return int(float(m.group(1)) * {"": 1, "k": KIB, "m": MIB, "g": 1024 * MIB}[m.group(2).lower()])


def flag_value(args, flag, default):
    """The value of --flag in a server command line (--flag V or --flag=V; the last one wins)."""
    val = default
    for i, x in enumerate(args):
        if x == flag and i + 1 < len(args):
            val = args[i + 1]
        elif x.startswith(flag + "="):
            val = x.split("=", 1)[1]
    return val


def server_flags(server_bin):
    """The flags `ringcast --help` lists (so flags an older binary rejects are left out)."""
    try:
        out = subprocess.run([server_bin, "--help"], capture_output=True, text=True, timeout=10)
        return set(re.findall(r"(?m)^\s+(--[a-z0-9-]+)", out.stdout + out.stderr))
    except (OSError, subprocess.TimeoutExpired):
        return set()


# ---------------------------------------------------------------- sampling

def sockstat():
    out = {}
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                p = line.split()[1:]
                out = {p[i]: int(p[i + 1]) for i in range(0, len(p) - 1, 2)}
    return out


SKMEM = re.compile(r"skmem:\(r(\d+),rb(\d+),t(\d+),tb(\d+),f(\d+),w(\d+),o(\d+),bl(\d+)")


def ss_memory(port, hostile_srcs):
    """Kernel memory (r + w + f: receive queue, send queue, forward allocation) of every TCP socket on the
    machine, by group: the server's own (local port = its port), the hostile clients' (peer port = its port,
    source address in hostile_srcs), the healthy clients' (the other sockets to its port), and "foreign":
    everything else (other people's tests and benchmarks, which /proc/net/sockstat counts too). Also the
    socket counts."""
    try:
        out = subprocess.run(["ss", "-tmnH"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    groups = ("server", "hostile", "healthy", "foreign")
    mem, count = dict.fromkeys(groups, 0), dict.fromkeys(groups, 0)
    group = None
    suffix = f":{port}"
    for line in out.splitlines():
        if not line.startswith(("\t", " ")):
            parts = line.split()
            group = None
            if len(parts) >= 5:
                local, peer = parts[3], parts[4]
                if local.endswith(suffix):
                    group = "server"
                elif peer.endswith(suffix):
                    group = "hostile" if local.rsplit(":", 1)[0] in hostile_srcs else "healthy"
                else:
                    group = "foreign"
                count[group] += 1
            continue
        m = SKMEM.search(line)
        if m and group:
            # ss prints these as unsigned 32-bit; the forward allocation can be transiently negative
            r, rb, t, tb, f, w = (int(x) - (1 << 32) if int(x) >= 1 << 31 else int(x) for x in m.groups()[:6])
            mem[group] += max(0, r + w + f)
    return {"mem": mem, "count": count}


def proc_cpu_ns(pid):
    try:
        return bf.proc_cpu_ns(pid)
    except (OSError, ValueError):
        return None


def all_procs_ticks():
    """{pid: (name, utime + stime in ticks)} of every process: who else used the CPUs. For this process also
    cutime + cstime: the ss it runs and waits for."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        v = st[st.rindex(")") + 2:].split()
        out[int(d)] = (name, int(v[11]) + int(v[12]) + (int(v[13]) + int(v[14]) if int(d) == os.getpid() else 0))
    return out


def steal_ns():
    """The machine's steal time (the hypervisor running someone else on our vCPUs), in ns."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]] + [0] * 8
    return v[7] * 1_000_000_000 // bf.CLK_TCK


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


class Sampler(threading.Thread):
    """Once a second: server RSS, sockstat, ss groups, fds, CPU of the server and the clients. /metrics is
    scraped by a thread of its own (a server under attack may answer late): each sample carries the latest
    scrape and its age."""

    def __init__(self, run, server_pid, port, admin_port, hostile_srcs, use_ss):
        super().__init__(daemon=True)
        self.run_ = run
        self.pid, self.port, self.admin_port = server_pid, port, admin_port
        self.hostile_srcs, self.use_ss = hostile_srcs, use_ss
        self.t0 = time.monotonic()
        self.samples = []
        self.stop_ev = threading.Event()
        self.phase = "start"
        self.pids = {}  # name -> pid of the clients, for their CPU
        self.guard, self.guard_bytes = None, 0  # called once when the server's RSS passes guard_bytes
        self.last_metrics, self.last_metrics_t = {}, None
        self.scrapes = []  # how long each /metrics took: the operator's view of a server under attack
        self.metrics_thread = threading.Thread(target=self.scrape_loop, daemon=True)

    def metrics(self):
        if self.admin_port:
            return bf.scrape_metrics(self.admin_port, timeout=5.0)
        # a binary without --admin-listen (older than the admin listener) serves it on the client port
        return bf.scrape_metrics(self.port, timeout=5.0)

    def scrape_loop(self):
        while not self.stop_ev.is_set():
            t = time.monotonic()
            m = self.metrics()
            took = time.monotonic() - t
            self.scrapes.append({"t": round(t - self.t0, 3), "s": round(took, 4), "ok": bool(m), "phase": self.phase})
            if m:
                self.last_metrics, self.last_metrics_t = m, time.monotonic() - self.t0
            self.stop_ev.wait(max(0.0, 1.0 - took))

    def sample(self):
        t = time.monotonic() - self.t0
        try:
            rss_kb, hwm_kb = bf.proc_rss_kb(self.pid)
        except OSError:
            return None
        s = {"t": round(t, 3), "phase": self.phase, "rss_kb": rss_kb, "hwm_kb": hwm_kb,
             "sockstat": sockstat(), "fds": fd_count(self.pid), "server_cpu_ns": proc_cpu_ns(self.pid),
             "busy_ns": list(bf.machine_busy_ns())}
        s["tcp_mem_bytes"] = s["sockstat"].get("mem", 0) * 4096
        for name, pid in list(self.pids.items()):
            s[f"{name}_cpu_ns"] = proc_cpu_ns(pid)
        if self.use_ss:
            s["ss"] = ss_memory(self.port, self.hostile_srcs)
        s["metrics"] = self.last_metrics
        s["metrics_age_s"] = None if self.last_metrics_t is None else round(t - self.last_metrics_t, 3)
        hostile = self.run_.get("hostile_stat")
        if hostile:
            s["hostile_open"] = hostile.get("open")
        return s

    def run(self):
        self.metrics_thread.start()
        nxt = time.monotonic()
        while not self.stop_ev.is_set():
            s = self.sample()
            if s:
                self.samples.append(s)
                if self.guard and s["rss_kb"] * 1024 > self.guard_bytes and not self.run_.get("rss_guard"):
                    self.run_["rss_guard"] = {"t": s["t"], "rss_mb": s["rss_kb"] / 1024}
                    log(f"server RSS {s['rss_kb'] / 1024:,.0f} MB is over --max-rss-mb: stopping the hostile clients")
                    self.guard()
            nxt = max(nxt + 1.0, time.monotonic())
            self.stop_ev.wait(max(0.0, nxt - time.monotonic()))

    def stop(self):
        self.stop_ev.set()
        self.join(15)
        self.metrics_thread.join(10)


# ---------------------------------------------------------------- one run

def server_cmd(a, port, admin_port, known):
    cmd = [a.server_bin, "--listen", f"127.0.0.1:{port}", "--shards", str(a.shards), "--demo",
           "--demo-rate", f"{a.rate:g}", "--demo-size", str(a.size), "--demo-topics", str(a.demo_topics)]
    if a.echo:
        cmd.append("--echo")
    dropped = []
    wanted = [("--admin-listen", f"127.0.0.1:{admin_port}"), ("--stall-timeout-s", str(a.stall_timeout_s)),
              ("--message-timeout-ms", str(a.message_timeout_ms))]
    for flag, val in wanted:
        if flag in known or not known:
            cmd += [flag, val]
        else:
            dropped.append(flag)
    return cmd + a.server_arg, dropped


def loadgen_cmd(a, port, json_path):
    return [str(bf.LOADGEN_BIN), "--port", str(port), "--path", "/ws", "--conns", str(a.healthy),
            "--topic-count", str(a.demo_topics), "--topics-per-conn", str(a.topics_per_conn),
            "--warmup", str(a.warmup), "--duration", str(a.duration), "--connect-rate", str(a.connect_rate),
            "--threads", str(a.loadgen_threads), "--json", str(json_path), *a.loadgen_arg]


def abuse_cmd(a, port, json_path):
    return [str(ABUSE_BIN), "--port", str(port), "--conns", str(a.hostile), "--src-addrs", a.hostile_src,
            "--json", str(json_path), *([] if a.echo else ["--no-echo"]), *a.abuse_arg]


def wait_quiet(a):
    """Waits (up to --quiet-wait s) until the machine's CPUs are nearly idle for 2 s: other people's builds
    and tests make the latency figures meaningless. Returns the busy % of one CPU last measured."""
    deadline = time.monotonic() + a.quiet_wait
    said = False
    while True:
        b0 = bf.machine_busy_ns()
        time.sleep(2)
        b1 = bf.machine_busy_ns()
        busy = 100.0 * ((b1[0] - b0[0]) + (b1[1] - b0[1])) / 1e9 / 2
        if busy <= a.quiet_pct or time.monotonic() >= deadline:
            if said:
                log(f"machine busy {busy:.0f}% of a CPU: " + ("starting" if busy <= a.quiet_pct else "starting anyway"))
            return busy
        if not said:
            log(f"machine busy {busy:.0f}% of a CPU (someone else's build or tests?): waiting up to "
                f"{a.quiet_wait:g} s for it to go below {a.quiet_pct:g}%")
            said = True


def run_one(a, name, outdir, known):
    port, admin_port = bf.free_port(), bf.free_port()
    while admin_port == port:
        admin_port = bf.free_port()
    cmd, dropped = server_cmd(a, port, admin_port, known)
    if "--admin-listen" in dropped:
        admin_port = None
    if dropped:
        log(f"{a.server_bin} does not list {', '.join(dropped)}: left out")
    run = {"name": name, "server_cmd": cmd, "dropped_flags": dropped, "port": port, "admin_port": admin_port,
           "busy_before_pct": wait_quiet(a) if a.quiet_wait > 0 else None}
    log(f"{name}: " + " ".join(cmd))
    server_log = outdir / f"server-{name}.log"
    server = bf.Server(cmd, server_log)
    run["server_pid"] = server.proc.pid
    abuse = lg = sampler = None
    edges, lg_json = {}, outdir / f"loadgen-{name}.json"
    try:
        server.wait_listening(port)
        time.sleep(0.5)
        sampler = Sampler(run, server.proc.pid, port, admin_port, set(a.hostile_src.split(",")), not a.no_ss)
        sampler.start()
        time.sleep(1.5)  # two samples of the idle server: the "before any client" figures
        if name == "abuse":
            acmd = abuse_cmd(a, port, outdir / "abuse.json")
            run["abuse_cmd"] = acmd
            log(" ".join(acmd))
            sampler.phase = "hostile"
            abuse = subprocess.Popen(acmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1)
            sampler.pids["abuse"] = abuse.pid
            run["abuse_pid"] = abuse.pid
            sampler.guard_bytes = a.max_rss_mb * MIB
            sampler.guard = lambda: abuse.poll() is None and abuse.send_signal(signal.SIGINT)

            def read_abuse():
                for line in abuse.stderr:
                    if line.startswith("STAT "):
                        try:
                            run["hostile_stat"] = json.loads(line[5:])
                        except ValueError:
                            pass
                    else:
                        print("  " + line.rstrip("\n"), file=sys.stderr, flush=True)
            threading.Thread(target=read_abuse, daemon=True).start()
            time.sleep(a.lead)
            if abuse.poll() is not None:
                raise RuntimeError(f"the hostile clients exited early (status {abuse.returncode})")
        lcmd = loadgen_cmd(a, port, lg_json)
        run["loadgen_cmd"] = lcmd
        log(" ".join(lcmd))
        sampler.phase = "ramp"
        lg = subprocess.Popen(lcmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1)
        sampler.pids["loadgen"] = lg.pid
        run["loadgen_pid"] = lg.pid
        budget = a.healthy / a.connect_rate + 15 + a.warmup + a.duration + 60
        watchdog = threading.Timer(budget, lambda: (log("loadgen overran its time; killing it"), lg.kill()))
        watchdog.start()
        try:
            for line in lg.stderr:
                line = line.rstrip("\n")
                if line in ("WINDOW START", "WINDOW END"):
                    k = "start" if line == "WINDOW START" else "end"
                    e = {"t": time.monotonic() - sampler.t0, "server_cpu_ns": proc_cpu_ns(server.proc.pid),
                         "busy_ns": bf.machine_busy_ns(), "steal_ns": steal_ns(), "procs": all_procs_ticks()}
                    if abuse:
                        e["abuse_cpu_ns"] = proc_cpu_ns(abuse.pid)
                    if k == "end":
                        e["rss_kb"], e["hwm_kb"] = bf.proc_rss_kb(server.proc.pid)
                    edges[k] = e
                    sampler.phase = "window" if k == "start" else "after"
                print(f"  {line}", file=sys.stderr, flush=True)
            run["loadgen_exit"] = lg.wait()
        finally:
            watchdog.cancel()
        if abuse:
            run["abuse_exit"] = bf.stop_process(abuse, 10, sig=signal.SIGINT, what="abuse")
            try:
                run["hostile"] = json.loads((outdir / "abuse.json").read_text())
            except (OSError, ValueError):
                run["hostile"] = None
        sampler.phase = "tail"
        time.sleep(a.tail)
        if server.proc.poll() is not None:
            log(f"server exited during the run (status {server.proc.returncode}); see {server_log}")
            run["server_died"] = server.proc.returncode
        run["metrics_end"] = sampler.metrics()
    finally:
        if sampler:
            sampler.stop()
        for p in (lg, abuse):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        run["server_exit"] = server.stop()
    run["samples"] = sampler.samples if sampler else []
    run["scrapes"] = sampler.scrapes if sampler else []
    run["edges"] = edges
    if not lg_json.exists():
        raise RuntimeError(f"{name}: loadgen wrote no result (exit {run.get('loadgen_exit')})")
    run["loadgen"] = json.loads(lg_json.read_text())
    if "start" not in edges or "end" not in edges:
        raise RuntimeError(f"{name}: no measured window")
    summarize(a, run)
    return run


def summarize(a, run):
    """The figures of one run, from loadgen's JSON, the window edges and the samples."""
    lg, e0, e1, ss_ = run["loadgen"], run["edges"]["start"], run["edges"]["end"], run["samples"]
    wall = e1["t"] - e0["t"]
    f = {"healthy_open": lg["conns_open"], "deliveries_per_s": lg["deliveries_per_s"],
         "target_deliveries_per_s": a.rate * a.topics_per_conn / a.demo_topics * a.healthy,
         "lost": lg["lost"], "duplicated": lg["duplicated"], "errors": lg["errors"],
         "error_detail": lg["error_detail"], "latency_us": lg["latency_us"]}
    # CPU in the window from every process's utime + stime at the window's edges: the server, the hostile
    # clients, loadgen, this script (its sampler and the ss it runs), everyone else ("other": other people's
    # builds and tests, kernel threads), and the machine's softirq time (loopback TCP of both ends).
    pct = lambda ticks: 100.0 * ticks / bf.CLK_TCK / wall if wall > 0 else None  # noqa: E731
    p0, p1 = e0.pop("procs", {}), e1.pop("procs", {})
    roles = {run.get("server_pid"): "server", run.get("abuse_pid"): "hostile", run.get("loadgen_pid"): "loadgen",
             os.getpid(): "sampler"}
    ticks = dict.fromkeys(("server", "hostile", "loadgen", "sampler", "other"), 0)
    others = []
    for pid, (pname, t1) in p1.items():
        d = t1 - p0[pid][1] if pid in p0 and p0[pid][0] == pname else t1 if pid not in p0 else 0
        if d <= 0:
            continue
        role = roles.get(pid, "other")
        ticks[role] += d
        if role == "other":
            others.append((f"{pname} ({pid})", pct(d)))
    f["cpu_pct"] = {k: pct(v) for k, v in ticks.items()}
    if wall > 0:
        # "other" from the machine's task time (/proc/stat) less ours: it also holds processes that ran and
        # exited inside the window (a build's compiler runs), which no snapshot sees.
        busy = 100.0 * (e1["busy_ns"][0] - e0["busy_ns"][0]) / 1e9 / wall
        steal = 100.0 * (e1["steal_ns"] - e0["steal_ns"]) / 1e9 / wall
        ours = sum(f["cpu_pct"][k] for k in ("server", "hostile", "loadgen", "sampler"))
        f["cpu_pct"]["other"] = max(0.0, busy - steal - ours)
        f["cpu_pct"]["steal"] = steal
        f["cpu_pct"]["softirq"] = 100.0 * (e1["busy_ns"][1] - e0["busy_ns"][1]) / 1e9 / wall
    others.sort(key=lambda x: -x[1])
    f["other_cpu_top"] = [(n, round(v, 1)) for n, v in others[:6]]
    idle = [s for s in ss_ if s["phase"] == "start"]
    f["rss_start_mb"] = (idle[-1] if idle else ss_[0])["rss_kb"] / 1024 if ss_ else None
    f["rss_peak_mb"] = max([s["hwm_kb"] for s in ss_] + [e1["hwm_kb"]]) / 1024
    f["rss_peak_sampled_mb"] = max(s["rss_kb"] for s in ss_) / 1024 if ss_ else None
    f["rss_window_end_mb"] = e1["rss_kb"] / 1024
    f["rss_final_mb"] = ss_[-1]["rss_kb"] / 1024 if ss_ else None
    f["tcp_mem_start_mb"] = (idle[-1] if idle else ss_[0])["tcp_mem_bytes"] / MIB if ss_ else None
    f["tcp_mem_peak_mb"] = max(s["tcp_mem_bytes"] for s in ss_) / MIB if ss_ else None
    with_ss = [s for s in ss_ if s.get("ss")]
    for g in ("server", "hostile", "healthy", "foreign"):
        f[f"sock_mem_{g}_peak_mb"] = max(s["ss"]["mem"][g] for s in with_ss) / MIB if with_ss else None
    conns = [s["metrics"].get("ringcast_connections") for s in ss_ if s["metrics"].get("ringcast_connections") is not None]
    base_fds = idle[-1]["fds"] if idle and idle[-1]["fds"] is not None else None
    fds = [s["fds"] - base_fds for s in ss_ if s["fds"] is not None and base_fds is not None]
    f["conns_peak"] = int(max(conns)) if conns else (max(fds) if fds else None)
    f["conns_peak_source"] = "ringcast_connections" if conns else "open fds − fds before any client"
    f["server_sockets_peak"] = max(s["ss"]["count"]["server"] for s in with_ss) if with_ss else None
    qb = [s["metrics"].get("ringcast_queued_bytes") for s in ss_ if s["metrics"].get("ringcast_queued_bytes") is not None]
    f["queued_bytes_peak_mb"] = max(qb) / MIB if qb else None
    win = sorted(x["s"] for x in run.get("scrapes", []) if x["phase"] == "window")
    f["metrics_scrape_s"] = {"median": win[len(win) // 2], "max": win[-1], "failed": sum(
        1 for x in run["scrapes"] if x["phase"] == "window" and not x["ok"])} if win else None
    m_end = run.get("metrics_end") or (ss_[-1]["metrics"] if ss_ else {})
    f["counters"] = {k: m_end.get(k) for k in CLOSE_COUNTERS + ["ringcast_messages_conflated_total"]}
    run["figures"] = f


# ---------------------------------------------------------------- bounds and report

def bounds(a, run):
    cmd = run["server_cmd"]
    lim = {}
    for flag, d in LIMIT_DEFAULTS.items():
        try:
            lim[flag] = parse_size(flag_value(cmd, flag, d))
        except ValueError:
            lim[flag] = d
    f = run["figures"]
    conns = f["conns_peak"] or 0
    per_conn_user = lim["--max-queue-bytes"] + 64 * KIB
    user = f["rss_start_mb"] * MIB + conns * per_conn_user + lim["--max-partial-bytes"]
    snd, rcv = lim["--sndbuf"], lim["--rcvbuf"]
    kern = conns * 2 * (snd + rcv) if snd > 0 and rcv > 0 else None
    # sockstat counts both ends of every loopback connection: the server's sockets (bound above), the
    # hostile clients' (SO_SNDBUF/SO_RCVBUF set by perf/abuse: ≤ 2 × (snd + rcv) each) and the
    # healthy subscribers' (autotuned; their measured peak).
    hopt = (run.get("hostile") or {}).get("options", {})
    hconns = a.hostile if run["name"] == "abuse" else 0
    hsnd, hrcv = hopt.get("sndbuf", 65536), hopt.get("rcvbuf", 65536)
    hostile_kern = hconns * 2 * (hsnd + hrcv) if hconns and hsnd > 0 and hrcv > 0 else (0 if not hconns else None)
    healthy_kern = (f["sock_mem_healthy_peak_mb"] or 0) * MIB
    foreign_kern = (f.get("sock_mem_foreign_peak_mb") or 0) * MIB
    machine = None if kern is None or hostile_kern is None else \
        kern + hostile_kern + healthy_kern + foreign_kern + f["tcp_mem_start_mb"] * MIB
    b = {"limits": lim, "conns": conns,
         "user_bytes": user, "user_formula": f"RSS before clients {f['rss_start_mb']:.1f} MB + {conns:,} conns × "
                                            f"({lim['--max-queue-bytes'] / KIB:,.0f} KiB + 64 KiB) + max-partial-bytes "
                                            f"{lim['--max-partial-bytes'] / MIB:,.0f} MiB",
         "user_ok": f["rss_peak_mb"] * MIB <= user,
         "kernel_bytes": kern, "kernel_formula": f"{conns:,} conns × 2 × ({snd / KIB:,.0f} KiB + {rcv / KIB:,.0f} KiB)",
         "kernel_ok": None if kern is None or f["sock_mem_server_peak_mb"] is None
         else f["sock_mem_server_peak_mb"] * MIB <= kern,
         "machine_bytes": machine,
         "machine_formula": "server bound + hostile clients' sockets "
                            f"({hconns:,} × 2 × ({hsnd / KIB:,.0f} + {hrcv / KIB:,.0f}) KiB) + healthy clients' "
                            f"measured peak {healthy_kern / MIB:,.1f} MB + other processes' sockets' measured peak "
                            f"{foreign_kern / MIB:,.1f} MB + TCP memory before clients "
                            f"{f['tcp_mem_start_mb']:.1f} MB",
         "machine_ok": None if machine is None else f["tcp_mem_peak_mb"] * MIB <= machine}
    run["bounds"] = b
    return b


def fnum(v, spec=",.0f", none="–"):
    return none if v is None else format(v, spec)


def ratio(x, y):
    return "–" if x is None or y in (None, 0) else f"{x / y:.2f}×"


def table(a, runs):
    by = {r["name"]: r for r in runs}
    names = [n for n in ("baseline", "abuse") if n in by]
    two = len(names) == 2
    head = "| | " + " | ".join(names) + (" | abuse ÷ baseline |" if two else " |")
    lines = [head, "|---|" + "---:|" * (len(names) + (1 if two else 0))]

    def row(label, get, spec=",.0f", rat=False):
        vals = [get(by[n]) for n in names]
        cells = [fnum(v, spec) for v in vals]
        if two:
            cells.append(ratio(vals[1], vals[0]) if rat else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    F = lambda k: (lambda r: r["figures"][k])  # noqa: E731
    L = lambda k: (lambda r: r["figures"]["latency_us"].get(k))  # noqa: E731
    row("hostile clients", lambda r: a.hostile if r["name"] == "abuse" else 0)
    row("healthy subscribers open at the end", F("healthy_open"))
    row("healthy deliveries/s", F("deliveries_per_s"), rat=True)
    row("healthy lost", F("lost"))
    row("healthy duplicated", F("duplicated"))
    row("healthy errors", F("errors"))
    row("healthy p50 latency µs", L("p50"), rat=True)
    row("healthy p99 latency µs", L("p99"), rat=True)
    row("healthy p99.9 latency µs", L("p999"), rat=True)
    row("healthy max latency µs", L("max"), rat=True)
    row("server RSS MB before clients", F("rss_start_mb"), ",.1f")
    row("server RSS MB peak (VmHWM)", F("rss_peak_mb"), ",.1f", rat=True)
    row("server RSS MB at the window's end", F("rss_window_end_mb"), ",.1f")
    row(f"server RSS MB final ({a.tail:g} s after the clients left)", F("rss_final_mb"), ",.1f")
    row("server connections peak", F("conns_peak"))
    row("server queued bytes peak MB (/metrics)", F("queued_bytes_peak_mb"), ",.1f")
    row("kernel memory of the server's sockets, peak MB (ss)", F("sock_mem_server_peak_mb"), ",.1f", rat=True)
    row("kernel memory of the hostile clients' sockets, peak MB (ss)", F("sock_mem_hostile_peak_mb"), ",.1f")
    row("kernel memory of the healthy clients' sockets, peak MB (ss)", F("sock_mem_healthy_peak_mb"), ",.1f")
    row("kernel TCP memory, machine, peak MB (sockstat)", F("tcp_mem_peak_mb"), ",.1f", rat=True)
    row("… of which other processes' sockets, peak MB (ss)", F("sock_mem_foreign_peak_mb"), ",.1f")
    for k in CLOSE_COUNTERS + ["ringcast_messages_conflated_total"]:
        row(k.replace("ringcast_", ""), lambda r, k=k: r["figures"]["counters"].get(k))
    row("/metrics response time in the window, median ms (admin listener)",
        lambda r: r["figures"]["metrics_scrape_s"] and 1000 * r["figures"]["metrics_scrape_s"]["median"], rat=True)
    row("/metrics response time in the window, max ms",
        lambda r: r["figures"]["metrics_scrape_s"] and 1000 * r["figures"]["metrics_scrape_s"]["max"], rat=True)
    for k in ("server", "hostile", "loadgen", "softirq", "sampler", "other", "steal"):
        row(f"{k} CPU % (window)", lambda r, k=k: r["figures"]["cpu_pct"].get(k))
    return "\n".join(lines)


def hostile_table(run):
    h = run.get("hostile")
    if not h:
        return ""
    lines = ["| kind | slots | connects | closed by server | mean life s | MB sent | MB/s sent | how the server closed them |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    dur = h.get("t") or 0
    for k, v in h["kinds"].items():
        reasons = sorted(v.get("server_closes", {}).items(), key=lambda kv: -kv[1])
        rs = ", ".join(f"{n:,} × {key}" for key, n in reasons[:5]) + (" …" if len(reasons) > 5 else "")
        lines.append(f"| {k} | {v['slots']:,} | {v['connects']:,} | {v['closes']:,} | {v.get('mean_life_s', 0):.1f} | "
                     f"{v['bytes_sent'] / 1e6:,.1f} | {v['bytes_sent'] / 1e6 / dur if dur else 0:,.1f} | {rs or '–'} |")
    return "\n".join(lines)


def bound_lines(run):
    b, f = run["bounds"], run["figures"]
    mb = lambda x: "–" if x is None else f"{x / MIB:,.1f} MB"  # noqa: E731
    ok = lambda v: "n/a" if v is None else ("under" if v else "**OVER**")  # noqa: E731
    return [
        f"{run['name']}: user memory: peak RSS {f['rss_peak_mb']:,.1f} MB, bound {mb(b['user_bytes'])} "
        f"= {b['user_formula']}: {ok(b['user_ok'])}",
        f"{run['name']}: kernel memory of the server's sockets: peak {fnum(f['sock_mem_server_peak_mb'], ',.1f')} MB, "
        f"bound {mb(b['kernel_bytes'])} = {b['kernel_formula']}: {ok(b['kernel_ok'])}",
        f"{run['name']}: kernel TCP memory of the machine (sockstat, both ends of every connection): peak "
        f"{f['tcp_mem_peak_mb']:,.1f} MB, bound {mb(b['machine_bytes'])} = {b['machine_formula']}: "
        f"{ok(b['machine_ok'])}",
    ]


def problems(a, run):
    f, p = run["figures"], []
    if f["healthy_open"] < a.healthy:
        p.append(f"only {f['healthy_open']} of {a.healthy} healthy subscribers open at the end")
    if f["lost"] or f["duplicated"]:
        p.append(f"healthy subscribers: lost {f['lost']}, duplicated {f['duplicated']} (must be 0)")
    if f["errors"]:
        p.append(f"healthy subscribers: {f['errors']} errors {f['error_detail']}")
    if f["deliveries_per_s"] < 0.95 * f["target_deliveries_per_s"]:
        p.append(f"healthy deliveries {f['deliveries_per_s']:,.0f}/s of {f['target_deliveries_per_s']:,.0f}/s")
    if run.get("rss_guard"):
        g = run["rss_guard"]
        p.append(f"the server's RSS reached {g['rss_mb']:,.0f} MB at t = {g['t']:.0f} s (--max-rss-mb): "
                 f"the hostile clients were stopped there")
    if run.get("server_died") is not None:
        p.append(f"the server died (status {run['server_died']})")
    if run["dropped_flags"]:
        p.append(f"the binary lacks {', '.join(run['dropped_flags'])}")
    foreign = f.get("sock_mem_foreign_peak_mb")
    if foreign and f["tcp_mem_peak_mb"] and foreign > 0.05 * f["tcp_mem_peak_mb"]:
        p.append(f"sockets of other processes held up to {foreign:,.1f} MB of kernel memory: the machine-wide "
                 f"TCP memory (sockstat) counts them too")
    other = f["cpu_pct"].get("other")
    if other is not None and other > 10:
        top = ", ".join(f"{n} {v:.0f}%" for n, v in f.get("other_cpu_top", [])[:4])
        p.append(f"other processes used {other:.0f}% of a CPU in the window ({top}): the machine was not quiet")
    steal = f["cpu_pct"].get("steal")
    if steal is not None and steal > 10:
        p.append(f"the hypervisor took {steal:.0f}% of a CPU (steal) in the window: the VM's host was busy")
    b = run["bounds"]
    for k, what in (("user_ok", "RSS"), ("kernel_ok", "the server's kernel socket memory"),
                    ("machine_ok", "the machine's TCP memory")):
        if b[k] is False:
            p.append(f"{what} went over its bound")
    return p


def plot(runs, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib does not import: no plot (run with perf/build/harness-venv/bin/python after perf/run setup)")
        return None
    fig, axes = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    colors = {"baseline": "tab:blue", "abuse": "tab:red"}
    for r in runs:
        ss_ = r["samples"]
        if not ss_:
            continue
        t = [s["t"] for s in ss_]
        c = colors.get(r["name"], None)
        axes[0].plot(t, [s["rss_kb"] / 1024 for s in ss_], color=c, label=f"{r['name']}: server RSS")
        axes[1].plot(t, [s["tcp_mem_bytes"] / MIB for s in ss_], color=c, label=f"{r['name']}: machine TCP memory (sockstat)")
        if any(s.get("ss") for s in ss_):
            axes[1].plot(t, [s["ss"]["mem"]["server"] / MIB if s.get("ss") else float("nan") for s in ss_], color=c,
                         linestyle="--", label=f"{r['name']}: server's sockets (ss)")
        axes[2].plot(t, [s["metrics"].get("ringcast_connections", float("nan")) for s in ss_], color=c,
                     label=f"{r['name']}: ringcast_connections")
        e = r.get("edges", {})
        if "start" in e and "end" in e:
            for ax in axes:
                ax.axvspan(e["start"]["t"], e["end"]["t"], color=c, alpha=0.06)
    for r in runs:
        b = r.get("bounds")
        if not b or r["name"] != "abuse":
            continue
        for ax, key, label in ((axes[0], "user_bytes", "RSS bound"), (axes[1], "kernel_bytes", "server socket bound")):
            v = b.get(key)
            if v is None:
                continue
            top = ax.get_ylim()[1]
            if v / MIB <= 4 * top:
                ax.axhline(v / MIB, color="black", linestyle=":", label=f"{label} {v / MIB:,.0f} MB")
            else:
                ax.text(0.99, 0.92, f"{label}: {v / MIB:,.0f} MB (off the scale)", transform=ax.transAxes,
                        fontsize=8, ha="right")
    axes[0].set_ylabel("MB")
    axes[1].set_ylabel("MB")
    axes[2].set_ylabel("connections")
    axes[2].set_xlabel("seconds since the server started (shaded: the healthy subscribers' window)")
    axes[0].set_title("ringcast under hostile clients: memory over time")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- main

def mem_available_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return 8192.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server-bin", default="/tmp/rc-latest/bin/ringcast")
    ap.add_argument("--server-arg", action="append", default=[],
                    help="extra server flag, repeatable (e.g. --server-arg=--max-queue-bytes=4M)")
    ap.add_argument("--runs", default="baseline,abuse", help="which runs, in order (default baseline,abuse)")
    ap.add_argument("--healthy", type=int, default=1000, help="healthy subscribers (default 1000)")
    ap.add_argument("--hostile", type=int, default=1000, help="hostile clients (default 1000, all five kinds alike)")
    ap.add_argument("--echo", action="store_true",
                    help="serve /echo (a conformance-testing endpoint, off in production) and aim the hostile "
                         "variants at it too; default: the production endpoints only")
    ap.add_argument("--rate", type=float, default=100, help="demo messages/s over all topics (default 100)")
    ap.add_argument("--size", type=int, default=256, help="--demo-size (default 256)")
    ap.add_argument("--demo-topics", type=int, default=32, help="--demo-topics (default 32)")
    ap.add_argument("--topics-per-conn", type=int, default=0,
                    help="demo topics each healthy subscriber takes (default all: rate deliveries/s each)")
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--stall-timeout-s", type=float, default=5, help="server --stall-timeout-s (default 5)")
    ap.add_argument("--message-timeout-ms", type=int, default=2000, help="server --message-timeout-ms (default 2000)")
    ap.add_argument("--lead", type=float, default=5, help="seconds the hostile clients run before the healthy ones connect")
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--duration", type=float, default=30, help="healthy subscribers' measured window, s (default 30)")
    ap.add_argument("--tail", type=float, default=5, help="seconds sampled after every client has gone (default 5)")
    ap.add_argument("--connect-rate", type=float, default=2000, help="healthy connections/s during the ramp")
    ap.add_argument("--loadgen-threads", type=int, default=1)
    ap.add_argument("--loadgen-arg", action="append", default=[], help="extra loadgen flag, repeatable")
    ap.add_argument("--abuse-arg", action="append", default=[],
                    help="extra perf/build/abuse flag, repeatable (perf/build/abuse --help), e.g. --abuse-arg=--mix=bomb=500")
    ap.add_argument("--hostile-src", default="127.0.0.2",
                    help="source addresses of the hostile clients (default 127.0.0.2; the healthy ones use 127.0.0.1)")
    ap.add_argument("--no-ss", action="store_true", help="do not sample per-socket memory with ss")
    ap.add_argument("--quiet-wait", type=float, default=120,
                    help="before each run, wait up to this many seconds for the machine to be idle (default 120; 0: don't)")
    ap.add_argument("--quiet-pct", type=float, default=15,
                    help="idle means: all CPUs together busy less than this %% of one CPU over 2 s (default 15)")
    ap.add_argument("--max-rss-mb", type=float, default=min(8192.0, mem_available_mb() / 3),
                    help="stop the hostile clients early if the server's RSS passes this (a server without limits "
                         "would take the machine down; default min(8 GiB, MemAvailable / 3))")
    a = ap.parse_args()
    if a.topics_per_conn <= 0:
        a.topics_per_conn = a.demo_topics
    names = [n.strip() for n in a.runs.split(",") if n.strip()]
    if not names or any(n not in ("baseline", "abuse") for n in names):
        sys.exit("bench_abuse: --runs takes baseline and/or abuse")
    if not os.access(a.server_bin, os.X_OK):
        sys.exit(f"bench_abuse: {a.server_bin} not found or not executable (--server-bin)")
    nofile = bf.raise_nofile(a.healthy + a.hostile + 200)
    bf.build_loadgen()
    build_abuse()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    outdir = RESULTS / f"{stamp}-abuse"
    outdir.mkdir(parents=True, exist_ok=True)
    known = server_flags(a.server_bin)
    st = os.stat(a.server_bin)

    runs = []
    for i, name in enumerate(names):
        if i:
            time.sleep(2)  # TIME_WAIT and the kernel settle between runs
        try:
            r = run_one(a, name, outdir, known)
        except RuntimeError as e:
            sys.exit(f"bench_abuse: {e}")
        bounds(a, r)
        runs.append(r)

    out = {"benchmark": "abuse", "timestamp": stamp, "git": bf.git_describe(),
           "machine": bf.machine_info(nofile),
           "server": a.server_bin, "server_mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.st_mtime)),
           "options": vars(a), "runs": runs}
    (outdir / "results.json").write_text(json.dumps(out, indent=1) + "\n")
    png = plot(runs, outdir / "memory.png")

    hdr = (f"Abuse: {a.healthy:,} healthy subscribers ({a.topics_per_conn} of {a.demo_topics} demo topics each, "
           f"{a.rate:g} msgs/s, {a.size} B) beside {a.hostile:,} hostile clients, ringcast --shards {a.shards} "
           f"({a.server_bin}, {out['server_mtime']}), window {a.duration:g} s after {a.warmup:g} s warm-up, "
           f"{os.cpu_count()} CPUs shared by everything")
    parts = [hdr, "", table(a, runs), ""]
    ab = next((r for r in runs if r["name"] == "abuse"), None)
    if ab:
        parts += ["Hostile clients:", "", hostile_table(ab), ""]
    parts += ["Bounds (per connection: max-queue-bytes + 64 KiB user memory, 2 × (sndbuf + rcvbuf) kernel memory):", ""]
    for r in runs:
        parts += ["- " + x for x in bound_lines(r)]
    parts.append("")
    for r in runs:
        for p in problems(a, r):
            parts.append(f"{r['name']}: {p}")
    parts.append(f"results: {(outdir / 'results.json').relative_to(ROOT)}" +
                 (f", plot: {png.relative_to(ROOT)}" if png else ""))
    text = "\n".join(parts)
    (outdir / "report.md").write_text(text + "\n")
    print()
    print(text)
    bad = any(r["figures"]["lost"] or r["figures"]["duplicated"] or r.get("loadgen_exit") for r in runs) or \
        any(r["bounds"][k] is False for r in runs for k in ("user_ok", "kernel_ok", "machine_ok"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
