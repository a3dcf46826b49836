#!/usr/bin/env python3
"""perf/bench_redis_ack.py — publish throughput through Redis when the answer
waits for Redis' reply (issue 13: "a 2xx means Redis took it") against the
fire-and-forget answer of before (commit bd2f4de), same machine, same run.

For each row the script starts two ringcast nodes sharing one redis-server
(started once by the script: 127.0.0.1, a free port, --save '' --appendonly no):

  ringcast --listen 127.0.0.1:<free> --admin-listen 127.0.0.1:<free> --shards 2
           --redis redis://127.0.0.1:<redis port>

waits for both /readyz (admin port), then runs perf/build/pubload (perf/pubload.c,
built with cc -O2 when stale):

  pubload --target <node A> --conns P --inflight K --items I --warmup W --duration D
          --sub <node A> --sub <node B>

P keep-alive connections, each with K requests in flight (K=1: strictly
request/answer), each request I messages on topic "bench"; one WebSocket
subscriber per node, subscribed before the first publish, checks that every
message answered 200 arrived exactly once, in order per publisher connection
(a "delivered" column other than "all" is a failure: with the acknowledging
binary a 200 means Redis took it, and both nodes subscribe to it).

Rows alternate between the variants (ack, ff, ack, ff, ... for each P and
item count), so drift on the machine hits both. The summary gives, per P and
item count, the mean requests/s and messages/s of each variant, their ratio
to ff (target ≥ 0.90), the ratio of each round's pair (rows run side by
side) and the median p50/p99 answer latency. CPU columns: % of one CPU used
inside the window by node A, node B, redis-server, pubload, the loopback TCP
work (softirq, in no process's figure), everything else on the machine
("other": must be near 0, or the run measured someone else's load too), idle
(idle + iowait: the CPUs had nothing to run) and steal (the hypervisor ran
someone else on our virtual CPUs: a row with steal well above 0 is noise).

A fire-and-forget row whose "delivered" column is not "all" shows what the
acknowledgement fixes: answered 200, never delivered (at high rates Redis
drops the publishing node's subscriber connection for its output-buffer
limit, or the node's own pending PUBLISHes go with a dropped link).

Binaries: --ack-rev (default HEAD) and --base-rev (default bd2f4de) are
built ReleaseFast from `git archive REV` under perf/build/src-<rev> with the
project's Zig (.venv/bin/python -m ziglang build -Doptimize=ReleaseFast
--prefix perf/build/ringcast-<rev>), once (cached); --ack-bin / --base-bin
take a ready binary instead (e.g. /tmp/rc-ack/bin/ringcast from
`./dev.sh zig build -Doptimize=ReleaseFast --prefix /tmp/rc-ack`, which builds
the working tree). The servers run from a copy named rc-<variant>-<rev>
(perf/build/bin/), so a `pkill ringcast` elsewhere on the machine does not
end a row.

    .venv/bin/python perf/bench_redis_ack.py                       # P=64, K=1, items 1 and 10, 2 rounds, 5 s
    .venv/bin/python perf/bench_redis_ack.py --conns 64,256 --rounds 3 --extra-rev 0afced6
    .venv/bin/python perf/bench_redis_ack.py --conns 64 --inflight 4 --items-list 1 --rounds 2
    .venv/bin/python perf/bench_redis_ack.py --ack-bin /tmp/rc-ack/bin/ringcast

Everything (pubload's JSON per row, the commands, CPU figures) goes to
perf/results/redis-ack-<timestamp>.json; the server and Redis logs beside it.
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_fanout import (PERF, RESULTS, ROOT, Server, free_port, git_describe, log,  # noqa: E402
                          machine_busy_ns, proc_cpu_ns, stop_process)

BUILD = PERF / "build"
PUBLOAD_SRC = PERF / "pubload.c"
PUBLOAD_BIN = BUILD / "pubload"
ZIG = [str(ROOT / ".venv" / "bin" / "python"), "-m", "ziglang"]
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


# ---------------------------------------------------------------- builds


def build_pubload():
    if PUBLOAD_BIN.exists() and PUBLOAD_BIN.stat().st_mtime >= PUBLOAD_SRC.stat().st_mtime:
        return
    BUILD.mkdir(parents=True, exist_ok=True)
    cmd = [os.environ.get("CC", "cc"), "-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-pthread", "-o", str(PUBLOAD_BIN),
           str(PUBLOAD_SRC)]
    log("building " + " ".join(cmd))
    subprocess.run(cmd, check=True)


def rev_sha(rev):
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", rev + "^{commit}"], capture_output=True,
                          text=True, check=True).stdout.strip()


def build_rev(rev):
    """perf/build/ringcast-<sha>/bin/ringcast, ReleaseFast, from `git archive rev` (cached)."""
    sha = rev_sha(rev)
    prefix = BUILD / f"ringcast-{sha}"
    binary = prefix / "bin" / "ringcast"
    if binary.exists():
        return binary, sha
    src = BUILD / f"src-{sha}"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    log(f"building {rev} ({sha}) in {src.relative_to(ROOT)}")
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", sha], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(src)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        sys.exit(f"git archive {sha} failed")
    cmd = ZIG + ["build", "-Doptimize=ReleaseFast", "--prefix", str(prefix)]
    log(f"  (cd {src.relative_to(ROOT)} && {' '.join(cmd)})")
    subprocess.run(cmd, cwd=src, check=True)
    return binary, sha


def private_copy(binary, name):
    """A copy of binary named `name` under perf/build/bin (refreshed when the original changes)."""
    d = BUILD / "bin"
    d.mkdir(parents=True, exist_ok=True)
    dst = d / name
    if not dst.exists() or dst.stat().st_mtime < pathlib.Path(binary).stat().st_mtime:
        shutil.copy2(binary, dst)
    return dst


# ---------------------------------------------------------------- processes


def http_get(port, path, timeout=2.0):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    except OSError:
        return None, b""
    finally:
        c.close()


def start_redis(outdir):
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    logf = open(outdir / f"redis-{port}.log", "wb")
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                             "no", "--dir", workdir, "--protected-mode", "no", "--daemonize", "no"],
                            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        r = subprocess.run([REDIS_CLI, "-p", str(port), "PING"], capture_output=True)
        if r.stdout.strip() == b"PONG":
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"redis-server did not start: see {logf.name}")
        time.sleep(0.05)
    return proc, port, workdir


class Node:
    def __init__(self, binary, redis_port, shards, outdir, tag, extra=()):
        self.port, self.admin = free_port(), free_port()
        self.cmd = [str(binary), "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin}",
                    "--shards", str(shards), "--redis", f"redis://127.0.0.1:{redis_port}", *extra]
        self.server = Server(self.cmd, outdir / f"{tag}-{self.port}.log")
        self.server.wait_listening(self.port)
        deadline = time.monotonic() + 10
        while http_get(self.admin, "/readyz")[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{tag}: /readyz not 200 within 10 s: {self.server.log_path}")
            time.sleep(0.05)

    @property
    def pid(self):
        return self.server.proc.pid

    def stop(self):
        return self.server.stop()


def machine_idle_steal_ns():
    """(idle + iowait, steal) of all CPUs from /proc/stat, in ns (steal: time the
    hypervisor gave our virtual CPUs to someone else)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]] + [0] * 8
    tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    return (v[3] + v[4]) * tick, v[7] * tick


def cpu_sample(pids):
    out = {}
    for k, pid in pids.items():
        try:
            out[k] = proc_cpu_ns(pid)
        except OSError:
            out[k] = 0
    busy, soft = machine_busy_ns()
    out["_busy"], out["_soft"] = busy, soft
    out["_idle"], out["_steal"] = machine_idle_steal_ns()
    out["_t"] = time.monotonic_ns()
    return out


def run_row(a, variant, binary, redis_port, redis_pid, conns, items, outdir, idx):
    tag = f"{idx:02d}-{variant}-p{conns}-i{items}"
    nodes = []
    try:
        nodes = [Node(binary, redis_port, a.shards, outdir, f"{tag}-node{k}") for k in range(2)]
        targets = [nodes[0]] if a.publish_via == "a" else nodes
        cmd = [str(PUBLOAD_BIN), "--target", ",".join(f"127.0.0.1:{n.port}" for n in targets),
               "--conns", str(conns), "--inflight", str(a.inflight), "--items", str(items), "--pad", str(a.pad),
               "--warmup", str(a.warmup), "--duration", str(a.duration), "--topic", "bench",
               "--sub", f"127.0.0.1:{nodes[0].port}", "--sub", f"127.0.0.1:{nodes[1].port}"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples = {}
        pids = {"node_a": nodes[0].pid, "node_b": nodes[1].pid, "redis": redis_pid, "pubload": proc.pid}
        stderr_lines = []

        def watch_stderr():
            for line in proc.stderr:
                stderr_lines.append(line)
                if line.startswith("WINDOW START"):
                    samples["start"] = cpu_sample(pids)
                elif line.startswith("WINDOW END"):
                    samples["end"] = cpu_sample(pids)

        t = threading.Thread(target=watch_stderr, daemon=True)
        t.start()
        # stdout here, stderr in the thread (communicate() would read stderr too and race it).
        timer = threading.Timer(a.warmup + a.duration + 60, proc.kill)
        timer.start()
        out = proc.stdout.read()
        proc.wait()
        timer.cancel()
        t.join(5)
        if proc.returncode != 0:
            raise RuntimeError(f"{tag}: pubload exited {proc.returncode}: {''.join(stderr_lines)[-2000:]}")
        res = json.loads(out)
        cpu = {}
        if "start" in samples and "end" in samples:
            s, e = samples["start"], samples["end"]
            wall = (e["_t"] - s["_t"]) or 1
            ours = 0
            for k in pids:
                cpu[k] = 100.0 * (e[k] - s[k]) / wall
                ours += e[k] - s[k]
            cpu["softirq"] = 100.0 * (e["_soft"] - s["_soft"]) / wall
            cpu["other"] = 100.0 * max(0, (e["_busy"] - s["_busy"]) - ours) / wall
            cpu["idle"] = 100.0 * (e["_idle"] - s["_idle"]) / wall
            cpu["steal"] = 100.0 * (e["_steal"] - s["_steal"]) / wall
        res["cpu_pct"] = cpu
        res["cmd"] = cmd
        res["server_cmd"] = nodes[0].cmd
    finally:
        for n in nodes:
            rc = n.stop()
            if rc != 0:
                log(f"{tag}: a node exited {rc}")
    res.update(variant=variant, conns=conns, items=items, tag=tag)
    return res


# ---------------------------------------------------------------- report


def delivered(r):
    bad = []
    for name, s in zip(("A", "B"), r["subs"]):
        if s["missing"] or s["dup"] or s["reordered"] or s["delivered_not_200"] or s["malformed"] or s["closed"]:
            bad.append(f"{name}: missing {s['missing']} dup {s['dup']} reord {s['reordered']} "
                       f"not-200 {s['delivered_not_200']}" + (" (closed by the server)" if s["closed"] else ""))
    return "all" if not bad else "; ".join(bad)


def non200(r):
    st = {k: v for k, v in r["status_window"].items() if k != "200"}
    return ",".join(f"{k}:{v}" for k, v in sorted(st.items())) or "0"


def fmt_rows(rows):
    head = ("row", "variant", "P", "items", "req/s", "msg/s", "p50 ms", "p99 ms", "non-200", "delivered A+B",
            "cpu% A", "cpu% B", "redis", "pubload", "softirq", "other", "idle", "steal")
    lines = [head]
    for r in rows:
        c = r["cpu_pct"]
        lines.append((r["tag"][:2], r["variant"], str(r["conns"]), str(r["items"]), f"{r['ok_requests_per_s']:,.0f}",
                      f"{r['ok_messages_per_s']:,.0f}", f"{r['latency_us']['p50'] / 1000:.2f}",
                      f"{r['latency_us']['p99'] / 1000:.2f}", non200(r), delivered(r),
                      *(f"{c.get(k, 0):.0f}" for k in ("node_a", "node_b", "redis", "pubload", "softirq", "other", "idle", "steal"))))
    return table(lines)


def table(lines):
    w = [max(len(l[i]) for l in lines) for i in range(len(lines[0]))]
    out = ["  ".join(x.rjust(w[i]) if i else x.ljust(w[i]) for i, x in enumerate(l)) for l in lines]
    out.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(out)


def fmt_summary(rows, a, names):
    """One line per (P, items, variant other than ff): its figures beside ff's."""
    lines = [("P", "items", "variant", "req/s", "ff req/s", "msg/s", "ff msg/s", "ratio vs ff", "per-pair ratios (median)",
              "p50/p99 ms", "ff p50/p99 ms", "runs")]
    verdicts = []

    def lat(rs):
        return (f"{statistics.median(r['latency_us']['p50'] for r in rs) / 1000:.2f} / "
                f"{statistics.median(r['latency_us']['p99'] for r in rs) / 1000:.2f}")

    for conns, items in [(p, i) for p in a.conns_list for i in a.items_list]:
        ff = [r for r in rows if (r["conns"], r["items"]) == (conns, items) and r["variant"] == "ff"]
        for v in names:
            if v == "ff":
                continue
            mine = [r for r in rows if (r["conns"], r["items"]) == (conns, items) and r["variant"] == v]
            if not mine or not ff:
                continue
            vr = statistics.mean(r["ok_requests_per_s"] for r in mine)
            fr = statistics.mean(r["ok_requests_per_s"] for r in ff)
            vm = statistics.mean(r["ok_messages_per_s"] for r in mine)
            fm = statistics.mean(r["ok_messages_per_s"] for r in ff)
            ratio = vr / fr if fr else float("nan")
            # each row against the ff row of the same round (run beside it): drift hits both alike
            pairs = sorted(x["ok_requests_per_s"] / y["ok_requests_per_s"]
                           for x, y in zip(mine, ff) if y["ok_requests_per_s"])
            pair_med = statistics.median(pairs) if pairs else float("nan")
            verdicts.append((conns, items, v, ratio))
            lines.append((str(conns), str(items), v, f"{vr:,.0f}", f"{fr:,.0f}", f"{vm:,.0f}", f"{fm:,.0f}",
                          f"{ratio:.3f}", f"{' '.join(f'{x:.2f}' for x in pairs)} ({pair_med:.3f})", lat(mine), lat(ff),
                          f"{len(mine)}+{len(ff)}"))
    return table(lines), verdicts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ack-rev", default="HEAD", help="revision answering after Redis (default HEAD)")
    ap.add_argument("--base-rev", default="bd2f4de", help="fire-and-forget revision (default bd2f4de)")
    ap.add_argument("--ack-bin", help="use this binary for the ack variant instead of building --ack-rev")
    ap.add_argument("--base-bin", help="use this binary for the fire-and-forget variant")
    ap.add_argument("--extra-rev", action="append", default=[],
                    help="another acknowledging revision to run beside them (variant ack@<sha>), e.g. 0afced6 "
                         "(the acknowledgement without the later publish checks); repeatable")
    ap.add_argument("--conns", default="64", help="publisher connections P, or a list (64,256): rows for each (default 64)")
    ap.add_argument("--inflight", type=int, default=1, help="requests in flight per connection K (default 1)")
    ap.add_argument("--items-list", default="1,10", help="messages per request, one row set each (default 1,10)")
    ap.add_argument("--pad", type=int, default=16, help="padding bytes per message (default 16)")
    ap.add_argument("--rounds", type=int, default=2, help="ack/ff pairs per item count (default 2)")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--publish-via", choices=("a", "both"), default="a",
                    help="publish through node A only (default) or both nodes (connections alternate)")
    ap.add_argument("--json", help="result file (default perf/results/redis-ack-<timestamp>.json)")
    a = ap.parse_args()
    a.items_list = [int(x) for x in a.items_list.split(",") if x]
    a.conns_list = [int(x) for x in a.conns.split(",") if x]

    build_pubload()
    if a.ack_bin:
        ack_bin, ack_name = pathlib.Path(a.ack_bin), "custom"
    else:
        ack_bin, ack_name = build_rev(a.ack_rev)
    if a.base_bin:
        base_bin, base_name = pathlib.Path(a.base_bin), "custom"
    else:
        base_bin, base_name = build_rev(a.base_rev)
    variants = {"ack": private_copy(ack_bin, f"rc-ack-{ack_name}")}
    for rev in a.extra_rev:
        b, sha = build_rev(rev)
        variants[f"ack@{sha[:7]}"] = private_copy(b, f"rc-ack-{sha}")
    variants["ff"] = private_copy(base_bin, f"rc-ff-{base_name}")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    outdir = RESULTS / f"redis-ack-{stamp}"
    outdir.mkdir(parents=True, exist_ok=True)
    redis, redis_port, redis_dir = start_redis(outdir)
    rows = []
    try:
        log(f"ack = {ack_bin} ({ack_name}), ff = {base_bin} ({base_name}); redis on {redis_port}; "
            f"P {a.conns_list} K={a.inflight} items {a.items_list}, {a.rounds} rounds of {a.warmup}+{a.duration} s")
        idx = 0
        for rnd in range(a.rounds):
            for conns, items in [(p, i) for p in a.conns_list for i in a.items_list]:
                for variant in variants:
                    idx += 1
                    r = run_row(a, variant, variants[variant], redis_port, redis.pid, conns, items, outdir, idx)
                    r["round"] = rnd
                    rows.append(r)
                    log(f"row {idx}: {variant} P={conns} items={items}: {r['ok_requests_per_s']:,.0f} req/s, "
                        f"{r['ok_messages_per_s']:,.0f} msg/s, p50 {r['latency_us']['p50']} µs, "
                        f"p99 {r['latency_us']['p99']} µs, non-200 {non200(r)}, delivered {delivered(r)}, "
                        f"other CPU {r['cpu_pct'].get('other', 0):.0f}%")
    finally:
        stop_process(redis, 10)
        shutil.rmtree(redis_dir, ignore_errors=True)

    summary, verdicts = fmt_summary(rows, a, list(variants))
    report = [f"publish through Redis: ack ({ack_name}) against fire-and-forget ({base_name}); git {git_describe()}; "
              f"{os.cpu_count()} CPUs",
              f"P={','.join(map(str, a.conns_list))} keep-alive connections x K={a.inflight} in flight, via node "
              f"{'A' if a.publish_via == 'a' else 'A and B'}, --shards {a.shards}, one subscriber per node, "
              f"{a.duration:g} s windows after {a.warmup:g} s warm-up", "", fmt_rows(rows), "", summary, ""]
    for conns, items, v, ratio in verdicts:
        report.append(f"P={conns} items={items}: {v}/ff = {ratio:.3f} ({'meets' if ratio >= 0.90 else 'BELOW'} the 0.90 target)")
    print("\n".join(report))
    if any(delivered(r) != "all" for r in rows):
        print("DELIVERY CHECK FAILED in some rows (see 'delivered')")
    path = pathlib.Path(a.json) if a.json else RESULTS / f"redis-ack-{stamp}.json"
    path.write_text(json.dumps({"args": vars(a), "ack_bin": str(ack_bin), "base_bin": str(base_bin), "git": git_describe(),
                                "rows": rows, "report": report}, indent=1))
    log(f"results: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}; logs in {outdir.relative_to(ROOT)}")
    return 1 if any(delivered(r) != "all" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
