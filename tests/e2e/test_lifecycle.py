"""Process lifecycle: graceful drain on SIGTERM/SIGINT (close 1001 to every
WebSocket, exit 0), the close and drain timeouts, and a leak check of the
whole server under AddressSanitizer/LeakSanitizer.
"""
import asyncio
import concurrent.futures
import json
import os
import pathlib
import random
import signal
import socket
import struct
import subprocess
import time

import pytest
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosedOK

from conftest import ROOT
from wsraw import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Closed, RawWS, close_payload, frame


def raw(server):
    ws = RawWS(server.host, server.port)
    assert ws.status == 101
    return ws


def recv_close_code(ws, timeout=5.0):
    """Reads frames until a close; returns its code (does not reply)."""
    ws.sock.settimeout(timeout)
    while True:
        fin, rsv, op, payload = ws.recv_frame()
        if op == OP_CLOSE:
            assert fin and rsv == 0
            payload[2:].decode("utf-8")
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


def http_get_keepalive(server, path="/healthz", port=None):
    """A keep-alive connection that has had one 200 for `path` (on the client
    port, or on `port`: server.admin_port for /readyz and /metrics)."""
    s = socket.create_connection((server.host, port or server.port), timeout=5)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, body = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ")
    n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
    while len(body) < n:
        body += s.recv(4096)
    return s


def wait_exit(proc, timeout):
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"ringcast still running {timeout}s after the signal")


def assert_eof(sock, timeout=3.0):
    sock.settimeout(timeout)
    try:
        data = sock.recv(65536)
    except ConnectionResetError:
        return
    except socket.timeout:
        raise AssertionError("connection still open")
    assert data == b"", data


# ---------------------------------------------------------------- graceful drain


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_sends_1001_to_50_clients_and_exits_0(start_server, sig):
    s = start_server("--echo", "--shards", "2")
    clients = [raw(s) for _ in range(50)]
    for i, ws in enumerate(clients):  # every connection is live and echoing
        ws.send_frame(OP_TEXT, f"hello {i}".encode())
    for i, ws in enumerate(clients):
        assert ws.recv_message() == (OP_TEXT, f"hello {i}".encode())

    t0 = time.time()
    s.proc.send_signal(sig)
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(lambda ws: ws.expect_close(1001)[0], clients))
    assert codes == [1001] * 50
    assert wait_exit(s.proc, 5) == 0, s.logs()
    assert time.time() - t0 < 5


def test_sigterm_websockets_clients_see_going_away(start_server):
    s = start_server("--echo", "--shards", "2")

    async def client(i, ready):
        async with aconnect(s.url + "/echo", compression=None, proxy=None, ping_interval=None) as ws:
            await ws.send(f"c{i}")
            assert await ws.recv() == f"c{i}"
            ready.release()
            with pytest.raises(ConnectionClosedOK) as ei:
                await asyncio.wait_for(ws.recv(), 10)
            return ei.value.rcvd.code

    async def main():
        ready = asyncio.Semaphore(0)
        tasks = [asyncio.create_task(client(i, ready)) for i in range(50)]
        for _ in range(50):
            await asyncio.wait_for(ready.acquire(), 10)
        s.proc.send_signal(signal.SIGTERM)
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == [1001] * 50
    assert wait_exit(s.proc, 5) == 0, s.logs()


def test_sigterm_with_no_clients_exits_0_fast(start_server):
    s = start_server("--echo", "--shards", "2")
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    assert wait_exit(s.proc, 5) == 0
    assert time.time() - t0 < 1.5
    log = s.logs()
    assert "draining" in log


def test_draining_observable_behaviour(start_server):
    """With a long --drain-s the process waits for its WebSocket clients:
    they get 1001, idle HTTP connections are closed, nobody new gets a 200
    from /readyz, and the process exits 0 as soon as the last client has
    answered the close. (/readyz is on the admin listener.)"""
    s = start_server("--echo", "--shards", "2", "--drain-s", "30", "--close-timeout-ms", "20000")
    holders = [raw(s) for _ in range(4)]
    idle_http = http_get_keepalive(s, "/readyz", port=s.admin_port)
    idle_http2 = http_get_keepalive(s, "/healthz")

    s.proc.send_signal(signal.SIGTERM)
    for ws in holders:
        assert recv_close_code(ws) == 1001
    # A probe on an open keep-alive connection sees readiness turn 503, and
    # that response is the connection's last.
    idle_http.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"}" not in data:
        chunk = idle_http.recv(4096)
        assert chunk, data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 503 "), head
    assert b"Connection: close" in head
    assert json.loads(body) == {"ready": False, "reason": "draining"}
    assert_eof(idle_http)
    # An idle keep-alive connection nobody uses is closed after a short grace.
    assert_eof(idle_http2, timeout=3)

    # Still running: it waits for the clients' close frames.
    time.sleep(0.5)
    assert s.proc.poll() is None, "exited before the clients answered the close"

    # A new probe of /readyz (admin listener) must not be told the server is
    # ready (the admin listener may already be gone: refused is fine too).
    try:
        c = socket.create_connection((s.host, s.admin_port), timeout=2)
    except (ConnectionRefusedError, ConnectionResetError):
        pass
    else:
        try:
            c.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = c.recv(4096)
            assert not data.startswith(b"HTTP/1.1 200"), data
            if data:
                assert data.startswith(b"HTTP/1.1 503"), data
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            c.close()

    # The client listener is closed while draining: a new connection is
    # refused, and even if one got through it must not be let in.
    try:
        c = socket.create_connection((s.host, s.port), timeout=2)
    except (ConnectionRefusedError, ConnectionResetError):
        pass
    else:
        try:
            c.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            data = c.recv(4096)
            assert not data.startswith(b"HTTP/1.1 101"), data
            if data:
                assert data.startswith(b"HTTP/1.1 503"), data
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            c.close()

    # Data sent after the server's close is not echoed (RFC 6455 §5.5.1).
    holders[0].send_frame(OP_TEXT, b"late")
    holders[0].send_frame(OP_PING, b"late ping")

    t0 = time.time()
    for ws in holders:
        ws.send_frame(OP_CLOSE, close_payload(1001))
        ws.expect_eof(3)
    assert holders[0].buf == b""
    assert wait_exit(s.proc, 5) == 0, s.logs()
    assert time.time() - t0 < 2


def test_client_that_never_answers_close_is_dropped(start_server):
    s = start_server("--echo", "--shards", "1", "--drain-s", "30", "--close-timeout-ms", "500")
    silent = raw(s)
    polite = raw(s)
    s.proc.send_signal(signal.SIGTERM)
    assert recv_close_code(polite) == 1001
    t0 = time.time()
    assert recv_close_code(silent) == 1001
    polite.send_frame(OP_CLOSE, close_payload(1001))
    polite.expect_eof(2)
    # The silent one gets no more bytes, just the end of the connection.
    assert_eof(silent.sock, timeout=5)
    dropped = time.time() - t0
    assert 0.3 <= dropped <= 2.0, dropped
    assert wait_exit(s.proc, 3) == 0, s.logs()


def test_drain_budget_bounds_exit(start_server):
    """Clients that never close cannot hold the process past --drain-s."""
    s = start_server("--echo", "--shards", "2", "--drain-s", "1", "--close-timeout-ms", "60000")
    clients = [raw(s) for _ in range(6)]
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    for ws in clients:
        assert recv_close_code(ws) == 1001
    assert wait_exit(s.proc, 5) == 0, s.logs()
    assert 0.8 <= time.time() - t0 <= 3.0
    for ws in clients:
        assert_eof(ws.sock)


def test_sigterm_mid_message(start_server):
    """WebSockets in the middle of a message still get 1001 and the process
    exits as soon as they have answered."""
    s = start_server("--echo", "--shards", "2", "--drain-s", "10")
    frag = raw(s)
    frag.send_frame(OP_TEXT, b"half of a ", fin=False)
    partial_frame = raw(s)
    wire = frame(OP_BINARY, b"x" * 100000)
    partial_frame.send(wire[:5000])
    time.sleep(0.2)
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    # Between frames: answer the close at once.
    _, _, before = frag.expect_close(1001)
    assert before == []  # the unfinished message is not echoed
    # Inside a frame: a close can only follow the end of that frame.
    assert recv_close_code(partial_frame) == 1001
    partial_frame.send(wire[5000:] + frame(OP_CLOSE, close_payload(1001)))
    partial_frame.expect_eof(3)
    assert partial_frame.buf == b""  # the message completed after the close is not echoed either
    assert wait_exit(s.proc, 5) == 0, s.logs()
    assert time.time() - t0 < 2


def test_sigterm_idle_http_keepalive_closed_at_once(start_server):
    s = start_server("--echo", "--shards", "2", "--drain-s", "10")
    conns = [http_get_keepalive(s) for _ in range(5)]
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    for c in conns:
        assert_eof(c)
    assert wait_exit(s.proc, 5) == 0, s.logs()
    assert time.time() - t0 < 2


def test_sigterm_with_partial_http_request(start_server):
    """A request whose head is half received at SIGTERM: the server may
    finish and answer it (Connection: close) or drop the connection, but it
    must do one of them promptly rather than wait out the drain budget."""
    s = start_server("--echo", "--shards", "1", "--drain-s", "4")
    c = socket.create_connection((s.host, s.port), timeout=5)
    c.sendall(b"GET /healthz HTTP/1.1\r\nHost:")
    time.sleep(0.2)
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    try:
        c.sendall(b" x\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    c.settimeout(1.5)
    data = b""
    try:
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError(f"neither answered nor closed {time.time() - t0:.1f}s after SIGTERM")
    assert data == b"" or (data.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in data), data
    assert time.time() - t0 < 2
    assert wait_exit(s.proc, 10) == 0
    assert time.time() - t0 < 2.5, f"exit took {time.time() - t0:.1f}s (drain budget 4s)"


def test_connections_closing_at_sigterm_finish(start_server):
    """A failed connection lingers only until the client's FIN."""
    s = start_server("--echo", "--shards", "1")
    ws = raw(s)
    ws.send_frame(OP_CLOSE, close_payload(4000))
    ws.expect_close(4000)
    ws2 = raw(s)
    ws2.send(frame(OP_TEXT, b"x", mask=False))
    ws2.expect_close(1002)
    ws.close()
    ws2.close()
    time.sleep(0.1)
    t0 = time.time()
    assert s.stop() == 0
    assert time.time() - t0 < 1.5


def test_failed_connection_linger_bounded_by_close_timeout(start_server):
    """After a protocol error the server shuts its side and waits for the
    client's FIN at most --close-timeout-ms, also during a drain."""
    s = start_server("--echo", "--shards", "1", "--close-timeout-ms", "400", "--drain-s", "30")
    ws = raw(s)
    ws.send(frame(OP_TEXT, b"x", rsv=2))
    fin, rsv, op, payload = ws.recv_frame()
    assert op == OP_CLOSE and struct.unpack("!H", payload[:2])[0] == 1002
    ws.expect_eof()  # our read side sees the server's FIN at once; we never close ours
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    assert wait_exit(s.proc, 5) == 0
    assert time.time() - t0 < 1.5


# ---------------------------------------------------------------- leaks under ASan/LSan


def asan_binary():
    path = os.environ.get("RINGCAST_ASAN_BIN")
    if path:
        if not os.path.exists(path):
            pytest.fail(f"RINGCAST_ASAN_BIN={path} does not exist")
        return path
    script = ROOT / "tests" / "sanitize.sh"
    if not script.exists():
        pytest.skip("no ASan server: set RINGCAST_ASAN_BIN or provide tests/sanitize.sh")
    r = subprocess.run(["bash", str(script), "server"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.fail(f"tests/sanitize.sh server failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    path = ROOT / "build-asan" / "ringcast"
    assert path.exists(), r.stdout
    return str(path)


def _cycle(server, i):
    """One connection's life; the kind is picked by i so the mix is fixed."""
    kind = i % 10
    rnd = random.Random(i)
    if kind in (0, 1, 2):  # clean: handshake, echo, close handshake
        ws = raw(server)
        msg = rnd.randbytes(rnd.choice([0, 10, 200, 70000]))
        ws.send_frame(OP_BINARY, msg)
        assert ws.recv_message() == (OP_BINARY, msg)
        ws.send_frame(OP_TEXT, "ünïcode".encode(), fin=False)
        ws.send_frame(OP_PING, b"p")
        ws.send_frame(OP_CONT, b"!", fin=True)
        assert ws.recv_frame() == (True, 0, OP_PONG, b"p")
        assert ws.recv_message() == (OP_TEXT, "ünïcode!".encode())
        ws.send_frame(OP_CLOSE, close_payload(1000, "bye"))
        ws.expect_close(1000)
        return "clean"
    if kind in (3, 4):  # abrupt TCP close after an echo, sometimes mid-frame, sometimes RST
        ws = raw(server)
        ws.send_frame(OP_TEXT, b"abrupt")
        assert ws.recv_message() == (OP_TEXT, b"abrupt")
        if kind == 4:
            ws.send(frame(OP_BINARY, b"y" * 50000)[:20000])  # message buffer allocated, frame incomplete
            ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.close()
        return "abrupt"
    if kind == 5:  # protocol error, server fails the connection
        ws = raw(server)
        ws.send_frame(OP_TEXT, b"frag", fin=False)
        ws.send(frame(OP_TEXT, b"\xff"))  # new message inside a fragmented one
        ws.expect_close(1002)
        return "error"
    if kind == 6:  # oversize message
        ws = raw(server)
        ws.send(frame(OP_BINARY, length=1 << 30)[:14])
        ws.expect_close(1009)
        return "error"
    s = socket.create_connection((server.host, server.port), timeout=5)
    try:
        if kind == 7:  # HTTP request (keep-alive) then close
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            buf = b""
            while buf.count(b"HTTP/1.1 ") < 2 or not buf.endswith(b"}"):
                chunk = s.recv(4096)
                assert chunk, buf
                buf += chunk
            assert buf.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 404 " in buf
        elif kind == 8:  # malformed request: 400 then the server closes
            s.sendall(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
            buf = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
            assert buf.startswith(b"HTTP/1.1 400 ")
        else:  # half a request head, then gone
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: webso")
    finally:
        s.close()
    return "http"


def test_no_leaks_under_asan(start_server):
    binary = asan_binary()
    s = start_server("--echo", "--shards", "2", "--drain-s", "2", "--close-timeout-ms", "300",
                     binary=binary, env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1"})
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        kinds = list(pool.map(lambda i: _cycle(s, i), range(1000)))
    assert len(kinds) == 1000 and set(kinds) == {"clean", "abrupt", "error", "http"}

    # Leave connections in every state for the drain to clean up.
    open_ws = [raw(s) for _ in range(5)]
    open_ws[0].send_frame(OP_TEXT, b"midway", fin=False)
    open_ws[1].send(frame(OP_BINARY, b"z" * 30000)[:10000])
    keepalive = http_get_keepalive(s)
    partial = socket.create_connection((s.host, s.port), timeout=5)
    partial.sendall(b"GET /healthz HTTP/1.1\r\n")
    time.sleep(0.2)

    s.proc.send_signal(signal.SIGTERM)
    for ws in open_ws[:3]:  # these answer the close; the others never do
        ws.expect_close(1001)
    code = wait_exit(s.proc, 30)
    log = s.logs()
    assert "LeakSanitizer" not in log, log[-5000:]
    assert "ERROR: AddressSanitizer" not in log, log[-5000:]
    assert code == 0, log[-5000:]
    for sock in (keepalive, partial):
        sock.close()
