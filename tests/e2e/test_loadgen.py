"""perf/loadgen: the load generator every benchmark trusts must count right.

Against perf/fake_server.py, which drops, duplicates and back-dates
messages on a known schedule, loadgen must report exactly those losses,
duplicates and latency outliers; against ringcast, nothing lost, from the
source addresses it was given, with the kernel's receive timestamps
(--rx-timestamps) never later than its own.
"""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, free_port

LOADGEN = ROOT / "perf" / "build" / "loadgen-test"


@pytest.fixture(scope="module")
def loadgen():
    LOADGEN.parent.mkdir(parents=True, exist_ok=True)
    src = [ROOT / "perf" / "loadgen.c", ROOT / "src" / "ws" / "handshake.c", ROOT / "src" / "http" / "parser.c"]
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
                    "-I", str(ROOT / "include"), "-o", str(LOADGEN), *map(str, src), "-lm", "-lz", "-lwolfssl"],
                   check=True)
    return LOADGEN


def run_loadgen(binary, port, *args, timeout=60):
    p = subprocess.run([str(binary), "--port", str(port), "--path", "/ws", *args], capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout), p.stderr


def wait_listening(port, proc, timeout=15):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "server exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("server did not listen")


@pytest.mark.parametrize("rx_ts", [False, True], ids=["app-clock", "rx-timestamps"])
def test_counts_exactly_the_injected_faults(loadgen, rx_ts):
    # Per topic, seq 1..100 with period 20: seq 10, 30, 50, 70, 90 never sent
    # (5 lost), 20, 40, 60, 80, 100 sent twice (5 duplicated), 15, 35, 55, 75,
    # 95 stamped 100 ms in the past (5 % of deliveries: p99 ≥ 100 ms); every
    # 7th message fragmented with a ping between its fragments.
    port = free_port()
    fake = subprocess.Popen([sys.executable, str(ROOT / "perf" / "fake_server.py"), "--port", str(port),
                             "--topics", "2", "--rate", "200", "--count", "100", "--start-delay", "1.5",
                             "--inject-faults", "--fault-period", "20", "--fragment-every", "7"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, fake)
        res, err = run_loadgen(loadgen, port, "--conns", "5", "--topic-count", "2", "--topics-per-conn", "2",
                               "--warmup", "0.3", "--duration", "5", *(["--rx-timestamps"] if rx_ts else []))
    finally:
        fake.terminate()
        fake.wait(10)
    conns, topics = 5, 2
    assert res["conns_open"] == conns and res["conns_subscribed"] == conns
    assert res["lost"] == conns * topics * 5, res
    assert res["duplicated"] == conns * topics * 5, res
    assert res["deliveries"] == conns * topics * 100, res  # 95 sent once + 5 twice
    assert res["error_detail"]["protocol_errors"] == 0 and res["error_detail"]["parse_errors"] == 0
    lat = res["latency_us"]
    assert lat["count"] == res["deliveries"] and lat["negative"] == 0
    assert lat["p50"] < 50_000 <= 100_000 <= lat["p99"], lat
    assert lat["max"] >= 100_000
    if rx_ts:
        k = res["kernel_latency_us"]
        assert k["count"] == res["deliveries"] and k["negative"] == 0, k
        assert 100_000 <= k["p99"] and k["p50"] <= lat["p50"], (k, lat)
        assert res["options"]["rx_timestamps"] is True
    else:
        assert "kernel_latency_us" not in res


def ss_sources(port):
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"], capture_output=True,
                         text=True).stdout
    return {line.split()[2].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()}


def test_against_ringcast_nothing_lost_from_the_given_sources(loadgen, start_server):
    srv = start_server("--demo", "--demo-topics", "1", "--demo-rate", "200", "--shards", "2")
    seen = set()
    stop = threading.Event()

    def watch():
        while not stop.wait(0.3):
            seen.update(ss_sources(srv.port))
    t = threading.Thread(target=watch)
    t.start()
    try:
        res, _ = run_loadgen(loadgen, srv.port, "--conns", "300", "--topics", "demo:BTC", "--src-addrs",
                             "127.0.0.2,127.0.0.3", "--warmup", "1", "--duration", "2", "--rx-timestamps")
    finally:
        stop.set()
        t.join()
    assert seen == {"127.0.0.2", "127.0.0.3"}, seen
    assert res["conns_open"] == 300 and res["lost"] == 0 and res["duplicated"] == 0, res
    # 200 msgs/s × 300 subscribers × 2 s
    assert 0.8 * 120_000 <= res["deliveries"] <= 1.2 * 120_000, res["deliveries"]
    lat, k = res["latency_us"], res["kernel_latency_us"]
    assert k["count"] == lat["count"] == res["deliveries"]
    assert k["negative"] == 0 and k["p50"] <= lat["p50"] and k["p99"] <= lat["p99"], (k, lat)
