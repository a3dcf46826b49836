#!/usr/bin/env python3
"""perf/harness/harness.py — the body of perf/run (which sets up its venv and runs this).

One scenario, every selected server (ringcast, the peers in perf/peers/, the
floor in perf/floor.c) run one after the other with the same load generator
(perf/loadgen.c) and the same parameters, each measured from outside:

  * server CPU: utime + stime of the server's processes (all threads, all
    processes when there are several) from /proc/PID/stat, sampled when every
    load generator has printed WINDOW START and --duration seconds later (then
    the harness SIGINTs them: they run with --duration 0) → CPU-ns per delivery
  * server memory: VmRSS summed over its processes, before the first
    connection (baseline) and at the end of the window → bytes per connection
    = (end − baseline) ÷ open connections
  * deliveries/s, lost, duplicated, latency from loadgen's JSON

Scenarios (defaults; every one can be overridden):

  fanout         1 topic, N subscribers, --rate 100 msgs/s (1M deliveries/s at 10K), 256 B
  spread         1,000 topics, 10 per subscriber, --rate 10000 msgs/s (1M deliveries/s at 10K)
  deflate        fanout with permessage-deflate offered by every subscriber, 1 KiB messages
  idle           N connections subscribed to a topic nobody publishes: memory per connection
  connect-storm  N connections opened as fast as loadgen can: handshakes/s, CPU per handshake

More connections than one process may hold (RLIMIT_NOFILE) are spread over
several load generator processes, over several loopback source addresses
(127.0.0.1, .2, …) and, for the servers, over several server processes that
share the port with SO_REUSEPORT (ringcast and the floor and the Python and Go
peers; Node through its cluster module). The report says when that happened.
"""
import argparse
import json
import math
import os
import pathlib
import platform
import queue
import re
import resource
import signal
import subprocess
import sys
import threading
import time

PERF = pathlib.Path(__file__).resolve().parent.parent
ROOT = PERF.parent
BUILD = PERF / "build"
sys.path.insert(0, str(PERF))
import bench_fanout as bf  # noqa: E402  (loadgen build, /proc samplers, free_port, git_describe)

ALL_SERVERS = ["ringcast", "node", "python", "go", "floor"]
PEERS = ("node", "python", "go")
SCENARIOS = {
    # name: (rate, size, topic_count, topics_per_conn, deflate, feed, default conns)
    "fanout": dict(rate=100, size=256, topic_count=1, topics_per_conn=1, deflate=False, feed=True, conns="10000"),
    "spread": dict(rate=10000, size=256, topic_count=1000, topics_per_conn=10, deflate=False, feed=True,
                   conns="10000"),
    "deflate": dict(rate=100, size=1024, topic_count=1, topics_per_conn=1, deflate=True, feed=True, conns="10000"),
    "idle": dict(rate=0, size=256, topic_count=1, topics_per_conn=1, deflate=False, feed=False, conns="100000"),
    "connect-storm": dict(rate=0, size=256, topic_count=1, topics_per_conn=1, deflate=False, feed=False,
                          conns="10000"),
}
FD_MARGIN = 200            # descriptors a process keeps for itself (listeners, rings, logs, …)
SERVER_FILL = 0.8          # share of a server process's descriptors the harness plans to fill (SO_REUSEPORT is uneven)
CONNS_PER_SRC = 8000       # connections per loopback source address: connect() finds a free port fast while
                           # under half the ephemeral range (its preferred parity) is taken from that address
SYSCTLS = {"net.core.somaxconn": 65535, "net.ipv4.tcp_max_syn_backlog": 65535}


def log(msg):
    print(f"perf/run: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# builds
# ---------------------------------------------------------------------------

def stale(target, *sources):
    return not target.exists() or any(s.stat().st_mtime > target.stat().st_mtime for s in sources)


def build_all(a, servers):
    bf.build_loadgen()
    BUILD.mkdir(parents=True, exist_ok=True)
    if "floor" in servers:
        floor = BUILD / "floor"
        srcs = [PERF / "floor.c", ROOT / "src/ws/handshake.c", ROOT / "src/http/parser.c", ROOT / "src/ingest/demo.c"]
        if stale(floor, *srcs):
            cmd = [os.environ.get("CC", "cc"), "-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
                   "-I", str(ROOT / "include"), "-o", str(floor), *map(str, srcs), "-luring", "-lz"]
            log("building " + " ".join(cmd))
            subprocess.run(cmd, check=True)
    if "go" in servers:
        peer = BUILD / "peer-go"
        src = PERF / "peers" / "go" / "main.go"
        if stale(peer, src):
            env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOFLAGS="",
                       GOCACHE=str(BUILD / "go-cache"))
            log(f"building {peer.relative_to(ROOT)} (GO111MODULE=off GOPATH=/usr/share/gocode)")
            subprocess.run(["go", "build", "-o", str(peer), str(src)], check=True, env=env)
    if "ringcast" in servers and a.server_bin is None:
        prefix = BUILD / "ringcast"
        binary = prefix / "bin" / "ringcast"
        log(f"building ringcast ReleaseFast: ./dev.sh build --prefix {prefix.relative_to(ROOT)}")
        r = subprocess.run([str(ROOT / "dev.sh"), "build", "--prefix", str(prefix)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stdout[-3000:])
            if not binary.exists():
                sys.exit("perf/run: the ringcast build failed; fix it or pass --server-bin")
            log(f"the ringcast build FAILED; measuring the previous build {binary.relative_to(ROOT)} "
                f"of {time.ctime(binary.stat().st_mtime)}")
        a.server_bin = str(binary)


# ---------------------------------------------------------------------------
# machine limits
# ---------------------------------------------------------------------------

def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard
    try:
        with open("/proc/sys/fs/nr_open") as f:
            nr_open = int(f.read())
    except OSError:
        nr_open = hard
    tried = None
    if hard != resource.RLIM_INFINITY and hard < nr_open:
        try:  # raising the hard limit needs CAP_SYS_RESOURCE; try, and say so if it is refused
            resource.setrlimit(resource.RLIMIT_NOFILE, (nr_open, nr_open))
            want = nr_open
            tried = "raised"
        except (ValueError, OSError) as e:
            tried = f"refused ({e.__class__.__name__}: {e}); no CAP_SYS_RESOURCE"
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {"soft": soft, "hard": hard, "nr_open": nr_open, "raise_hard": tried}


def read_sysctl(name):
    try:
        return pathlib.Path("/proc/sys/" + name.replace(".", "/")).read_text().strip()
    except OSError:
        return None


def raise_sysctls():
    """Raises the listen-backlog sysctls for connection bursts; returns what to restore."""
    changed = {}
    for name, want in SYSCTLS.items():
        cur = read_sysctl(name)
        if cur is None or int(cur.split()[0]) >= want:
            continue
        try:
            pathlib.Path("/proc/sys/" + name.replace(".", "/")).write_text(str(want))
            changed[name] = cur
        except OSError as e:
            log(f"cannot raise {name} ({e}); left at {cur}")
    if changed:
        log("raised " + ", ".join(f"{k} {v} → {SYSCTLS[k]}" for k, v in changed.items()) + " (restored at exit)")
    return changed


def restore_sysctls(changed):
    for name, old in changed.items():
        try:
            pathlib.Path("/proc/sys/" + name.replace(".", "/")).write_text(old)
        except OSError:
            pass


# ---------------------------------------------------------------------------
# process sampling
# ---------------------------------------------------------------------------

def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
            ppid = int(s[s.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree_pids(roots):
    kids = children_map()
    out, todo = [], list(roots)
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_ns(pids):
    total = 0
    for p in pids:
        try:
            total += bf.proc_cpu_ns(p)
        except (OSError, ValueError):
            pass
    return total


def rss_bytes(pids):
    total = 0
    for p in pids:
        try:
            total += bf.proc_rss_kb(p)[0] * 1024
        except OSError:
            pass
    return total


def open_fds(pids):
    total = 0
    for p in pids:
        try:
            total += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return total


class RampSampler:
    """(open fds, RSS) of the server every `period` s while the load generators ramp up, for the
    marginal memory per connection: the slope of RSS against open connections from 40 % of
    them to the end of the window. The average (RSS at the end − RSS before the first connection) ÷ connections
    also charges each connection with fixed costs first touched under load — the pages of the
    provided recv buffer pool (1,024 × 16 KiB per shard), arena growth — which do not grow with
    connections and are paid once per process; at 100,000 idle connections over 7 processes
    (RLIMIT_NOFILE) they are paid 7 times. The slope is what one more connection costs."""

    def __init__(self, server, period=0.5):
        self.server, self.period, self.points = server, period, []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def sample(self):
        pids = tree_pids(self.server.roots)
        self.points.append((open_fds(pids), rss_bytes(pids)))

    def run(self):
        while not self.done.wait(self.period):
            self.sample()

    def stop(self):
        self.done.set()
        self.thread.join()


def marginal_bytes_per_conn(points, fds_base, conns):
    """Least-squares slope of RSS over open fds, from points past 40 % of the connections; None
    unless they span at least a quarter of them."""
    pts = [(f, r) for f, r in points if f - fds_base >= 0.4 * conns]
    if len(pts) < 3 or max(f for f, _ in pts) - min(f for f, _ in pts) < 0.25 * conns:
        return None
    n = len(pts)
    mf, mr = sum(f for f, _ in pts) / n, sum(r for _, r in pts) / n
    var = sum((f - mf) ** 2 for f, _ in pts)
    return sum((f - mf) * (r - mr) for f, r in pts) / var if var else None


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------------------
# servers
# ---------------------------------------------------------------------------

def server_cmds(a, name, sc, port, nprocs):
    """[(argv, env)] for one server: nprocs processes sharing the port (one for Node: cluster)."""
    rate = sc["rate"] if sc["feed"] else 0
    env = dict(os.environ)
    many = nprocs > 1
    if name == "ringcast":
        cmd = [a.server_bin, "--listen", f"127.0.0.1:{port}", "--admin-listen", "off", "--shards", str(a.shards), "--batch-ms",
               str(a.batch_ms), "--idle-timeout-s", "86400", "--log-level", "warn",
               "--deflate", "on" if sc["deflate"] else "off"]
        if sc["feed"]:
            cmd += ["--demo", "--demo-rate", f"{rate:g}", "--demo-size", str(sc["size"]),
                    "--demo-topics", str(sc["topic_count"])]
        return [(cmd + a.server_arg, env)] * nprocs
    if name == "floor":
        cmd = [str(BUILD / "floor"), "--port", str(port), "--rate", f"{rate:g}", "--size", str(sc["size"]),
               "--topics", str(sc["topic_count"])] + (["--reuse-port"] if many else []) + \
            (["--deflate"] if sc["deflate"] else [])
        return [(cmd, env)] * nprocs
    feed = ["--demo-rate", f"{rate:g}", "--demo-size", str(sc["size"]), "--demo-topics", str(sc["topic_count"])]
    if rate > 0:  # the feed starts once every connection is up (SIGUSR2 from run_one)
        feed.append("--feed-on-signal")
    if sc["deflate"]:
        feed.append("--deflate")
    if name == "node":
        env["NODE_PATH"] = "/usr/share/nodejs"
        node = ["node"] + (["--perf-basic-prof"] if a.flamegraph else [])
        cmd = node + [str(PERF / "peers" / "node" / "server.js"), "--port", str(port)] + feed
        if many:
            cmd += ["--workers", str(nprocs)]
        return [(cmd, env)]
    if name == "python":
        cmd = [sys.executable, str(PERF / "peers" / "python" / "server.py"), "--port", str(port)] + feed
        return [(cmd + (["--reuse-port"] if many else []), env)] * nprocs
    if name == "go":
        cmd = [str(BUILD / "peer-go"), "--port", str(port)] + feed
        return [(cmd + (["--reuse-port"] if many else []), env)] * nprocs
    raise ValueError(name)


class ServerGroup:
    def __init__(self, cmds, log_path):
        """Runs in the results directory: whatever a server writes to its working directory (Node's
        V8 log under --perf-basic-prof) stays with the run, out of the source tree."""
        self.log = open(log_path, "wb")
        self.log_path = log_path
        self.procs = []
        for cmd, env in cmds:
            self.procs.append(subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                               cwd=log_path.parent))

    @property
    def roots(self):
        return [p.pid for p in self.procs]

    def alive(self):
        return all(p.poll() is None for p in self.procs)

    def wait_listening(self, port, timeout=20):
        bf.wait_listening(port, self.alive, self.log, self.log_path, timeout)

    def stop(self, timeout=10):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:  # what ignored SIGTERM, and any child left in the group
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        self.log.close()
        return [p.returncode for p in self.procs]


# ---------------------------------------------------------------------------
# one measured run
# ---------------------------------------------------------------------------

def split(n, parts):
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def loadgen_cmds(a, scenario, sc, port, conns, nlg, outdir, tag):
    nsrc = max(1, math.ceil(conns / CONNS_PER_SRC))
    srcs = ",".join(f"127.0.0.{i + 1}" for i in range(nsrc))
    cmds = []
    rate = a.connect_rate
    for i, n in enumerate(split(conns, nlg)):
        js = outdir / f"loadgen-{tag}-{i}.json"
        cmd = [str(bf.LOADGEN_BIN), "--port", str(port), "--path", "/ws", "--conns", str(n),
               "--connect-rate", f"{rate / nlg:g}", "--threads", str(a.loadgen_threads),
               "--warmup", f"{a.warmup:g}", "--duration", "0", "--json", str(js),
               "--connect-timeout", f"{a.connect_timeout:g}"]
        if sc["topic_count"] > 1:
            cmd += ["--topic-count", str(sc["topic_count"]), "--topics-per-conn", str(sc["topics_per_conn"])]
        else:
            cmd += ["--topics", "demo:BTC"]
        if nsrc > 1:
            cmd += ["--src-addrs", srcs]
        if sc["deflate"]:
            cmd.append("--deflate")
        if a.rx_timestamps:
            cmd.append("--rx-timestamps")
        cmds.append((cmd + a.loadgen_arg, js))
    return cmds


def merge_latency(results, name="latency"):
    """One latency summary from several loadgens: exact when they carry <name>_hist
    ([[µs, count], …]), else p50 weighted by count and the worst p99/p99.9/max. None when the
    loadgens did not measure it (kernel_latency without --rx-timestamps)."""
    if not results or any(f"{name}_us" not in r for r in results):
        return None
    lats = [r[f"{name}_us"] for r in results]
    if len(results) == 1:
        out = dict(lats[0])
        if f"{name}_hist" in results[0]:
            out["hist"] = results[0][f"{name}_hist"]
        return out
    count = sum(l["count"] for l in lats)
    if all(f"{name}_hist" in r for r in results):
        hist = {}
        for r in results:
            for v, c in r[f"{name}_hist"]:
                hist[v] = hist.get(v, 0) + c
        pts = sorted(hist.items())

        def pct(p):
            rank, cum = max(1, math.ceil(p * count)), 0
            for v, c in pts:
                cum += c
                if cum >= rank:
                    return v
            return pts[-1][0] if pts else 0
        out = {k: pct(q) for k, q in (("p50", .5), ("p90", .9), ("p99", .99), ("p999", .999))}
        out["hist"] = [[v, c] for v, c in pts]
    else:
        out = {"p50": round(sum(l["p50"] * l["count"] for l in lats) / count) if count else 0,
               "p90": max(l["p90"] for l in lats), "p99": max(l["p99"] for l in lats),
               "p999": max(l["p999"] for l in lats), "merged": "p50 weighted mean, others worst of the loadgens"}
    out["max"] = max(l["max"] for l in lats)
    out["mean"] = sum(l["mean"] * l["count"] for l in lats) / count if count else 0
    out["count"] = count
    return out


class Flame:
    """perf record -g on the server's processes for the window, then an SVG."""

    def __init__(self, a, pids, data_path):
        self.path = data_path
        cg = ["--call-graph", a.call_graph] if a.call_graph != "fp" else ["-g"]
        cmd = ["perf", "record", "-F", str(a.perf_freq), *cg, "-p", ",".join(map(str, pids)), "-o", str(data_path)]
        self.log = open(str(data_path) + ".log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def stop(self):
        bf.stop_process(self.proc, 60, signal.SIGINT)
        self.log.close()


HEADER_RE = re.compile(r"^(\S.*?)\s+(\d+)(?:/(\d+))?\s+")
FRAME_RE = re.compile(r"^\s+([0-9a-f]+)\s+(.*?)(?:\s+\((.*)\))?$")


def collapse_perf_script(text):
    """perf script output → {"comm;root;…;leaf": samples} (Brendan Gregg's collapsed format)."""
    stacks = {}
    comm, frames = None, []

    def flush():
        if comm is not None:
            key = ";".join([comm] + frames[::-1])
            stacks[key] = stacks.get(key, 0) + 1

    for line in text.splitlines():
        if not line.strip():
            flush()
            comm, frames = None, []
            continue
        if not line[0].isspace():
            flush()
            m = HEADER_RE.match(line)
            comm, frames = ((m.group(1) if m else line.split()[0]).replace(";", ":").replace(" ", "_")), []
            continue
        m = FRAME_RE.match(line)
        if m is None or comm is None:
            continue
        sym, dso = m.group(2), m.group(3) or ""
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
        if sym in ("[unknown]", ""):
            sym = f"[{os.path.basename(dso)}]" if dso and dso != "unknown" else "[unknown]"
        frames.append(sym.replace(";", ":"))
    flush()
    return stacks


def flamegraph(data_path, svg_path, title):
    r = subprocess.run(["perf", "script", "-i", str(data_path)], capture_output=True, text=True, errors="replace")
    if r.returncode != 0:
        log(f"perf script failed: {r.stderr[-500:]}")
        return None
    stacks = collapse_perf_script(r.stdout)
    if not stacks:
        log("perf recorded no samples")
        return None
    folded = pathlib.Path(str(svg_path).replace(".svg", ".folded"))
    lines = [f"{k} {v}" for k, v in sorted(stacks.items())]
    folded.write_text("\n".join(lines) + "\n")
    from pyinferno import flamegraph_from_lines
    svg_path.write_text(flamegraph_from_lines(lines, title))
    return svg_path


def run_one(a, scenario, sc, name, conns, outdir, nofile):
    per_proc = nofile["soft"] - FD_MARGIN
    nprocs = a.procs or max(1, math.ceil(conns / (per_proc * SERVER_FILL)))
    if name == "floor":  # one thread and one ring per process; one process unless told otherwise
        nprocs = max(nprocs, a.floor_procs or 1)
    nlg = max(1, math.ceil(conns / (per_proc - 8 * a.loadgen_threads)))
    port = bf.free_port()
    tag = f"{name}-{conns}"
    cmds = server_cmds(a, name, sc, port, nprocs)
    log(f"{name}, {conns} conns: " + " ".join(cmds[0][0]) + (f"  (× {len(cmds)} processes)" if len(cmds) > 1 else "")
        + (f"  (cluster of {nprocs} workers)" if name == "node" and nprocs > 1 else ""))
    server = ServerGroup(cmds, outdir / f"server-{tag}.log")
    res, flame, ramp = [], None, None
    sample = {}
    try:
        server.wait_listening(port)
        time.sleep(1.0 if nprocs > 1 or name == "node" else 0.5)  # cluster workers, JIT warm-up, first allocations
        pids = tree_pids(server.roots)
        sample["rss_base"] = rss_bytes(pids)
        sample["fds_base"] = open_fds(pids)
        sample["mem_avail0"] = mem_available()
        lgs = loadgen_cmds(a, scenario, sc, port, conns, nlg, outdir, tag)
        events = queue.Queue()
        procs = []
        lg_log = open(outdir / f"loadgen-{tag}.log", "w")
        sample["cpu_r0"], sample["t_r0"], sample["lg_cpu_r0"] = cpu_ns(pids), time.monotonic(), 0
        ramp = RampSampler(server, period=max(0.01, min(0.5, conns / a.connect_rate / 20)))
        for i, (cmd, _) in enumerate(lgs):
            if i == 0:
                log(" ".join(cmd) + (f"  (× {len(lgs)} loadgen processes)" if len(lgs) > 1 else ""))
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1)
            procs.append(p)

            def reader(i=i, p=p):
                for line in p.stderr:
                    events.put((i, line.rstrip("\n")))
                events.put((i, None))
            threading.Thread(target=reader, daemon=True).start()
        budget = conns / a.connect_rate + a.connect_timeout + a.warmup + a.duration + 90
        deadline = time.monotonic() + budget
        open_lgs, ramp_done, started, gone = len(procs), set(), set(), set()
        window_end = None
        while open_lgs:
            now = time.monotonic()
            if window_end is not None and now >= window_end and "t1" not in sample:
                pids = sample["pids"]
                sample["cpu1"], sample["t1"], sample["busy1"] = cpu_ns(pids), time.monotonic(), bf.machine_busy_ns()
                ramp.sample()  # the steady end point of the slope, and the RSS at the end
                sample["rss_end"] = ramp.points[-1][1]
                sample["mem_avail1"] = mem_available()
                if flame:
                    flame.stop()
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGINT)
                print("  WINDOW END", file=sys.stderr, flush=True)
            try:
                timeout = 1 if window_end is None or "t1" in sample else max(0.001, window_end - now)
                i, line = events.get(timeout=min(1, timeout))
            except queue.Empty:
                if time.monotonic() > deadline:
                    log("loadgen overran its time; killing it")
                    for p in procs:
                        p.kill()
                    deadline = float("inf")
                continue
            if line is None:
                open_lgs -= 1
                if i not in started:
                    gone.add(i)  # ended before counting (a failed ramp): do not wait for it
                else:
                    continue
            if line is None:
                line = ""
            lg_log.write(f"[{i}] {line}\n")
            if i == 0 and (line.startswith("loadgen: connected") or line.startswith("loadgen: ramp done")
                           or "failed" in line):
                print(f"  {line}", file=sys.stderr, flush=True)
            if line.startswith("loadgen: ramp done"):
                ramp_done.add(i)
                if len(ramp_done) == len(procs):
                    pids = tree_pids(server.roots)
                    sample["cpu_r1"], sample["t_r1"] = cpu_ns(pids), time.monotonic()
                    sample["lg_cpu_r1"] = cpu_ns([p.pid for p in procs])
                    if name in PEERS and sc["feed"]:  # start the peers' feeds now
                        for pid in pids:
                            try:
                                os.kill(pid, signal.SIGUSR2)
                            except ProcessLookupError:
                                pass
                    ramp.stop()
                    ramp.sample()  # every connection open
            elif line == "WINDOW START":
                started.add(i)
            if "t0" not in sample and len(started | gone) == len(procs) and started:
                # every loadgen counts: the window opens now and closes after --duration, when
                # the harness samples and SIGINTs them all (loadgen runs with --duration 0), so
                # the server is measured over one window common to all of them
                pids = tree_pids(server.roots)
                sample["pids"] = pids
                sample["cpu0"], sample["t0"], sample["busy0"] = cpu_ns(pids), time.monotonic(), bf.machine_busy_ns()
                if a.flamegraph:
                    flame = Flame(a, pids, outdir / f"perf-{tag}.data")
                window_end = sample["t0"] + a.duration
                print("  WINDOW START", file=sys.stderr, flush=True)
        lg_log.close()
        rcs = [p.wait() for p in procs]
        for _, js in lgs:
            if js.exists():
                res.append(json.loads(js.read_text()))
        server_alive = server.alive()
    finally:
        if ramp:
            ramp.stop()
        if flame:
            flame.stop()
        server_rcs = server.stop()
    if not res or "t1" not in sample or "t0" not in sample:
        raise RuntimeError(f"{name}: no measured window (see {outdir / f'loadgen-{tag}.log'})")

    wall = sample["t1"] - sample["t0"]
    scpu = sample["cpu1"] - sample["cpu0"]
    dps = sum(r["deliveries_per_s"] for r in res)
    lg_cpu = sum(r["client_cpu_s"] for r in res)
    win = max(r["window_s"] for r in res) or wall
    est = sum(r["conns_established"] for r in res)
    conns_open = sum(r["conns_open"] for r in res)
    busy = (sample["busy1"][0] - sample["busy0"][0]) / 1e9 / wall * 100 if wall > 0 else None
    run = {
        "server": name,
        "scenario": scenario,
        "conns": conns,
        "conns_open": conns_open,
        "conns_established": est,
        "conns_subscribed": sum(r["conns_subscribed"] for r in res),
        "handshake_failures": sum(r["handshake_failures"] for r in res),
        "errors": sum(r["errors"] for r in res),
        "server_processes": len(server.procs) if name != "node" else (nprocs if nprocs > 1 else 1),
        "loadgen_processes": len(res),
        "deliveries_per_s": dps,
        "target_deliveries_per_s": target_dps(sc, conns),
        "deliveries": sum(r["deliveries"] for r in res),
        "window_s": wall,
        "server_cpu_ns": scpu,
        "cpu_ns_per_delivery": (scpu / wall) / dps if dps > 0 and wall > 0 else None,
        "server_cpu_pct": 100.0 * scpu / 1e9 / wall if wall > 0 else None,
        "loadgen_cpu_pct": 100.0 * lg_cpu / win if win else None,
        "softirq_cpu_pct": (sample["busy1"][1] - sample["busy0"][1]) / 1e9 / wall * 100 if wall > 0 else None,
        "latency_us": merge_latency(res),
        "kernel_latency_us": merge_latency(res, "kernel_latency"),
        "lost": sum(r["lost"] for r in res),
        "duplicated": sum(r["duplicated"] for r in res),
        "wire_bytes_per_delivery": sum(r["wire_bytes"] for r in res) / max(1, sum(r["deliveries"] for r in res)),
        "payload_bytes_per_delivery": sum(r["payload_bytes"] for r in res) / max(1, sum(r["deliveries"] for r in res)),
        "deflate_negotiated": sum(r["deflate_negotiated"] for r in res),
        "rss_base_bytes": sample["rss_base"],
        "rss_end_bytes": sample["rss_end"],
        "rss_bytes_per_conn": marginal_bytes_per_conn(ramp.points, sample["fds_base"], conns),
        "rss_avg_bytes_per_conn": (sample["rss_end"] - sample["rss_base"]) / conns_open if conns_open else None,
        "rss_ramp_points": ramp.points,
        "rss_total_bytes_per_conn": sample["rss_end"] / conns_open if conns_open else None,
        "machine_mem_bytes_per_conn": (sample["mem_avail0"] - sample["mem_avail1"]) / conns_open if conns_open else None,
        "connect_s": max(r["connect_s"] for r in res),
        "handshakes_per_s": est / max(r["connect_s"] for r in res) if max(r["connect_s"] for r in res) > 0 else None,
        "cpu_us_per_handshake": ((sample["cpu_r1"] - sample["cpu_r0"]) / 1e3 / est) if est and "cpu_r1" in sample
        else None,
        "ramp_server_cpu_pct": (100.0 * (sample["cpu_r1"] - sample["cpu_r0"]) / 1e9 / (sample["t_r1"] - sample["t_r0"])
                                if "cpu_r1" in sample and sample["t_r1"] > sample["t_r0"] else None),
        "ramp_loadgen_cpu_pct": (100.0 * sample["lg_cpu_r1"] / 1e9 / (sample["t_r1"] - sample["t_r0"])
                                 if "lg_cpu_r1" in sample and sample["t_r1"] > sample["t_r0"] else None),
        "server_alive_at_end": server_alive,
        "server_exit": server_rcs,
        "loadgen_exit": rcs,
        "server_cmd": cmds[0][0],
        "loadgen_cmd": lgs[0][0],
        "loadgen": res if len(res) > 1 else res[0],
    }
    run["other_cpu_pct"] = (max(0.0, busy - run["server_cpu_pct"] - run["loadgen_cpu_pct"])
                            if busy is not None and run["loadgen_cpu_pct"] is not None else None)
    if flame:
        svg = flamegraph(flame.path, outdir / f"flame-{tag}.svg", f"{name}: {scenario}, {conns} conns")
        run["flamegraph"] = svg.name if svg else None
        if svg and not a.keep_perf_data:
            flame.path.unlink(missing_ok=True)
    return run


def target_dps(sc, conns):
    if not sc["feed"]:
        return 0
    return sc["rate"] * conns * sc["topics_per_conn"] / sc["topic_count"]


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------

def fmt(v, spec=",.0f", none="–"):
    return none if v is None else format(v, spec)


def ratio(v, ref, none="–"):
    return none if v is None or not ref else f"{v / ref:.2f}×"


def vs_ringcast(r, rc, key):
    """The "× ringcast" cell: r[key] over ringcast's, 1 on ringcast's own row."""
    return "1" if r["server"] == "ringcast" else ratio(r[key], rc and rc[key])


def problems(r):
    out = []
    if r["conns_open"] < r["conns"]:
        out.append(f"{r['conns_open']} of {r['conns']} connections open at the end "
                   f"({r['handshake_failures']} handshake failures)")
    if r["errors"]:
        out.append(f"{r['errors']} loadgen errors")
    if r["lost"] or r["duplicated"]:
        out.append(f"lost {r['lost']}, duplicated {r['duplicated']}")
    if r["target_deliveries_per_s"] and r["deliveries_per_s"] < 0.95 * r["target_deliveries_per_s"]:
        out.append(f"delivered {r['deliveries_per_s']:,.0f}/s of {r['target_deliveries_per_s']:,.0f}/s (saturated)")
    if r["other_cpu_pct"] is not None and r["other_cpu_pct"] > 10:
        out.append(f"other processes used {r['other_cpu_pct']:.0f}% of a CPU: the machine was not quiet")
    if not r["server_alive_at_end"]:
        out.append("the server died during the run")
    return out


def by(runs, name, conns):
    for r in runs:
        if r["server"] == name and r["conns"] == conns:
            return r
    return None


def tables(scenario, runs, conns_list):
    lines = []
    if scenario in ("fanout", "spread", "deflate"):
        kern = any(r.get("kernel_latency_us") for r in runs)
        head = ("| server | conns | deliveries/s | CPU-ns/delivery | × ringcast | × floor | p50 / p99 / p99.9 µs "
                + ("| to the socket: p50 / p99 / p99.9 µs " if kern else "") +
                "| lost | dup | RSS MB | RSS B/conn | × ringcast mem | server CPU % | loadgen CPU % | softirq % |")
        lines += [head, "|---|" + "---:|" * (head.count("|") - 2)]
        for c in conns_list:
            rc, fl = by(runs, "ringcast", c), by(runs, "floor", c)
            for r in [x for x in runs if x["conns"] == c]:
                lat = r["latency_us"]
                ns = r["cpu_ns_per_delivery"]
                lines.append(
                    f"| {r['server']} | {r['conns_open']:,} | {r['deliveries_per_s']:,.0f} | {fmt(ns)} | "
                    f"{vs_ringcast(r, rc, 'cpu_ns_per_delivery')} | "
                    f"{ratio(ns, fl and fl['cpu_ns_per_delivery'])} | "
                    f"{lat['p50']:,} / {lat['p99']:,} / {lat['p999']:,} | "
                    + (f"{klat['p50']:,} / {klat['p99']:,} / {klat['p999']:,} | " if (klat := r.get("kernel_latency_us"))
                       else "– | " if kern else "") +
                    f"{r['lost']} | {r['duplicated']} | "
                    f"{r['rss_end_bytes'] / 2**20:.1f} | {fmt(r['rss_bytes_per_conn'])} | "
                    f"{vs_ringcast(r, rc, 'rss_bytes_per_conn')} | "
                    f"{fmt(r['server_cpu_pct'])} | {fmt(r['loadgen_cpu_pct'])} | {fmt(r['softirq_cpu_pct'])} |")
    elif scenario == "idle":
        head = ("| server | conns open | server procs | RSS base MB | RSS end MB | RSS B/conn (marginal) | × ringcast "
                "| RSS B/conn (end − base) | RSS total B/conn | machine B/conn | idle CPU % |")
        lines += [head, "|---|" + "---:|" * (head.count("|") - 2)]
        for c in conns_list:
            rc = by(runs, "ringcast", c)
            for r in [x for x in runs if x["conns"] == c]:
                lines.append(
                    f"| {r['server']} | {r['conns_open']:,} | {r['server_processes']} | "
                    f"{r['rss_base_bytes'] / 2**20:.1f} | {r['rss_end_bytes'] / 2**20:.1f} | "
                    f"{fmt(r['rss_bytes_per_conn'])} | "
                    f"{vs_ringcast(r, rc, 'rss_bytes_per_conn')} | "
                    f"{fmt(r['rss_avg_bytes_per_conn'])} | "
                    f"{fmt(r['rss_total_bytes_per_conn'])} | {fmt(r['machine_mem_bytes_per_conn'])} | "
                    f"{fmt(r['server_cpu_pct'], '.1f')} |")
    else:  # connect-storm
        head = ("| server | conns established | failures | ramp s | handshakes/s | × ringcast | server CPU µs/handshake "
                "| × ringcast | server CPU % | loadgen CPU % | RSS B/conn |")
        lines += [head, "|---|" + "---:|" * (head.count("|") - 2)]
        for c in conns_list:
            rc = by(runs, "ringcast", c)
            for r in [x for x in runs if x["conns"] == c]:
                lines.append(
                    f"| {r['server']} | {r['conns_established']:,} | {r['handshake_failures']} | {r['connect_s']:.2f} | "
                    f"{fmt(r['handshakes_per_s'])} | "
                    f"{vs_ringcast(r, rc, 'handshakes_per_s')} | "
                    f"{fmt(r['cpu_us_per_handshake'], ',.1f')} | "
                    f"{vs_ringcast(r, rc, 'cpu_us_per_handshake')} | "
                    f"{fmt(r['ramp_server_cpu_pct'])} | {fmt(r['ramp_loadgen_cpu_pct'])} | "
                    f"{fmt(r['rss_bytes_per_conn'])} |")
    return "\n".join(lines)


def summary_lines(scenario, runs, conns_list):
    out = []
    c = conns_list[-1]
    rc, fl = by(runs, "ringcast", c), by(runs, "floor", c)
    if scenario in ("fanout", "spread", "deflate") and rc and rc["cpu_ns_per_delivery"]:
        if fl and fl["cpu_ns_per_delivery"]:
            out.append(f"ringcast CPU per delivery = {rc['cpu_ns_per_delivery'] / fl['cpu_ns_per_delivery']:.2f}× "
                       f"the floor ({rc['cpu_ns_per_delivery']:,.0f} vs {fl['cpu_ns_per_delivery']:,.0f} ns) "
                       f"at {c:,} conns (target ≤ 1.2×)")
        for r in runs:
            if r["conns"] == c and r["server"] not in ("ringcast", "floor") and r["cpu_ns_per_delivery"]:
                out.append(f"{r['server']}: {r['cpu_ns_per_delivery'] / rc['cpu_ns_per_delivery']:.1f}× ringcast's CPU "
                           f"per delivery, {ratio(r['rss_bytes_per_conn'], rc['rss_bytes_per_conn'])} its memory "
                           f"per connection")
    if scenario == "idle" and rc and rc["rss_bytes_per_conn"] is not None:
        out.append(f"ringcast: {rc['rss_bytes_per_conn']:,.0f} B of RSS per additional idle connection at "
                   f"{rc['conns_open']:,} (target ≤ 400 B); {fmt(rc['rss_avg_bytes_per_conn'])} B averaged with the "
                   f"fixed costs of its {rc['server_processes']} process(es)")
        for r in runs:
            if r["conns"] == c and r["server"] != "ringcast" and r["rss_bytes_per_conn"]:
                out.append(f"{r['server']}: {ratio(r['rss_bytes_per_conn'], rc['rss_bytes_per_conn'])} ringcast's "
                           f"memory per connection")
    return out


def plots(scenario, runs, conns_list, outdir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    made = []
    servers = list(dict.fromkeys(r["server"] for r in runs))
    colors = {"ringcast": "tab:red", "floor": "black", "node": "tab:green", "python": "tab:blue", "go": "tab:cyan"}
    if scenario in ("fanout", "spread", "deflate"):
        c = conns_list[-1]
        fig, ax = plt.subplots(figsize=(8, 4.5))
        have_hist = False
        for r in [x for x in runs if x["conns"] == c]:
            lat = r["latency_us"]
            if lat.get("hist"):
                have_hist = True
                pts = lat["hist"]
                tot = sum(n for _, n in pts) or 1
                xs = [v for v, _ in pts]
                ys = [n / tot for _, n in pts]
                ax.step(xs, ys, where="mid", label=r["server"], color=colors.get(r["server"]))
        if have_hist:
            ax.set_xscale("log")
            ax.set_xlabel("publish → receive latency, µs (log)")
            ax.set_ylabel("share of deliveries per bucket")
            ax.set_title(f"{scenario}: latency histogram at {c:,} conns")
        else:  # loadgen without latency_hist: percentiles
            qs = ["p50", "p90", "p99", "p999", "max"]
            rs = [x for x in runs if x["conns"] == c]
            w = 0.8 / max(1, len(rs))
            for k, r in enumerate(rs):
                ax.bar([i + k * w for i in range(len(qs))], [max(1, r["latency_us"][q]) for q in qs], w,
                       label=r["server"], color=colors.get(r["server"]))
            ax.set_xticks([i + 0.4 - w / 2 for i in range(len(qs))], qs)
            ax.set_yscale("log")
            ax.set_ylabel("latency µs (log)")
            ax.set_title(f"{scenario}: publish → receive latency percentiles at {c:,} conns")
        ax.legend()
        fig.tight_layout()
        fig.savefig(outdir / "latency.png", dpi=110)
        plt.close(fig)
        made.append(("latency.png", "Publish → receive latency"))
        for key, ylabel, fname, logy in (("deliveries_per_s", "deliveries/s", "deliveries.png", False),
                                         ("cpu_ns_per_delivery", "server CPU-ns per delivery", "cpu_per_delivery.png",
                                          True)):
            fig, ax = plt.subplots(figsize=(8, 4.5))
            if len(conns_list) > 1:
                for s in servers:
                    pts = [(r["conns"], r[key]) for r in runs if r["server"] == s and r[key]]
                    if pts:
                        ax.plot(*zip(*pts), marker="o", label=s, color=colors.get(s))
                ax.set_xlabel("connections")
                if key == "deliveries_per_s":
                    tp = [(c2, target_dps(SC_CURRENT, c2)) for c2 in conns_list]
                    ax.plot(*zip(*tp), linestyle="--", color="grey", label="target")
            else:
                rs = [r for r in runs if r[key]]
                ax.bar([r["server"] for r in rs], [r[key] for r in rs], color=[colors.get(r["server"]) for r in rs])
                for i, r in enumerate(rs):
                    ax.annotate(f"{r[key]:,.0f}", (i, r[key]), ha="center", va="bottom", fontsize=9)
                ax.set_xlabel(f"{conns_list[0]:,} connections")
            if logy and len(conns_list) > 1:
                ax.set_yscale("log")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{scenario}: {ylabel} against connections" if len(conns_list) > 1
                         else f"{scenario}: {ylabel}, {conns_list[0]:,} connections")
            if len(conns_list) > 1:
                ax.legend()
            fig.tight_layout()
            fig.savefig(outdir / fname, dpi=110)
            plt.close(fig)
            made.append((fname, ylabel.capitalize()))
    key, ylabel = (("rss_bytes_per_conn", "RSS bytes per added connection") if scenario == "idle"
                   else ("handshakes_per_s", "handshakes/s") if scenario == "connect-storm" else (None, None))
    if key:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        c = conns_list[-1]
        rs = [r for r in runs if r["conns"] == c and r[key]]
        ax.bar([r["server"] for r in rs], [r[key] for r in rs], color=[colors.get(r["server"]) for r in rs])
        for i, r in enumerate(rs):
            ax.annotate(f"{r[key]:,.0f}", (i, r[key]), ha="center", va="bottom", fontsize=9)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{scenario}: {ylabel}, {c:,} connections requested")
        fig.tight_layout()
        fname = "memory_per_conn.png" if scenario == "idle" else "handshakes.png"
        fig.savefig(outdir / fname, dpi=110)
        plt.close(fig)
        made.append((fname, ylabel.capitalize()))
    return made


SC_CURRENT = None


def top_level(runs, conns_list, sc):
    """ringcast's figures at the largest connection count, for scripts that track them."""
    c = conns_list[-1]
    rc, fl = by(runs, "ringcast", c), by(runs, "floor", c)
    if rc is None:
        return {}
    lat = rc["latency_us"]
    return {
        "cpu_ns_per_delivery": rc["cpu_ns_per_delivery"],
        "floor_ratio": (rc["cpu_ns_per_delivery"] / fl["cpu_ns_per_delivery"]
                        if fl and rc["cpu_ns_per_delivery"] and fl["cpu_ns_per_delivery"] else None),
        "deliveries_per_s": rc["deliveries_per_s"] if sc["feed"] else None,
        "latency_us": {"p50": lat["p50"], "p99": lat["p99"], "p999": lat["p999"]} if sc["feed"] else None,
        "kernel_latency_us": ({k: rc["kernel_latency_us"][k] for k in ("p50", "p99", "p999")}
                              if sc["feed"] and rc.get("kernel_latency_us") else None),
        "rss_bytes_per_conn": rc["rss_bytes_per_conn"],
        "lost": rc["lost"],
        "duplicated": rc["duplicated"],
        "conns": rc["conns_open"],
        "handshakes_per_s": rc["handshakes_per_s"],
    }


def main():
    global SC_CURRENT
    ap = argparse.ArgumentParser(prog="perf/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", choices=[*SCENARIOS, "setup"])
    ap.add_argument("--conns", help="connections; a comma list sweeps (e.g. 1000,5000,10000)")
    ap.add_argument("--servers", default=",".join(ALL_SERVERS), help="comma list of " + ",".join(ALL_SERVERS))
    ap.add_argument("--rate", type=float, help="messages/s published over all topics")
    ap.add_argument("--size", type=int, help="bytes per message")
    ap.add_argument("--topic-count", type=int, help="topics in play")
    ap.add_argument("--topics-per-conn", type=int, help="topics per subscriber")
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--duration", type=float, help="measured window, s (default 10; idle 3)")
    ap.add_argument("--connect-rate", type=float, help="connections/s over all loadgens (default 5000; "
                    "connect-storm 1000000)")
    ap.add_argument("--connect-timeout", type=float, help="s for a connection to be upgraded (default 30, idle and connect-storm 60)")
    ap.add_argument("--loadgen-threads", type=int, help="threads per loadgen process (default 1; connect-storm 2)")
    ap.add_argument("--shards", type=int, default=1,
                    help="ringcast --shards (default 1: the load generator needs the other CPU of this 2-CPU "
                         "machine; perf/harness/README.md)")
    ap.add_argument("--batch-ms", type=int, default=0, help="ringcast --batch-ms")
    ap.add_argument("--server-bin", help="ringcast binary (default: ./dev.sh build --prefix perf/build/ringcast)")
    ap.add_argument("--server-arg", action="append", default=[], help="extra ringcast flag (repeatable)")
    ap.add_argument("--loadgen-arg", action="append", default=[], help="extra loadgen flag (repeatable)")
    ap.add_argument("--procs", type=int, default=0,
                    help="server processes sharing the port (default: as many as RLIMIT_NOFILE needs)")
    ap.add_argument("--floor-procs", type=int, default=0,
                    help="floor processes sharing the port (one thread and io_uring each; default 1, the least CPU "
                         "per delivery here, or as many as RLIMIT_NOFILE needs)")
    ap.add_argument("--rx-timestamps", action="store_true",
                    help="loadgen --rx-timestamps: also report latency to the kernel's receive time in the "
                         "subscriber's socket (the server's share, without the load generator's own queueing)")
    ap.add_argument("--flamegraph", action="store_true", help="perf record -g each server in its window → SVG")
    ap.add_argument("--perf-freq", type=int, default=499, help="perf record -F (default 499 Hz)")
    ap.add_argument("--call-graph", default="dwarf,16384", help="perf --call-graph: fp or dwarf[,size] (default dwarf)")
    ap.add_argument("--keep-perf-data", action="store_true")
    ap.add_argument("--out", help="results directory (default perf/results/<timestamp>-<scenario>)")
    a = ap.parse_args()

    if a.server_bin:  # servers run in the results directory
        a.server_bin = str(pathlib.Path(a.server_bin).resolve())
    servers = [s.strip() for s in a.servers.split(",") if s.strip()]
    for s in servers:
        if s not in ALL_SERVERS:
            sys.exit(f"perf/run: unknown server {s} (known: {', '.join(ALL_SERVERS)})")
    if a.scenario == "setup":
        build_all(a, ALL_SERVERS)
        log("set up: " + ", ".join(str(p.relative_to(ROOT)) for p in
                                  (bf.LOADGEN_BIN, BUILD / "floor", BUILD / "peer-go", pathlib.Path(a.server_bin))))
        return 0
    scenario = a.scenario
    sc = dict(SCENARIOS[scenario])
    for k in ("rate", "size", "topic_count", "topics_per_conn"):
        if getattr(a, k) is not None:
            sc[k] = getattr(a, k)
    if sc["topic_count"] > 1 and scenario != "spread" and a.topics_per_conn is None:
        sc["topics_per_conn"] = 1
    SC_CURRENT = sc
    conns_list = [int(x) for x in (a.conns or sc["conns"]).split(",") if x.strip()]
    a.duration = a.duration if a.duration is not None else (3 if scenario == "idle" else
                                                            1 if scenario == "connect-storm" else 10)
    if scenario == "connect-storm":
        a.warmup = min(a.warmup, 0.5)
    a.connect_rate = a.connect_rate or (1e6 if scenario == "connect-storm" else 5000)
    a.connect_timeout = a.connect_timeout or (60 if scenario in ("idle", "connect-storm") else 30)
    a.loadgen_threads = a.loadgen_threads or (2 if scenario == "connect-storm" else 1)

    build_all(a, servers)
    nofile = raise_nofile()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    outdir = pathlib.Path(a.out) if a.out else bf.RESULTS / f"{stamp}-{scenario}"
    outdir.mkdir(parents=True, exist_ok=True)
    changed = raise_sysctls() if scenario in ("idle", "connect-storm") or max(conns_list) > 20000 else {}
    per_proc = nofile["soft"] - FD_MARGIN
    if max(conns_list) > per_proc:
        log(f"RLIMIT_NOFILE is {nofile['soft']} (hard {nofile['hard']}, fs.nr_open {nofile['nr_open']}; raising "
            f"the hard limit: {nofile['raise_hard']}): {max(conns_list):,} connections are spread over several "
            f"server and loadgen processes")

    runs, failures = [], []
    try:
        for conns in conns_list:
            for name in servers:
                try:
                    runs.append(run_one(a, scenario, sc, name, conns, outdir, nofile))
                except RuntimeError as e:
                    log(f"{name} at {conns}: {e}")
                    failures.append({"server": name, "conns": conns, "error": str(e)})
                time.sleep(2 if conns > 20000 else 1)  # TIME_WAIT, the kernel's socket teardown
    finally:
        restore_sysctls(changed)

    params = {
        "conns": conns_list, "servers": servers, "rate": sc["rate"], "size": sc["size"],
        "topic_count": sc["topic_count"], "topics_per_conn": sc["topics_per_conn"], "deflate": sc["deflate"],
        "feed": sc["feed"], "warmup_s": a.warmup, "duration_s": a.duration, "connect_rate": a.connect_rate,
        "connect_timeout_s": a.connect_timeout, "loadgen_threads": a.loadgen_threads, "shards": a.shards,
        "batch_ms": a.batch_ms, "server_bin": a.server_bin, "server_args": a.server_arg,
        "loadgen_args": a.loadgen_arg, "procs": a.procs, "floor_procs": a.floor_procs or 1, "flamegraph": a.flamegraph,
        "rx_timestamps": a.rx_timestamps,
    }
    machine = {"cpus": os.cpu_count(), "kernel": platform.release(), "nofile": nofile,
               "mem_total_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
               "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
                                 None),
               "sysctls": {k: read_sysctl(k) for k in [*SYSCTLS, "fs.nr_open", "net.ipv4.ip_local_port_range"]},
               "sysctls_raised_during_run": {k: SYSCTLS[k] for k in changed}}
    out = {"server": "ringcast", "scenario": scenario, "timestamp": stamp, "git": bf.git_describe(),
           "parameters": params, **top_level(runs, conns_list, sc), "machine": machine,
           "command": "perf/run " + " ".join(sys.argv[1:]), "runs": runs, "failures": failures}
    (outdir / "results.json").write_text(json.dumps(out, indent=2) + "\n")

    made = plots(scenario, runs, conns_list, outdir) if runs else []
    tbl = tables(scenario, runs, conns_list)
    summ = summary_lines(scenario, runs, conns_list)
    notes = []
    for r in runs:
        for p in problems(r):
            notes.append(f"{r['server']} at {r['conns']:,}: {p}")
        if r["server_processes"] > 1:
            notes.append(f"{r['server']} at {r['conns']:,}: {r['server_processes']} server processes "
                         f"({'cluster workers' if r['server'] == 'node' else 'SO_REUSEPORT'}), "
                         f"{r['loadgen_processes']} loadgen processes (RLIMIT_NOFILE {nofile['soft']} per process)")
    for f in failures:
        notes.append(f"{f['server']} at {f['conns']:,}: FAILED: {f['error'][:300]}")

    desc = {
        "fanout": f"1 topic × N subscribers, {sc['rate']:g} msgs/s, {sc['size']} B",
        "spread": f"{sc['topic_count']} topics, {sc['topics_per_conn']} per subscriber, {sc['rate']:g} msgs/s over "
                  f"all topics, {sc['size']} B",
        "deflate": f"1 topic × N subscribers, permessage-deflate offered, {sc['rate']:g} msgs/s, {sc['size']} B",
        "idle": "N connections each subscribed to a topic nobody publishes",
        "connect-storm": f"N connections at up to {a.connect_rate:,.0f}/s, {a.loadgen_threads} loadgen threads",
    }[scenario]
    head = (f"{scenario}: {desc}; window {a.duration:g} s after {a.warmup:g} s warm-up; ringcast --shards "
            f"{a.shards} --batch-ms {a.batch_ms}; {os.cpu_count()} CPUs shared by server and load generator")
    md = [f"# perf/run {scenario} — {stamp}", "", f"`{out['command']}` (git {out['git']}, kernel "
          f"{platform.release()}, {machine['cpu_model']}, {os.cpu_count()} CPUs)", "", head, "", tbl, ""]
    if summ:
        md += [f"- {s}" for s in summ] + [""]
    if notes:
        md += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    md += ["Columns: CPU-ns/delivery = server utime+stime (all threads and processes, /proc/PID/stat) in the "
           "window ÷ deliveries the subscribers counted; × ringcast / × floor = that figure over ringcast's / the "
           "floor's; RSS B/conn = what one more connection costs: the slope of the server's VmRSS against its open "
           "fds over the ramp (the average (end − before the first connection) ÷ connections is "
           "rss_avg_bytes_per_conn in results.json, and a column of the idle table); softirq = the kernel's loopback TCP work, charged to no process. Peers: perf/peers/; "
           "floor: perf/floor.c.", ""]
    for fname, title in made:
        md += [f"## {title}", "", f"![{title}]({fname})", ""]
    flames = [r for r in runs if r.get("flamegraph")]
    if flames:
        md += ["## Flamegraphs", ""] + [f"- [{r['server']} at {r['conns']:,}]({r['flamegraph']})" for r in flames] + [""]
    (outdir / "report.md").write_text("\n".join(md))

    print()
    print(head)
    print()
    print(tbl)
    print()
    for s in summ:
        print(s)
    for n in notes:
        print("note: " + n)
    print(f"results: {outdir.relative_to(ROOT) if outdir.is_relative_to(ROOT) else outdir}/"
          f"{{results.json,report.md{''.join(',' + f for f, _ in made)}}}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
