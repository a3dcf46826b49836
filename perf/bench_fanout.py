#!/usr/bin/env python3
"""perf/bench_fanout.py — fan-out to 10,000 subscribers of one demo topic.

For each --batch-ms value, in one run on the same machine:
  1. start  zig-out/bin/ringcast --listen 127.0.0.1:<free port> --shards 2 --demo
            --demo-topics 1 --demo-rate R --batch-ms X
  2. run    perf/build/loadgen --conns N --topics demo:BTC --warmup 3 --duration 10
  3. read the server's utime+stime from /proc/PID/stat when loadgen prints
     "WINDOW START" and "WINDOW END" on stderr (the instants it starts and
     stops counting), and its RSS from /proc/PID/status at the end
  4. SIGTERM the server
then print one markdown table, the runs side by side, and write everything to
perf/results/fanout-<timestamp>.json.

server CPU-ns per delivery = server CPU time (all threads, user + system)
inside the window / messages the clients received inside the window. The
load generator runs on the same 2 cores, so it competes with the server;
compare rows of one run, not runs of different machines.

    ./dev.sh build && .venv/bin/python perf/bench_fanout.py
    .venv/bin/python perf/bench_fanout.py --rate 200 --batch-ms-list 0,1,5
    .venv/bin/python perf/bench_fanout.py --fake --conns 500   # checks loadgen only

--fake runs perf/fake_server.py (Python, a few hundred thousand deliveries/s
at best) instead of ringcast: a development aid for the load generator,
never a measurement of ringcast.

The machinery (building loadgen, starting the server, measure(): one server +
one loadgen run with CPU, machine-noise and /metrics samples at the window
edges) is shared: perf/bench_deflate_fanout.py imports it from here.
"""
import argparse
import json
import os
import pathlib
import platform
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

PERF = pathlib.Path(__file__).resolve().parent
ROOT = PERF.parent
LOADGEN_SRC = PERF / "loadgen.c"
LOADGEN_BIN = PERF / "build" / "loadgen"
RESULTS = PERF / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


PROG = pathlib.Path(sys.argv[0]).stem or "bench"  # bench_fanout, or the script that imports this one


def log(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def build_loadgen():
    """Builds perf/build/loadgen when it is missing or older than loadgen.c."""
    if LOADGEN_BIN.exists() and LOADGEN_BIN.stat().st_mtime >= LOADGEN_SRC.stat().st_mtime:
        return
    LOADGEN_BIN.parent.mkdir(parents=True, exist_ok=True)
    cmd = [os.environ.get("CC", "cc"), "-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
           "-I", str(ROOT / "include"), "-o", str(LOADGEN_BIN), str(LOADGEN_SRC),
           str(ROOT / "src" / "ws" / "handshake.c"), str(ROOT / "src" / "http" / "parser.c"), "-lm", "-lz",
           "-lwolfssl"]
    log("building " + " ".join(cmd))
    subprocess.run(cmd, check=True)


def raise_nofile(need):
    """Soft RLIMIT_NOFILE up to the hard limit; children (server, loadgen) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < need:
        sys.exit(f"{PROG}: RLIMIT_NOFILE hard limit is {hard}, {need} needed per process; "
                 f"lower --conns or raise the hard limit")
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_ns(pid):
    """utime + stime of the whole process (all threads), in ns."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    ticks = int(fields[11]) + int(fields[12])     # fields 14 and 15
    return ticks * 1_000_000_000 // CLK_TCK


def machine_busy_ns():
    """(task time, softirq time) of all CPUs from /proc/stat, in ns. Task time is
    user + nice + system + irq + steal (guest is inside user); softirq is kept
    apart: with IRQ time accounting (this kernel: ksoftirqd and the "si" of
    top) the loopback TCP work of both the server and loadgen lands there and
    in no process's utime/stime."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]] + [0] * 8
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    return ((user + nice + system + irq + steal) * 1_000_000_000 // CLK_TCK,
            softirq * 1_000_000_000 // CLK_TCK)


def proc_rss_kb(pid):
    """(VmRSS, VmHWM) in KiB."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def git_describe():
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def wait_listening(port, alive, log, log_path, timeout):
    """Until something accepts on 127.0.0.1:port; RuntimeError with the tail of the server's log if
    alive() turns false first, or when `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            log.flush()
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"server exited at start:\n{tail}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on port {port} within {timeout} s")


def stop_process(proc, timeout, sig=signal.SIGTERM, what=None):
    """Sends sig unless proc has ended, waits up to `timeout` s, then SIGKILLs (saying so when
    `what` names it); returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        if what:
            log(f"{what} ignored {signal.Signals(sig).name}; killing it")
        proc.kill()
        proc.wait()
    return proc.returncode


class Server:
    def __init__(self, cmd, log_path):
        self.cmd = cmd
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_listening(self, port, timeout=15):
        wait_listening(port, lambda: self.proc.poll() is None, self.log, self.log_path, timeout)

    def stop(self, timeout=20):
        rc = stop_process(self.proc, timeout, what="server")
        self.log.close()
        return rc


def scrape_metrics(port, timeout=2.0):
    """The server's /metrics as {name: value} (unlabelled samples only); {} if it does not answer.
    port: ringcast's admin listener (--admin-listen): the client port does not serve /metrics."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return {}
    out = {}
    for line in data.partition(b"\r\n\r\n")[2].decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#") and "{" not in parts[0]:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


def loadgen_cmd(a, port, json_path, extra=()):
    """The loadgen command line for the options every benchmark shares."""
    return [str(LOADGEN_BIN), "--port", str(port), "--path", "/ws", "--conns", str(a.conns),
            "--topics", a.topic, "--warmup", str(a.warmup), "--duration", str(a.duration),
            "--connect-rate", str(a.connect_rate), "--threads", str(a.loadgen_threads),
            "--json", str(json_path), *extra]


def measure(a, server_cmd, port, server_log, lg_cmd, lg_json, metrics=(), admin_port=None):
    """One measured run: starts the server (already given --listen 127.0.0.1:port),
    runs loadgen, samples the server's CPU time, the machine's busy time and the
    named /metrics counters (from admin_port: the server must have been given
    --admin-listen 127.0.0.1:admin_port) at loadgen's WINDOW START / WINDOW END,
    its RSS at the end, then SIGTERMs it. Returns the figures every benchmark
    reports; raises RuntimeError when there is no measured window."""
    if metrics and not admin_port:
        raise ValueError("measure(metrics=...) needs admin_port: /metrics is served on the admin listener only")
    log(" ".join(server_cmd))
    server = Server(server_cmd, server_log)
    try:
        server.wait_listening(port)
        log(" ".join(lg_cmd))
        lg = subprocess.Popen(lg_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1)
        budget = a.conns / a.connect_rate + 15 + a.warmup + a.duration + 60
        watchdog = threading.Timer(budget, lambda: (log("loadgen overran its time; killing it"), lg.kill()))
        watchdog.start()
        sample = {}
        try:
            for line in lg.stderr:
                line = line.rstrip("\n")
                if line in ("WINDOW START", "WINDOW END"):
                    k = "0" if line == "WINDOW START" else "1"
                    sample["cpu" + k], sample["t" + k] = proc_cpu_ns(server.proc.pid), time.monotonic()
                    sample["busy" + k] = machine_busy_ns()
                    if k == "1":
                        sample["rss_kb"], sample["hwm_kb"] = proc_rss_kb(server.proc.pid)
                    if metrics:  # after the CPU sample: the scrape is not counted in the window
                        sample["metrics" + k] = scrape_metrics(admin_port)
                print(f"  {line}", file=sys.stderr, flush=True)
            rc = lg.wait()
        finally:
            watchdog.cancel()
        if server.proc.poll() is not None:
            log(f"server exited during the run (status {server.proc.returncode}); see {server_log}")
        if not lg_json.exists():
            raise RuntimeError(f"loadgen wrote no result (exit {rc})")
        res = json.loads(lg_json.read_text())
    finally:
        server_rc = server.stop()
    if "cpu1" not in sample:
        raise RuntimeError("no measured window (loadgen interrupted or the ramp failed)")
    cpu_ns = sample["cpu1"] - sample["cpu0"]
    wall_s = sample["t1"] - sample["t0"]
    deliveries = res["deliveries"]
    lg_pct = 100.0 * res["client_cpu_s"] / res["window_s"] if res["window_s"] else None
    run = {
        "server_cmd": server_cmd,
        "server_exit": server_rc,
        "server_log": str(server_log.relative_to(ROOT)),
        "loadgen_cmd": lg_cmd,
        "loadgen_exit": rc,
        "conns": res["conns_open"],
        "deliveries_per_s": res["deliveries_per_s"],
        "target_deliveries_per_s": a.rate * a.conns,
        "server_cpu_ns": cpu_ns,
        "server_cpu_ns_per_delivery": cpu_ns / deliveries if deliveries else None,
        "server_cpu_pct": 100.0 * cpu_ns / 1e9 / wall_s if wall_s > 0 else None,
        "loadgen_cpu_pct": lg_pct,
        # Everything else running on the machine meanwhile (other benchmarks,
        # builds, fuzzers): a row is only comparable if this stays near 0.
        "other_cpu_pct": max(0.0, 100.0 * ((sample["busy1"][0] - sample["busy0"][0]) - cpu_ns) / 1e9 / wall_s
                             - lg_pct) if wall_s > 0 and lg_pct is not None else None,
        # Kernel network processing (loopback TCP, both directions), charged
        # to no process: part of the cost of the deliveries, outside server CPU.
        "softirq_cpu_pct": 100.0 * (sample["busy1"][1] - sample["busy0"][1]) / 1e9 / wall_s if wall_s > 0 else None,
        "server_rss_mb": sample["rss_kb"] / 1024,
        "server_peak_rss_mb": sample["hwm_kb"] / 1024,
        "loadgen": res,
    }
    if metrics:
        m0, m1 = sample.get("metrics0", {}), sample.get("metrics1", {})
        run["metrics_per_s"] = {name: (m1[name] - m0[name]) / wall_s if name in m0 and name in m1 and wall_s > 0
                                else None for name in metrics}
    return run


def run_one(a, batch_ms, stamp):
    port = free_port()
    if a.fake:
        py = ROOT / ".venv" / "bin" / "python"
        cmd = [str(py) if py.exists() else sys.executable, str(PERF / "fake_server.py"), "--port", str(port),
               "--topics", "1", "--rate", f"{a.rate:g}"]
        if a.size:
            cmd += ["--size", str(a.size)]
    else:
        cmd = [a.server_bin, "--listen", f"127.0.0.1:{port}", "--admin-listen", "off", "--shards", str(a.shards), "--demo",
               "--demo-topics", "1", "--demo-rate", f"{a.rate:g}", "--batch-ms", str(batch_ms)]
        if a.size:
            cmd += ["--demo-size", str(a.size)]
    cmd += a.server_arg
    log(f"batch-ms {batch_ms}")
    lg_json = RESULTS / f"fanout-{stamp}-loadgen-batch{batch_ms}.json"
    run = measure(a, cmd, port, RESULTS / f"fanout-{stamp}-server-batch{batch_ms}.log",
                  loadgen_cmd(a, port, lg_json), lg_json)
    return {"batch_ms": batch_ms, **run}


def pct(v):
    return "–" if v is None else f"{v:.0f}"


def common_problems(r, a):
    """What makes a row of any benchmark suspect."""
    lg = r["loadgen"]
    problems = []
    if lg["conns_open"] < a.conns:
        problems.append(f"only {lg['conns_open']} of {a.conns} connections open at the end")
    if lg["errors"]:
        problems.append(f"{lg['errors']} errors {lg['error_detail']}")
    if lg["lost"] or lg["duplicated"]:
        problems.append(f"lost {lg['lost']}, duplicated {lg['duplicated']}")
    if r["deliveries_per_s"] < 0.95 * r["target_deliveries_per_s"]:
        problems.append(f"delivered {r['deliveries_per_s']:,.0f}/s of {r['target_deliveries_per_s']:,.0f}/s "
                        f"(server or loadgen saturated?)")
    if r["other_cpu_pct"] is not None and r["other_cpu_pct"] > 10:
        problems.append(f"other processes used {r['other_cpu_pct']:.0f}% of a CPU during the window: "
                        f"the machine was not quiet, the figures are not comparable")
    return problems


def add_common_args(ap, rate_help):
    """Options every fan-out benchmark takes (one topic, N subscribers, one server per row)."""
    ap.add_argument("--conns", type=int, default=10000, help="subscribers (default 10000)")
    ap.add_argument("--rate", type=float, default=100, help=rate_help)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--server-bin", default=str(ROOT / "zig-out" / "bin" / "ringcast"))
    ap.add_argument("--server-arg", action="append", default=[],
                    help="extra server flag, repeatable (e.g. --server-arg=--max-queue-bytes=4194304)")
    ap.add_argument("--topic", default="demo:BTC", help="topic the subscribers take (default demo:BTC)")
    ap.add_argument("--connect-rate", type=float, default=2000, help="loadgen connections/s during the ramp")
    ap.add_argument("--loadgen-threads", type=int, default=1)


def prepare(a, name, need_server=True):
    """Checks the server binary, raises RLIMIT_NOFILE, builds loadgen; returns (stamp, nofile)."""
    if need_server and not os.access(a.server_bin, os.X_OK):
        sys.exit(f"{name}: {a.server_bin} not found; run ./dev.sh build first")
    nofile = raise_nofile(a.conns + 100)
    build_loadgen()
    RESULTS.mkdir(parents=True, exist_ok=True)
    return time.strftime("%Y%m%d-%H%M%S"), nofile


def machine_info(nofile):
    return {"cpus": os.cpu_count(), "kernel": platform.release(), "nofile": list(nofile)}


def fmt_table(runs):
    head = ("| batch-ms | conns | deliveries/s | server CPU-ns/delivery | p50/p99 latency µs | lost | dup "
            "| server RSS MB | server CPU % | loadgen CPU % | softirq CPU % | other CPU % |")
    lines = [head, "|" + "---:|" * (head.count("|") - 1)]
    for r in runs:
        lg = r["loadgen"]
        lat = lg["latency_us"]
        ns = r["server_cpu_ns_per_delivery"]
        lines.append(
            f"| {r['batch_ms']} | {r['conns']} | {r['deliveries_per_s']:,.0f} | "
            f"{'–' if ns is None else f'{ns:,.0f}'} | {lat['p50']:,} / {lat['p99']:,} | "
            f"{lg['lost']} | {lg['duplicated']} | {r['server_rss_mb']:.1f} | "
            f"{pct(r['server_cpu_pct'])} | {pct(r['loadgen_cpu_pct'])} | {pct(r['softirq_cpu_pct'])} | "
            f"{pct(r['other_cpu_pct'])} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, "messages/s published on the topic (default 100: 1M deliveries/s at 10K subscribers)")
    ap.add_argument("--size", type=int, default=0, help="--demo-size BYTES (default: the server's)")
    ap.add_argument("--batch-ms-list", default="0,5", help="comma list of --batch-ms values (default 0,5)")
    ap.add_argument("--fake", action="store_true",
                    help="use perf/fake_server.py instead of ringcast (checks the load generator only)")
    a = ap.parse_args()
    batch_list = [int(x) for x in a.batch_ms_list.split(",") if x.strip()]
    stamp, nofile = prepare(a, "bench_fanout", need_server=not a.fake)

    runs = []
    for bms in batch_list:
        try:
            runs.append(run_one(a, bms, stamp))
        except RuntimeError as e:
            sys.exit(f"bench_fanout: batch-ms {bms}: {e}")
        time.sleep(1)  # let TIME_WAIT and the kernel settle between runs

    out = {
        "benchmark": "fanout",
        "timestamp": stamp,
        "git": git_describe(),
        "machine": machine_info(nofile),
        "server": "perf/fake_server.py" if a.fake else a.server_bin,
        "options": vars(a),
        "runs": runs,
    }
    path = RESULTS / f"fanout-{stamp}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")

    print()
    what = "perf/fake_server.py (NOT ringcast: loadgen check only)" if a.fake else "ringcast"
    print(f"Fan-out: {a.conns} subscribers of {a.topic}, {a.rate:g} msgs/s published "
          f"(target {a.rate * a.conns:,.0f} deliveries/s), {what}, --shards {a.shards}, "
          f"window {a.duration:g} s after {a.warmup:g} s warm-up, {os.cpu_count()} CPUs shared with the load generator")
    print()
    print(fmt_table(runs))
    print()
    for r in runs:
        problems = common_problems(r, a)
        if problems:
            print(f"batch-ms {r['batch_ms']}: " + "; ".join(problems))
    print(f"results: {path.relative_to(ROOT)}")
    bad = any(r["loadgen_exit"] != 0 for r in runs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
