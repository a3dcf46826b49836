"""No single client can take a node down (issue 12): what one connection,
or a crowd of them, can cost the server, end to end.

  * send queues: every byte queued for a connection counts against
    --max-queue-bytes, whatever produced it (subscribe acks, JSON pongs,
    error replies, WebSocket pongs): a WebSocket client that sends but never
    reads is closed 1008 and the server's RSS stays bounded; an HTTP client
    that pipelines without reading is not read any further (backpressure),
    is closed once it stalls, and gets complete, ordered answers if it does
    read;
  * socket buffers: --sndbuf / --rcvbuf on client sockets (ss's skmem);
  * unfinished input: --message-timeout-ms (WebSocket messages and HTTP
    bodies), --max-partial-bytes (largest holders closed first),
    --max-client-message-bytes on /ws (also for inflated messages);
  * one validation path: invalid UTF-8 in POST /ws/test and publish is 400
    and never broadcast;
  * stalled readers (--stall-timeout-s), conflated or not;
  * --max-conns: 503 with Retry-After, counted, logged at most once a
    second, the admin listener unaffected;
  * a listen address in use exits 2 (unless --reuse-port);
  * publishes during the drain are 503;
  * memory goes back after a flood.

Misbehaving clients are raw sockets: they never read, stop in the middle of
a frame, or pipeline thousands of requests. Server memory is the VmRSS of
the process (/proc/<pid>/status), sampled while the flood runs; counters
come from /metrics on the admin listener (server.admin_port).
"""
import asyncio
import base64
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest
from websockets.asyncio.client import connect

from clients.pmdtools import deflate_payload
from conftest import free_port, ringcast_bin
from wsraw import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, frame, http_request

pytestmark = pytest.mark.timeout(120)  # a hung test fails instead of stalling the run

KIB, MIB = 1024, 1024 * 1024
SHARDS = ("--shards", "2")
RSV1 = 4


@pytest.fixture(autouse=True)
def _fds(enough_fds):
    """Floods open a few hundred sockets (conftest's enough_fds)."""


OPEN_CLIENTS = []


@pytest.fixture(autouse=True)
def close_clients_first(start_server):
    """Closes the test's raw clients before start_server stops the server,
    so its drain never waits for clients nobody reads."""
    yield
    while OPEN_CLIENTS:
        OPEN_CLIENTS.pop().close()


# ---------------------------------------------------------------- server-side observations


def rss_mb(server):
    """The server's resident memory in MB (VmRSS)."""
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS: the server has exited")


class RssPeak:
    """Samples the server's RSS every 20 ms while the `with` block runs;
    .peak is the largest sample (MB)."""

    def __init__(self, server):
        self.server, self.peak, self._stop = server, rss_mb(server), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.server))
            except (AssertionError, OSError):
                return
            self._stop.wait(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb(self.server))


def metrics(server):
    """/metrics from the admin listener as {name without "ringcast_": int}."""
    status, _, body = http_request(server.host, server.admin_port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200, (status, body)
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name.removeprefix("ringcast_")] = int(float(value))
    return out


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def ss_server_side(server, client_port, *opts):
    """`ss` lines of the server's socket of the connection from client_port."""
    out = subprocess.run(["ss", "-tnH", *opts, "state", "all", f"( sport = :{server.port} and dport = :{client_port} )"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip()


def server_side_state(server, client_port):
    """The TCP state of the server's end of the connection ("ESTAB",
    "FIN-WAIT-1", ...), or None once the socket is gone."""
    out = ss_server_side(server, client_port)
    return out.split()[0] if out else None


def server_side_skmem(server, client_port):
    """(Send-Q, skmem fields) of the server's end of an established connection."""
    out = ss_server_side(server, client_port, "-m")
    assert out.startswith("ESTAB"), out
    send_q = int(out.split()[2])
    skmem = dict(re.findall(r"([a-z_]+)(\d+)", re.search(r"skmem:\(([^)]*)\)", out).group(1)))
    return send_q, {k: int(v) for k, v in skmem.items()}


# ---------------------------------------------------------------- clients


class Ended(Exception):
    """The TCP connection ended (EOF or reset)."""


class RawConn:
    """A blocking client socket with one receive buffer read through an
    offset (reading 100,000s of tiny frames or responses stays linear).
    rcvbuf/sndbuf are set before connecting (a small rcvbuf makes a client
    that never reads stall quickly)."""

    def __init__(self, server, port=None, timeout=5.0, rcvbuf=None, sndbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        OPEN_CLIENTS.append(self)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((server.host, port or server.port))
        self.port = self.sock.getsockname()[1]
        self.buf, self.pos, self.received = bytearray(), 0, 0

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self):
        try:
            chunk = self.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            raise Ended("reset")
        if not chunk:
            raise Ended("eof")
        if self.pos > (1 << 20):
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += chunk
        self.received += len(chunk)

    def _need(self, n):
        while len(self.buf) - self.pos < n:
            self._fill()


class WS(RawConn):
    """A raw WebSocket client."""

    def __init__(self, server, path="/ws", rcvbuf=None, sndbuf=None, extensions=None, timeout=5.0):
        super().__init__(server, timeout=timeout, rcvbuf=rcvbuf, sndbuf=sndbuf)
        key = base64.b64encode(os.urandom(16)).decode()
        ext = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n".encode())
        self.close_code = None  # of a close frame seen by is_open()
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        end = self.buf.index(b"\r\n\r\n") + 4
        head = bytes(self.buf[:end]).decode("latin-1")
        assert head.startswith("HTTP/1.1 101 "), head
        self.headers = {k.strip().lower(): v.strip() for k, v in
                        (line.split(":", 1) for line in head.split("\r\n")[1:] if line)}
        self.pos = end

    def frame(self):
        """(fin, rsv, opcode, payload) of the next frame; raises Ended, or
        TimeoutError when nothing arrives within the socket's timeout."""
        self._need(2)
        b0, b1 = self.buf[self.pos], self.buf[self.pos + 1]
        assert not b1 & 0x80, "server frame is masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack_from("!H", self.buf, self.pos + 2)[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack_from("!Q", self.buf, self.pos + 2)[0], 10
        self._need(off + n)
        start = self.pos + off
        payload = bytes(self.buf[start : start + n])
        self.pos = start + n
        return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload

    def message(self):
        """(opcode, payload) of the next data message (control frames
        skipped); a close frame fails the test."""
        parts, first = [], None
        while True:
            fin, _, op, payload = self.frame()
            if op in (OP_PING, OP_PONG):
                continue
            assert op != OP_CLOSE, f"close frame {payload[:2].hex()} {payload[2:]!r} instead of data"
            first = op if first is None else first
            parts.append(payload)
            if fin:
                return first, b"".join(parts)

    def recv_json(self):
        op, payload = self.message()
        assert op == OP_TEXT
        return json.loads(payload)

    def send(self, data):
        self.sock.sendall(data)

    def send_json(self, obj):
        self.sock.sendall(frame(OP_TEXT, json.dumps(obj, separators=(",", ":"))))

    def call(self, obj):
        self.send_json(obj)
        return self.recv_json()

    def end(self, timeout=10.0, max_bytes=32 * MIB):
        """Reads whatever the server still sends until its close frame or the
        end of TCP. Returns (close code, or None for EOF/reset without a
        close frame; data frames read before). Fails if the connection is
        still open and delivering after `timeout` s or `max_bytes`."""
        deadline = time.monotonic() + timeout
        start, frames = self.received, 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.received - start > max_bytes:
                raise AssertionError(f"connection still open: {frames} frames "
                                     f"({self.received - start} bytes) read in {timeout - max(left, 0):.1f}s")
            self.sock.settimeout(left)
            try:
                _, _, op, payload = self.frame()
            except Ended:
                return None, frames
            except TimeoutError:
                raise AssertionError(f"connection still open and silent after {timeout}s ({frames} frames read)")
            if op == OP_CLOSE:
                return (struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005), frames
            frames += 1

    def is_open(self, wait=0.3):
        """True if nothing (no close frame, no EOF) arrives within `wait` s;
        a close frame's code goes to .close_code."""
        self.sock.settimeout(wait)
        try:
            _, _, op, payload = self.frame()
        except TimeoutError:
            return True
        except Ended:
            return False
        assert op == OP_CLOSE, f"unexpected frame {op} {payload[:60]!r}"
        self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        return False

    def expect_eof(self, timeout=5.0):
        """Asserts the server ends TCP within `timeout` s (bytes before are discarded)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "server did not close the TCP connection"
            self.sock.settimeout(left)
            try:
                self._fill()
            except Ended:
                return
            except TimeoutError:
                pass

    def close(self):
        self.sock.close()


def expect_closed(ws, codes=(1008,), timeout=10.0, reply=True):
    """The server ends the connection: a close frame with one of `codes`
    (then, after our reply, the TCP close) or EOF/reset straight away.
    Returns (code or None, data frames read first)."""
    code, frames = ws.end(timeout)
    assert code is None or code in codes, f"close code {code}, expected one of {codes} (or EOF)"
    if code is not None:
        if reply:
            try:
                ws.send(frame(OP_CLOSE, struct.pack("!H", code)))
            except OSError:
                pass
        ws.expect_eof(5.0)
    return code, frames


def flood(sock, unit, count, stall_s=2.0, deadline_s=30.0):
    """Sends `unit` `count` times without reading anything. Returns (bytes
    sent, how it stopped): "done" (the peer took everything), "stalled"
    (the socket took nothing for `stall_s`) or "closed" (the peer ended the
    connection), and the monotonic time the socket last took bytes."""
    total = len(unit) * count
    chunk = unit * max(1, (64 * KIB) // len(unit))
    sock.setblocking(False)
    sent, off = 0, 0
    last = time.monotonic()
    end = last + deadline_s
    try:
        while sent < total:
            view = memoryview(chunk)[off : off + min(len(chunk) - off, total - sent)]
            try:
                n = sock.send(view)
            except BlockingIOError:
                now = time.monotonic()
                if now - last > stall_s:
                    return sent, "stalled", last
                assert now < end, f"flood still running after {deadline_s}s ({sent} bytes sent)"
                select.select([], [sock], [], 0.1)
                continue
            except (BrokenPipeError, ConnectionResetError):
                return sent, "closed", last
            sent += n
            off = (off + n) % len(chunk)
            last = time.monotonic()
        return sent, "done", last
    finally:
        sock.setblocking(True)


class HttpConn(RawConn):
    """One HTTP/1.1 client connection that reads responses in a row."""

    def __init__(self, server, port=None, timeout=5.0, rcvbuf=None, sndbuf=None):
        super().__init__(server, port=port, timeout=timeout, rcvbuf=rcvbuf, sndbuf=sndbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def response(self):
        """(status, {lowercase header: value}, body) of the next response."""
        while (end := self.buf.find(b"\r\n\r\n", self.pos)) < 0:
            self._fill()  # may move the buffer: offsets are taken from self.pos
        head_len = end + 4 - self.pos
        lines = bytes(self.buf[self.pos : end]).decode("latin-1").split("\r\n")
        m = re.fullmatch(r"HTTP/1\.1 (\d{3}) .+", lines[0])
        assert m, f"bad status line {lines[0]!r}"
        hdrs = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        n = int(hdrs["content-length"])
        while len(self.buf) - self.pos < head_len + n:
            self._fill()
        start = self.pos + head_len
        body = bytes(self.buf[start : start + n])
        self.pos = start + n
        return int(m.group(1)), hdrs, body

    def expect_eof(self, timeout=5.0):
        self.sock.settimeout(timeout)
        try:
            self._fill()
        except Ended:
            return
        except TimeoutError:
            raise AssertionError("server did not close the connection")
        raise AssertionError(f"unexpected bytes {bytes(self.buf[self.pos:self.pos + 100])!r}")

    def close(self):
        self.sock.close()


def request(method, path, body=b"", headers=()):
    """Raw request bytes. A POST with a body (every one here is a publish:
    /api/v1/publish or /ws/test) says Content-Type: application/json unless
    `headers` name another."""
    body = body.encode() if isinstance(body, str) else body
    head = [f"{method} {path} HTTP/1.1", "Host: x", *headers]
    if method == "POST" and body and not any(h.lower().startswith("content-type:") for h in headers):
        head.append("Content-Type: application/json")
    if body or method == "POST":
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def get(server, path, port=None):
    """(status, headers, body) of GET path on a fresh connection."""
    return http_request(server.host, port or server.port, request("GET", path))


def healthz_ok(port):
    """True if GET /healthz on 127.0.0.1:port answers 200."""
    try:
        return http_request("127.0.0.1", port, request("GET", "/healthz"))[0] == 200
    except OSError:
        return False


def assert_json_error(status, hdrs, body, expected):
    assert status == expected, (status, body)
    assert hdrs.get("content-type") == "application/json", hdrs
    doc = json.loads(body)
    assert isinstance(doc.get("error"), str) and doc["error"], doc
    assert doc.get("status", expected) == expected, doc
    return doc


def publish(server, body):
    """POST /api/v1/publish on a fresh connection; (status, headers, body)."""
    return http_request(server.host, server.port, request("POST", "/api/v1/publish", body))


def long_topics(n, length=190):
    return [f"t{i:05d}-".ljust(length, "x") for i in range(n)]


def subscribe_in_chunks(ws, topics, per_message=256):
    """Subscribes `topics` a chunk at a time (each message stays under
    --max-client-message-bytes) and reads every ack; returns the last."""
    ack = None
    for i in range(0, len(topics), per_message):
        ack = ws.call({"type": "subscribe", "topics": topics[i : i + per_message]})
        assert ack["type"] == "subscribed", ack
    assert len(ack["topics"]) == len(topics)
    return ack


# ---------------------------------------------------------------- 1. send queues


def test_unread_subscribe_acks_close_1008_and_rss_stays_bounded(start_server):
    """1,024 topics of 190 bytes make each empty subscribe's ack ~200 KB: a
    client sending 3,000 of them without reading asks for ~600 MB of acks.
    The server must close it 1008 once its queue passes --max-queue-bytes
    (256K) and stay far below 100 MB."""
    s = start_server(*SHARDS, "--max-queue-bytes", "256K", "--max-topics-per-conn", "1024")
    flooder = WS(s, rcvbuf=4096)
    subscribe_in_chunks(flooder, long_topics(1024))
    before = metrics(s)["slow_consumer_closes_total"]
    with RssPeak(s) as rss:
        flood(flooder.sock, frame(OP_TEXT, '{"type":"subscribe","topics":[]}'), 3000)
        _, acks = expect_closed(flooder, (1008,), timeout=10)
    assert acks < 3000, f"{acks} acks read: every request was answered, the queue was never capped"
    assert metrics(s)["slow_consumer_closes_total"] == before + 1
    assert rss.peak < 100, f"server RSS reached {rss.peak:.0f} MB"


FLOODS = {
    # name: (frame repeated, how many)
    "ws-pings": (frame(OP_PING, b"", mask_key=b"\x11\x22\x33\x44"), 2_000_000),  # 12 MB of 2-byte pongs
    "json-pings": (frame(OP_TEXT, '{"type":"ping"}', mask_key=b"\x11\x22\x33\x44"), 500_000),
    "error-replies": (frame(OP_TEXT, '{"type":"nope"}', mask_key=b"\x11\x22\x33\x44"), 500_000),
}


@pytest.mark.parametrize("kind", sorted(FLOODS))
def test_unread_replies_close_1008_and_rss_stays_bounded(start_server, kind):
    """Pongs (WebSocket and JSON) and error replies are queued bytes like any
    other: a client that sends hundreds of thousands of requests for them
    and reads nothing is closed 1008 once its queue passes the cap."""
    s = start_server(*SHARDS, "--max-queue-bytes", "256K")
    flooder = WS(s, rcvbuf=4096)
    unit, count = FLOODS[kind]
    base = rss_mb(s)
    before = metrics(s)["slow_consumer_closes_total"]
    with RssPeak(s) as rss:
        flood(flooder.sock, unit, count)
        expect_closed(flooder, (1008,), timeout=10)
    assert metrics(s)["slow_consumer_closes_total"] == before + 1
    assert rss.peak < base + 50, f"server RSS went from {base:.0f} to {rss.peak:.0f} MB"


FLOOD_REQ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def test_pipelined_http_flood_is_backpressured_then_closed(start_server):
    """A client pipelines 200,000 GET /healthz on the client port (each
    answer ~3x the request's bytes) and never reads. The server stops reading it once ~64 KiB of answers wait
    (so the client's sends block long before the 7 MB of requests are
    out), stays within +50 MB, answers other clients' /healthz promptly meanwhile, and closes
    the stalled connection within --request-timeout-ms + --stall-timeout-s."""
    s = start_server(*SHARDS, "--request-timeout-ms", "2000", "--stall-timeout-s", "2", "--idle-sweep-s", "1",
                     "--close-timeout-ms", "500")
    _, _, body = get(s, "/healthz")
    response_size = len(body) + 200
    base = rss_mb(s)
    flooder = HttpConn(s, rcvbuf=64 * KIB, sndbuf=64 * KIB)
    result = {}
    sender = threading.Thread(target=lambda: result.update(r=flood(flooder.sock, FLOOD_REQ, 200_000)), daemon=True)
    latencies, queued = [], []
    with RssPeak(s) as rss:
        sender.start()
        while sender.is_alive():
            t0 = time.monotonic()
            status, _, _ = get(s, "/healthz")
            latencies.append(time.monotonic() - t0)
            assert status == 200
            queued.append(metrics(s)["queued_bytes"])
            time.sleep(0.1)
        sender.join()
    sent, how, last_progress = result["r"]
    assert how in ("stalled", "closed"), f"the server read all {sent} bytes of requests: no backpressure"
    assert max(queued) <= 64 * KIB + 2 * response_size, f"queued bytes reached {max(queued)}"
    assert rss.peak < base + 50, f"server RSS went from {base:.0f} to {rss.peak:.0f} MB"
    assert max(latencies) < 1.0, f"/healthz took {max(latencies):.2f}s during the flood"
    # The stalled connection is closed by the server (its socket is gone or
    # past ESTABLISHED) within request timeout + stall timeout + a sweep.
    wait_until(lambda: server_side_state(s, flooder.port) != "ESTAB", 2 + 2 + 1 + 3 - (time.monotonic() - last_progress),
               "the server to close the stalled pipelining connection")
    assert get(s, "/healthz")[0] == 200


def test_pipelined_requests_are_answered_in_order_when_the_client_reads(start_server):
    """60,000 pipelined requests: while the client does not read, the
    server answers only about 64 KiB worth (its send queue stays under the
    cap); once the client reads, every answer arrives, complete and in
    order."""
    s = start_server(*SHARDS)
    reqs = [("GET", "/healthz"), ("POST", "/healthz"), ("GET", "/nope")]  # 200, 405, 404 (client port)
    n = 60_000
    c = HttpConn(s, rcvbuf=64 * KIB, sndbuf=64 * KIB, timeout=30)
    wire = b"".join(request(m, p) for m, p in reqs) * (n // 3)
    sent = []
    # A blocking sendall (the socket has a timeout) beside the reads below.
    sender = threading.Thread(target=lambda: sent.append(c.sock.sendall(wire) or len(wire)), daemon=True)
    sender.start()
    queued = []
    for _ in range(10):  # 1 s of not reading
        time.sleep(0.1)
        queued.append(metrics(s)["queued_bytes"])
    assert max(queued) <= 64 * KIB + 4 * KIB, f"queued bytes while the client did not read: {queued}"
    want = [(200, {"status": "ok"}), (405, None), (404, None)]
    for i in range(n):
        status, hdrs, body = c.response()
        exp_status, exp_body = want[i % 3]
        assert status == exp_status, (i, status, body)
        if exp_body is not None:
            assert json.loads(body) == exp_body, (i, body)
        else:
            assert_json_error(status, hdrs, body, exp_status)
    sender.join(10)
    assert sent == [len(wire)]


# ---------------------------------------------------------------- 2. socket buffers


@pytest.mark.parametrize("flags,sndbuf,rcvbuf", [
    pytest.param((), 128 * KIB, 128 * KIB, id="default"),
    pytest.param(("--sndbuf", "64K", "--rcvbuf", "32K"), 64 * KIB, 32 * KIB, id="flags"),
])
def test_client_socket_buffers(start_server, flags, sndbuf, rcvbuf):
    """SO_SNDBUF/SO_RCVBUF of client sockets (the kernel doubles what is
    set: skmem tb/rb); a stalled reader's Send-Q stays within it."""
    s = start_server(*SHARDS, *flags)
    c = HttpConn(s)
    c.send(request("GET", "/healthz"))
    assert c.response()[0] == 200
    _, skmem = server_side_skmem(s, c.port)
    assert (skmem["tb"], skmem["rb"]) == (2 * sndbuf, 2 * rcvbuf), skmem
    # A subscriber that never reads, 600 KB published to it (under the 1 MiB
    # queue cap): what sits in the server's socket is bounded by SO_SNDBUF.
    stalled = WS(s, rcvbuf=4096)
    stalled.call({"type": "subscribe", "topics": ["sndbuf"]})
    pad = "p" * 20_000
    for i in range(30):
        assert publish(s, json.dumps({"topic": "sndbuf", "data": {"i": i, "pad": pad}}))[0] == 200
    time.sleep(0.3)
    send_q, skmem = server_side_skmem(s, stalled.port)
    assert skmem["tb"] == 2 * sndbuf, skmem
    assert send_q <= 2 * sndbuf, f"Send-Q {send_q} with SO_SNDBUF {sndbuf}"


# ---------------------------------------------------------------- 3. unfinished input


BIG_HEADER = frame(OP_BINARY, b"\x00" * MIB)  # 14 bytes announcing 1 MiB, then the payload
UNFINISHED = {
    # name: (path, bytes sent first, whether 100 more bytes of BIG_HEADER follow every 100 ms)
    "frame-header-then-part": ("/echo", BIG_HEADER[: 14 + 1000], False),
    "frame-dribbled": ("/echo", BIG_HEADER[: 14 + 1000], True),
    "non-fin-fragment-echo": ("/echo", frame(OP_TEXT, "half of a", fin=False), False),
    "non-fin-fragment-ws": ("/ws", frame(OP_TEXT, '{"type":"pi', fin=False), False),
}


@pytest.mark.parametrize("case", sorted(UNFINISHED))
def test_unfinished_message_closed_after_message_timeout(start_server, case):
    """A message begun and not finished within --message-timeout-ms (500)
    closes the connection (1008 or the end of TCP) within ~2 s, however
    slowly its bytes keep dribbling in."""
    s = start_server(*SHARDS, "--echo", "--message-timeout-ms", "500", "--close-timeout-ms", "500")
    path, first, dribble = UNFINISHED[case]
    ws = WS(s, path=path)
    t0 = time.monotonic()
    ws.send(first)
    sent = len(first)
    while ws.is_open(0.1):
        assert time.monotonic() - t0 < 2.5, "still open 2.5 s into a 500 ms message timeout"
        if dribble:
            try:
                ws.send(BIG_HEADER[sent : sent + 100])
            except OSError:
                break
            sent += 100
    took = time.monotonic() - t0
    assert took >= 0.4, f"closed after {took:.2f}s, before the 500 ms message timeout"
    assert ws.close_code in (None, 1008), ws.close_code
    ws.expect_eof(3.0)


def test_unfinished_http_body_gets_408_after_message_timeout(start_server):
    """Content-Length 1000 and 10 bytes of body: 408 after
    --message-timeout-ms (500), well before the 10 s request timeout."""
    s = start_server(*SHARDS, "--message-timeout-ms", "500")
    c = HttpConn(s)
    t0 = time.monotonic()
    c.send(b"POST /api/v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
           + b'{"topic":"')
    status, hdrs, body = c.response()
    took = time.monotonic() - t0
    assert_json_error(status, hdrs, body, 408)
    assert 0.4 <= took < 2.5, took
    c.expect_eof()


def test_partial_input_budget_closes_the_largest_holders_first(start_server):
    """--max-partial-bytes 4M, 8 /echo clients each holding a message minus
    its last byte (1.2 MB down to 300 KB, sent largest first, 6 MB in all):
    clients are closed (1008 or EOF), every one of them larger than every
    survivor, the survivors hold no more than the budget, and they can still
    finish their messages and get them echoed."""
    budget = 4 * MIB
    s = start_server("--shards", "1", "--echo", "--max-partial-bytes", "4M")
    sizes = [1_200_000, 1_080_000, 950_000, 820_000, 690_000, 560_000, 430_000, 300_000]
    clients = [WS(s, path="/echo") for _ in sizes]
    wires = [frame(OP_BINARY, bytes([k + 1]) * n) for k, n in enumerate(sizes)]
    dropped_while_sending = set()
    for k, (ws, wire) in enumerate(zip(clients, wires)):
        try:
            ws.send(wire[:-1])
        except OSError:
            dropped_while_sending.add(k)
        time.sleep(0.15)
    time.sleep(0.3)
    closed = {k for k, ws in enumerate(clients) if k in dropped_while_sending or not ws.is_open(0.2)}
    survivors = [k for k in range(len(sizes)) if k not in closed]
    assert closed, "8 unfinished messages of 6 MB in all, none closed with a 4 MiB budget"
    assert min(sizes[k] for k in closed) > max(sizes[k] for k in survivors), \
        f"closed {[sizes[k] for k in closed]}, kept {[sizes[k] for k in survivors]}: not the largest first"
    assert sum(sizes[k] for k in survivors) <= budget, [sizes[k] for k in survivors]
    assert {5, 6, 7} <= set(survivors), "the smallest holders were closed"
    for k in closed:
        assert clients[k].close_code in (None, 1008), clients[k].close_code
    for k in survivors:
        clients[k].send(wires[k][-1:])
        clients[k].sock.settimeout(10)
        op, payload = clients[k].message()
        assert op == OP_BINARY and payload == bytes([k + 1]) * sizes[k], (k, len(payload))


def test_ws_messages_are_capped_at_max_client_message_bytes(start_server):
    """/ws takes at most --max-client-message-bytes (64 KiB by default): a
    100 KB message closes 1009. /echo still takes up to --max-message-bytes."""
    s = start_server(*SHARDS, "--echo")
    ws = WS(s)
    big = json.dumps({"type": "subscribe", "topics": ["x" * 100_000]})
    ws.send(frame(OP_TEXT, big))
    expect_closed(ws, (1009,), timeout=5)
    echo = WS(s, path="/echo")
    for op, payload in [(OP_TEXT, big.encode()), (OP_BINARY, os.urandom(MIB))]:
        echo.send(frame(op, payload))
        echo.sock.settimeout(10)
        assert echo.message() == (op, payload)


def test_deflate_bomb_on_ws_closes_1009_fast(start_server):
    """A permessage-deflate message of ~16 KB that inflates to 16 MiB of
    zeros, on /ws: 1009 well under a second (inflating stops at the /ws cap)."""
    s = start_server(*SHARDS)
    ws = WS(s, extensions="permessage-deflate")
    assert "permessage-deflate" in ws.headers.get("sec-websocket-extensions", ""), ws.headers
    bomb = deflate_payload(bytes(16 * MIB), level=9)
    assert len(bomb) < 32 * KIB
    t0 = time.monotonic()
    ws.send(frame(OP_TEXT, bomb, rsv=RSV1))
    code, _ = ws.end(timeout=5)
    took = time.monotonic() - t0
    assert code == 1009, code
    assert took < 1.0, f"1009 after {took:.2f}s"


def test_compressed_ws_input_is_rate_bounded_per_connection(start_server):
    """Valid compressed /ws messages of a few hundred bytes that inflate to
    ~60 KB each: a connection may inflate 16 messages' worth (of the 64 KiB
    cap) a second, so a stream of them is closed 1008 instead of keeping a
    shard busy; one a second goes on."""
    s = start_server(*SHARDS)
    ping = json.dumps({"type": "ping", "pad": " " * 60_000}).encode()
    small = deflate_payload(ping, level=9)
    assert len(small) < 1000
    calm = WS(s, extensions="permessage-deflate")
    for _ in range(3):
        calm.send(frame(OP_TEXT, small, rsv=RSV1))
        assert calm.recv_json() == {"type": "pong"}
        time.sleep(1.05)
    burst = WS(s, extensions="permessage-deflate")
    burst.send(frame(OP_TEXT, small, rsv=RSV1) * 100)
    code, pongs = burst.end(timeout=10)
    assert code == 1008, code
    assert 16 <= pongs <= 2 * 17, pongs  # one or two seconds' worth, not 100


# ---------------------------------------------------------------- 4. one validation path


INVALID_UTF8 = {
    # name: (path, body refused with 400, body then accepted, what the /ws client receives for it)
    "ws-test": ("/ws/test", b'{"message":"\xff\xfe"}', b'{"message":"after"}',
                lambda m: json.loads(m)["type"] == "test" and json.loads(m)["message"] == "after"),
    "publish": ("/api/v1/publish", b'{"topic":"utf8","data":"\xff\xfe"}', b'{"topic":"utf8","data":"after"}',
                lambda m: m == '"after"'),
    "publish-nested": ("/api/v1/publish", b'{"topic":"utf8","data":{"k":["ok","\xc3\x28"]}}',
                       b'{"topic":"utf8","data":"after"}', lambda m: m == '"after"'),
    "publish-array": ("/api/v1/publish", b'[{"topic":"utf8","data":"good"},{"topic":"utf8","data":"\xed\xa0\x80"}]',
                      b'{"topic":"utf8","data":"after"}', lambda m: m == '"after"'),
}


@pytest.mark.parametrize("case", sorted(INVALID_UTF8))
def test_invalid_utf8_is_400_and_never_broadcast(start_server, case):
    """Invalid UTF-8 inside a string of POST /ws/test or a publish is 400
    with a JSON body and reaches nobody: a websockets client (which would
    close 1007 on invalid UTF-8) stays open and its next message is the
    valid one sent afterwards."""
    s = start_server(*SHARDS)
    path, bad, good, is_good = INVALID_UTF8[case]

    async def scenario():
        async with connect(s.url + "/ws", compression=None, ping_interval=None, proxy=None) as ws:
            await ws.send('{"type":"subscribe","markets":["utf8"]}')
            assert json.loads(await ws.recv())["type"] == "subscribed"
            status, hdrs, body = await asyncio.to_thread(http_request, s.host, s.port, request("POST", path, bad))
            assert_json_error(status, hdrs, body, 400)
            status, _, body = await asyncio.to_thread(http_request, s.host, s.port, request("POST", path, good))
            assert status == 200, body
            m = await asyncio.wait_for(ws.recv(), 5)
            assert is_good(m), f"first message after the 400: {m[:100]!r}"

    asyncio.run(scenario())


# ---------------------------------------------------------------- 5. stalled readers


STALL_FLAGS = (*SHARDS, "--demo", "--demo-rate", "2000", "--demo-size", "1024", "--stall-timeout-s", "2",
               "--idle-sweep-s", "1")


@pytest.mark.parametrize("what", ["subscribe_all", "demo-topics", "plain-topic"])
def test_stalled_reader_is_closed_conflated_or_not(start_server, what):
    """A subscriber whose socket takes no bytes for --stall-timeout-s (2) is
    closed within ~5 s, whether its topics conflate (the demo feed, so its
    queue never passes the cap) or not (a plain topic under a large queue
    cap); a healthy firehose reader beside it keeps receiving."""
    s = start_server(*STALL_FLAGS, "--max-queue-bytes", "8M")
    healthy = WS(s, timeout=5)
    healthy.call({"type": "subscribe_all"})
    topics = set()
    while len(topics) < 4:
        topics.add(json.loads(healthy.message()[1])["topic"])
    got = []  # arrival times of the healthy reader's messages

    def read_healthy():
        try:
            while not stop.is_set():
                healthy.message()
                got.append(time.monotonic())
        except (Ended, TimeoutError, AssertionError) as e:
            got.append(e)

    stop = threading.Event()
    reader = threading.Thread(target=read_healthy, daemon=True)
    reader.start()

    stalled = WS(s, rcvbuf=4096)
    sub = {"subscribe_all": {"type": "subscribe_all"},
           "demo-topics": {"type": "subscribe", "markets": sorted(topics)},
           "plain-topic": {"type": "subscribe", "markets": ["plain-stall"]}}[what]
    assert stalled.call(sub)["type"] == "subscribed"  # the only read it ever does
    t0 = time.monotonic()
    if what == "plain-topic":
        pad = "p" * 1000
        for r in range(20):  # 2 MB: stalls the socket, stays under the 8M queue cap
            items = [{"topic": "plain-stall", "data": {"i": r * 100 + j, "pad": pad}} for j in range(100)]
            assert publish(s, json.dumps(items))[0] == 200
    wait_until(lambda: metrics(s).get("stall_closes_total", 0) >= 1, 8, "ringcast_stall_closes_total >= 1")
    closed_after = time.monotonic() - t0
    assert closed_after < 6, f"stall close after {closed_after:.1f}s"
    expect_closed(stalled, (1008,), timeout=5)
    time.sleep(0.5)
    stop.set()
    reader.join(5)
    assert not any(isinstance(x, Exception) for x in got), got[-1]
    window = time.monotonic() - t0
    assert len(got) > 0.5 * 2000 * window, f"healthy reader got {len(got)} messages in {window:.1f}s"
    gaps = [b - a for a, b in zip(got, got[1:])]
    assert max(gaps) < 1.0, f"healthy reader waited {max(gaps):.2f}s for a message"
    m = metrics(s)
    assert m["stall_closes_total"] == 1 and m["slow_consumer_closes_total"] == 0, m


# ---------------------------------------------------------------- 6. connection limits


def refusal_lines(server):
    return [l for l in server.logs().splitlines() if re.search(r"refus", l, re.I)]


def read_until_eof(sock, timeout=3.0):
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def parse_response(raw):
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return int(lines[0].split(" ")[1]), hdrs, body[: int(hdrs.get("content-length", len(body)))]


def test_max_conns_refuses_with_503_and_keeps_admin_open(start_server):
    """--max-conns 4: four clients get in; the fifth, without sending a
    byte, reads 503 with Retry-After and a JSON body. Refusals are counted,
    logged at most once a second (50 in a burst: at most 2 lines), the admin
    listener (not counted) still answers /healthz, /readyz and /metrics, and
    a freed slot is usable again."""
    s = start_server(*SHARDS, "--max-conns", "4")
    time.sleep(0.3)  # the fixture's readiness probe is gone
    admitted = [WS(s) for _ in range(4)]

    def refused_once():
        c = socket.create_connection((s.host, s.port), timeout=3)
        try:
            status, hdrs, body = parse_response(read_until_eof(c))
        finally:
            c.close()
        assert_json_error(status, hdrs, body, 503)
        assert re.fullmatch(r"\d+", hdrs.get("retry-after", "")), hdrs
        return status

    refused_once()
    lines_before = len(refusal_lines(s))
    t0 = time.monotonic()
    burst = [socket.create_connection((s.host, s.port), timeout=3) for _ in range(50)]
    assert time.monotonic() - t0 < 1.0
    for c in burst:
        status, hdrs, body = parse_response(read_until_eof(c))
        c.close()
        assert_json_error(status, hdrs, body, 503)
    time.sleep(1.5)  # a rate-limited summary line may follow the burst
    lines = refusal_lines(s)
    assert lines, "refusals are not logged"
    assert len(lines) - lines_before <= 2, lines
    # The admin listener answers while the client port is full, and its own
    # connections do not count.
    held = [HttpConn(s, port=s.admin_port) for _ in range(6)]
    for c, path in zip(held, ["/healthz", "/readyz", "/metrics"] * 2):
        c.send(request("GET", path))
        assert c.response()[0] == 200, path
    m = metrics(s)
    assert m["connections_refused_total"] == 51, m.get("connections_refused_total")
    # Every admitted client is still served, and a freed slot admits a new one.
    assert admitted[0].call({"type": "ping"}) == {"type": "pong"}
    admitted.pop().close()
    wait_until(lambda: healthz_ok(s.port), 3, "a freed slot")


# ---------------------------------------------------------------- 7. addresses in use


IN_USE = r"in use|another process listens"  # the reason, in either wording


def test_admin_listener_full_of_idle_connections_still_answers_probes(start_server):
    """Whoever holds the admin listener's 64 connections open cannot lock
    the probes out: the newest connection wins, the oldest is reset."""
    s = start_server(*SHARDS)
    idle = [HttpConn(s, port=s.admin_port) for _ in range(80)]
    for _ in range(3):
        assert get(s, "/healthz", port=s.admin_port)[0] == 200
    # the oldest idle connections were closed to make room, the newest stay
    def ended(c):
        c.sock.settimeout(2)
        try:
            c._fill()
        except Ended:
            return True
        except TimeoutError:  # still open (idle keep-alive lasts --request-timeout-ms, 10 s)
            return False
        return False
    assert ended(idle[0]) and ended(idle[1])
    assert not ended(idle[-2])
    c = idle[-1]
    c.send(request("GET", "/readyz"))
    assert c.response()[0] == 200
    assert metrics(s)["connections_refused_total"] == 0


def run_second(*args, timeout=10):
    return subprocess.run([ringcast_bin(), "--shards", "1", *args], capture_output=True, text=True, timeout=timeout)


def test_listen_address_in_use_exits_2(start_server):
    s = start_server(*SHARDS)
    addr = f"127.0.0.1:{s.port}"
    r = run_second("--listen", addr, "--admin-listen", f"127.0.0.1:{free_port()}")
    out = r.stdout + r.stderr
    assert r.returncode == 2, (r.returncode, out)
    assert addr in out and re.search(IN_USE, out, re.I), out


def test_admin_listen_address_in_use_exits_2(start_server):
    s = start_server(*SHARDS)
    addr = f"127.0.0.1:{s.admin_port}"
    r = run_second("--listen", f"127.0.0.1:{free_port()}", "--admin-listen", addr)
    out = r.stdout + r.stderr
    assert r.returncode == 2, (r.returncode, out)
    assert addr in out and re.search(IN_USE, out, re.I), out


def test_reuse_port_lets_a_second_process_share_the_listener(start_server):
    s = start_server(*SHARDS, "--reuse-port")
    admin = free_port()
    p = subprocess.Popen([ringcast_bin(), "--shards", "1", "--reuse-port", "--listen", f"127.0.0.1:{s.port}",
                          "--admin-listen", f"127.0.0.1:{admin}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: p.poll() is not None or healthz_ok(admin), 10, "the second process's admin listener")
        assert p.poll() is None, f"second process exited {p.returncode}: {p.stdout.read().decode(errors='replace')}"
        time.sleep(0.5)
        assert p.poll() is None
        assert get(s, "/healthz")[0] == 200
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        code = p.wait(10)
        p.stdout.close()
    assert code == 0


# ---------------------------------------------------------------- 8. drain


def test_publish_during_drain_is_503(start_server):
    """SIGTERM with a WebSocket client that does not answer the close (so
    the drain lasts): a publish on a keep-alive connection opened before is
    answered 503 with a JSON body and Connection: close, not 200."""
    s = start_server(*SHARDS, "--drain-s", "5")
    ws = WS(s)
    ws.call({"type": "subscribe", "topics": ["drain"]})
    c = HttpConn(s)
    c.send(request("GET", "/healthz"))
    assert c.response()[0] == 200
    s.proc.send_signal(signal.SIGTERM)
    code, _ = ws.end(timeout=5)
    assert code == 1001, code  # draining has begun
    c.send(request("POST", "/api/v1/publish", '{"topic":"drain","data":1}'))
    status, hdrs, body = c.response()
    assert_json_error(status, hdrs, body, 503)
    assert hdrs.get("connection", "").lower() == "close", hdrs
    c.expect_eof()


# ---------------------------------------------------------------- 9. memory goes back


def warm_up(s):
    """A little of everything: subscribers, publishes, pings, an echo."""
    subs = [WS(s) for _ in range(4)]
    for ws in subs:
        ws.call({"type": "subscribe", "topics": ["warm"]})
    items = [{"topic": "warm", "data": {"i": i, "pad": "w" * 500}} for i in range(200)]
    assert publish(s, json.dumps(items))[0] == 200
    for ws in subs:
        for _ in items:
            ws.message()
        assert ws.call({"type": "ping"}) == {"type": "pong"}
        ws.close()
    echo = WS(s, path="/echo")
    payload = os.urandom(200 * KIB)
    echo.send(frame(OP_BINARY, payload))
    echo.sock.settimeout(10)
    assert echo.message() == (OP_BINARY, payload)
    echo.close()
    for _ in range(20):
        assert get(s, "/metrics", port=s.admin_port)[0] == 200


def test_memory_goes_back_after_a_flood(start_server):
    """After warm traffic, 50 clients fill their queues without reading
    (closed 1008) and 50 hold 900 KB unfinished messages; once all are gone,
    RSS comes back to within 20 % (+5 MB) of before the flood in 60 s."""
    s = start_server(*SHARDS, "--echo", "--max-queue-bytes", "1M", "--idle-sweep-s", "1")
    warm_up(s)
    time.sleep(1.0)
    base = rss_mb(s)
    topics = long_topics(20)
    empty_subscribe = frame(OP_TEXT, '{"type":"subscribe","topics":[]}', mask_key=b"\x01\x02\x03\x04")
    with RssPeak(s) as rss:
        flooders = []
        for _ in range(50):
            ws = WS(s, rcvbuf=4096)
            subscribe_in_chunks(ws, topics)
            flood(ws.sock, empty_subscribe, 600, stall_s=0.5)  # 600 acks of ~4 KB: 2.4 MB asked for
            flooders.append(ws)
        holders = []
        for k in range(50):
            ws = WS(s, path="/echo")
            ws.send(frame(OP_BINARY, bytes([k]) * MIB)[: 14 + 900 * KIB])
            holders.append(ws)
        time.sleep(1.0)
        for ws in flooders:
            expect_closed(ws, (1008,), timeout=10)
    assert rss.peak - base > 20, f"the flood did not cost memory ({base:.0f} -> {rss.peak:.0f} MB): test is void"
    for ws in holders:
        ws.close()
    limit = base * 1.2 + 5
    samples = []
    deadline = time.monotonic() + 60
    while True:
        samples.append(round(rss_mb(s)))
        if samples[-1] <= limit:
            break
        assert time.monotonic() < deadline, (f"RSS {samples[-1]} MB 60 s after the flood (before it {base:.0f} MB, "
                                             f"peak {rss.peak:.0f} MB, limit {limit:.0f} MB); samples {samples}")
        time.sleep(1.0)
