"""HTTP/1.1 side of ringcast: endpoints, error statuses with their JSON
bodies, connection management (keep-alive, pipelining, close), request
limits and timeouts, and the command line / environment.

Everything goes over raw sockets so each test states the exact bytes sent
and checks the exact status, headers and body that come back.
"""
import json
import os
import re
import socket
import subprocess
import time

import pytest

from conftest import free_port, ringcast_bin
from wsraw import Closed, RawWS, http_request

# The "error" text of each JSON error body, in one place.
MSG = {
    400: "malformed request",
    404: "not found",
    405: "method not allowed",
    408: "request not completed in time",
    413: "request body too large",
    414: "request line too long",
    426: "WebSocket upgrade required (Sec-WebSocket-Version: 13)",
    431: "request header fields too large",
    505: "HTTP version not supported",
}
HANDSHAKE_400 = "bad WebSocket handshake"
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3 sample nonce
WS_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


# ---------------------------------------------------------------- helpers


class Conn:
    """One client socket that can read several responses in a row."""

    def __init__(self, server, timeout=5.0, port=None):
        """port: another of the server's ports (server.admin_port); the client port by default."""
        self.sock = socket.create_connection((server.host, port or server.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            raise Closed("reset")
        if not chunk:
            raise Closed("eof")
        self.buf += chunk

    def response(self):
        """Reads one response: (status, headers, body)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        m = re.fullmatch(r"HTTP/1\.1 (\d{3}) .+", lines[0])
        assert m, f"bad status line {lines[0]!r}"
        hdrs = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs["content-length"])
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return int(m.group(1)), hdrs, body

    def expect_eof(self, timeout=3.0):
        """Asserts the server ends the connection with no further bytes."""
        self.sock.settimeout(timeout)
        assert self.buf == b"", f"unexpected bytes {self.buf[:100]!r}"
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            return
        except socket.timeout:
            raise AssertionError("server did not close the connection")
        assert chunk == b"", f"unexpected bytes after the response: {chunk[:100]!r}"

    def expect_open(self, wait=0.3):
        """Asserts the connection is still open (nothing arrives, no EOF)."""
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return
        finally:
            self.sock.settimeout(5.0)
        raise AssertionError(f"expected an open idle connection, got {chunk!r}")

    def close(self):
        self.sock.close()


def req(method, path, headers=(), version="HTTP/1.1", body=b"", host=True):
    lines = [f"{method} {path} {version}"]
    if host:
        lines.append("Host: localhost")
    lines += list(headers)
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return raw + (body.encode() if isinstance(body, str) else body)


def upgrade_req(path="/echo", key=WS_KEY, version="13", extra=(), method="GET", http="HTTP/1.1",
                upgrade="websocket", connection="Upgrade", host=True):
    h = []
    if upgrade is not None:
        h.append(f"Upgrade: {upgrade}")
    if connection is not None:
        h.append(f"Connection: {connection}")
    if key is not None:
        h.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        h.append(f"Sec-WebSocket-Version: {version}")
    return req(method, path, h + list(extra), version=http, host=host)


def assert_json_error(status, hdrs, body, expected_status, message=None):
    assert status == expected_status, (status, body)
    assert hdrs.get("content-type") == "application/json", hdrs
    assert int(hdrs["content-length"]) == len(body)
    assert json.loads(body) == {"error": message or MSG[expected_status], "status": expected_status}, body


def one(server, raw, port=None):
    """Sends one request on a fresh connection (to the client port, or to
    port: server.admin_port) and returns its response; also asserts that an
    error response closes the connection."""
    c = Conn(server, port=port)
    try:
        c.send(raw)
        status, hdrs, body = c.response()
        if status >= 400:
            assert hdrs.get("connection", "").lower() == "close" or status in (404, 405), hdrs
        return status, hdrs, body
    finally:
        c.close()


# ---------------------------------------------------------------- endpoints


def test_healthz(echo_server):
    status, hdrs, body = one(echo_server, req("GET", "/healthz"))
    assert status == 200
    assert hdrs["content-type"] == "application/json"
    assert json.loads(body) == {"status": "ok"}
    assert hdrs["server"] == "ringcast"
    assert "connection" not in hdrs  # HTTP/1.1 default keep-alive


def test_readyz(echo_server):
    status, hdrs, body = one(echo_server, req("GET", "/readyz"), port=echo_server.admin_port)
    assert status == 200
    assert hdrs["content-type"] == "application/json"
    assert json.loads(body) == {"ready": True}


def test_query_string_ignored_for_routing(echo_server):
    status, _, body = one(echo_server, req("GET", "/healthz?verbose=1&x=%20"))
    assert status == 200 and json.loads(body) == {"status": "ok"}


@pytest.mark.parametrize("path", ["/index.html", "/nope", "/healthz/", "/HEALTHZ", "/healthzz", "/echo/x", "/readyz/1"])
def test_unknown_path_404(echo_server, path):
    status, hdrs, body = one(echo_server, req("GET", path))
    assert_json_error(status, hdrs, body, 404)


def test_404_keeps_connection_alive(echo_server):
    c = Conn(echo_server)
    c.send(req("GET", "/missing"))
    status, hdrs, body = c.response()
    assert_json_error(status, hdrs, body, 404)
    assert "connection" not in hdrs
    c.send(req("GET", "/healthz"))
    assert c.response()[0] == 200
    c.close()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_wrong_method_405(echo_server, method, path):
    # /readyz is served on the admin listener only
    port = echo_server.admin_port if path == "/readyz" else None
    status, hdrs, body = one(echo_server, req(method, path, ["Content-Length: 0"]), port=port)
    assert_json_error(status, hdrs, body, 405)
    assert hdrs["allow"] == "GET"


def test_post_echo_405(echo_server):
    status, hdrs, body = one(echo_server, upgrade_req(method="POST"))
    assert_json_error(status, hdrs, body, 405)
    assert hdrs["allow"] == "GET"
    assert hdrs["connection"].lower() == "close"


def test_echo_404_without_flag(start_server):
    s = start_server("--shards", "1")
    status, hdrs, body = one(s, upgrade_req())
    assert_json_error(status, hdrs, body, 404)


# ---------------------------------------------------------------- 400 malformed


MALFORMED = {
    "garbage": b"GARBAGE\r\n\r\n",
    "bare_lf": b"GET /healthz HTTP/1.1\nHost: x\n\n",
    "bare_lf_in_header": b"GET /healthz HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
    "cr_without_lf": b"GET /healthz HTTP/1.1\rHost: x\r\n\r\n",
    "double_space": b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "no_version": b"GET /healthz\r\nHost: x\r\n\r\n",
    "lowercase_version": b"GET /healthz http/1.1\r\nHost: x\r\n\r\n",
    "version_junk": b"GET /healthz HTTP/1.1x\r\nHost: x\r\n\r\n",
    "absolute_form": b"GET http://localhost/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "fragment": b"GET /healthz#frag HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_percent": b"GET /he%zzlthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "ctl_in_target": b"GET /he\x01althz HTTP/1.1\r\nHost: x\r\n\r\n",
    "space_before_colon": b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",
    "no_colon": b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n",
    "empty_header_name": b"GET /healthz HTTP/1.1\r\n: x\r\n\r\n",
    "obs_fold": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b\r\n\r\n",
    "ctl_in_value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "bad_content_length": b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
    "negative_content_length": b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "conflicting_content_length": b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "cl_and_te": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "method_with_slash": b"GE/T /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "tls_client_hello": bytes.fromhex("16030100f5010000f10303") + bytes(range(32, 72)) + b"\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_400(echo_server, name):
    c = Conn(echo_server)
    c.send(MALFORMED[name])
    status, hdrs, body = c.response()
    assert_json_error(status, hdrs, body, 400)
    assert hdrs["connection"].lower() == "close"
    c.expect_eof()
    c.close()


def test_400_after_valid_request_on_same_connection(echo_server):
    c = Conn(echo_server)
    c.send(req("GET", "/healthz") + b"BROKEN\r\n\r\n")
    assert c.response()[0] == 200
    status, hdrs, body = c.response()
    assert_json_error(status, hdrs, body, 400)
    c.expect_eof()
    c.close()


def test_obs_text_in_header_value_ok(echo_server):
    status, _, _ = one(echo_server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Name: caf\xe9 \xc3\xa9\r\n\r\n")
    assert status == 200


def test_leading_empty_lines_ignored(echo_server):
    status, _, body = one(echo_server, b"\r\n\r\n" + req("GET", "/healthz"))
    assert status == 200 and json.loads(body) == {"status": "ok"}


# ---------------------------------------------------------------- 505


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/3.0", "HTTP/1.2", "HTTP/0.9"])
def test_unsupported_version_505(echo_server, version):
    c = Conn(echo_server)
    c.send(req("GET", "/healthz", version=version))
    status, hdrs, body = c.response()
    assert_json_error(status, hdrs, body, 505)
    c.expect_eof()
    c.close()


def test_http10_supported(echo_server):
    c = Conn(echo_server)
    c.send(req("GET", "/healthz", version="HTTP/1.0"))
    status, hdrs, body = c.response()
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert hdrs["connection"].lower() == "close"  # 1.0 without keep-alive
    c.expect_eof()
    c.close()


def test_http10_keep_alive(echo_server):
    c = Conn(echo_server)
    c.send(req("GET", "/healthz", ["Connection: keep-alive"], version="HTTP/1.0"))
    status, hdrs, _ = c.response()
    assert status == 200 and "connection" not in hdrs
    c.send(req("GET", "/healthz", ["Connection: keep-alive"], version="HTTP/1.0"))
    assert c.response()[0] == 200
    c.close()


# ---------------------------------------------------------------- 413


def test_body_over_limit_413_without_reading_body(echo_server):
    """Content-Length one over the 1 MiB default: 413 arrives although not
    a single body byte was sent."""
    c = Conn(echo_server)
    c.send(req("POST", "/healthz", [f"Content-Length: {(1 << 20) + 1}"]))
    t0 = time.time()
    status, hdrs, body = c.response()
    assert time.time() - t0 < 2
    assert_json_error(status, hdrs, body, 413)
    assert hdrs["connection"].lower() == "close"
    c.expect_eof()
    c.close()


def test_413_survives_client_sending_the_body(echo_server):
    """The client sends its whole (too large) body anyway: the 413 must
    still arrive intact, not be destroyed by a reset from unread bytes."""
    c = Conn(echo_server)
    body = b"B" * (2 << 20)
    c.send(req("POST", "/healthz", [f"Content-Length: {len(body)}"]) + body)
    status, hdrs, rbody = c.response()
    assert_json_error(status, hdrs, rbody, 413)
    c.sock.shutdown(socket.SHUT_WR)
    c.expect_eof()
    c.close()


def test_body_huge_content_length_413(echo_server):
    status, hdrs, body = one(echo_server, req("GET", "/healthz", ["Content-Length: 999999999999999"]))
    assert_json_error(status, hdrs, body, 413)


def test_body_limit_boundary(start_server):
    s = start_server("--max-publish-bytes", "10", "--shards", "1")
    # exactly at the limit: the request is read and routed
    status, _, body = one(s, req("GET", "/healthz", ["Content-Length: 10"], body=b"0123456789"))
    assert status == 200 and json.loads(body) == {"status": "ok"}
    # one over: 413
    status, hdrs, body = one(s, req("GET", "/healthz", ["Content-Length: 11"], body=b"0123456789A"))
    assert_json_error(status, hdrs, body, 413)


def test_body_is_consumed_before_next_request(start_server):
    """A request body that looks like a request must not be parsed as one."""
    s = start_server("--shards", "1")
    c = Conn(s)
    smuggled = req("GET", "/nope")
    c.send(req("POST", "/healthz", [f"Content-Length: {len(smuggled)}"], body=smuggled) + req("GET", "/healthz"))
    status, hdrs, body = c.response()
    assert_json_error(status, hdrs, body, 405)
    status, _, body = c.response()
    assert status == 200 and json.loads(body) == {"status": "ok"}
    c.close()


def test_body_split_across_sends(echo_server):
    c = Conn(echo_server)
    c.send(req("GET", "/healthz", ["Content-Length: 6"]) + b"abc")
    time.sleep(0.1)
    c.send(b"def" + req("GET", "/healthz?second=1"))
    assert c.response()[0] == 200
    status, _, body = c.response()
    assert status == 200 and json.loads(body) == {"status": "ok"}
    c.expect_open()  # "def" was body, not the start of a request (that would be a 400 and a close)
    c.close()


def test_max_publish_bytes_from_env(start_server):
    s = start_server("--shards", "1", env={"RINGCAST_MAX_PUBLISH_BYTES": "4"})
    status, hdrs, body = one(s, req("GET", "/healthz", ["Content-Length: 5"], body=b"12345"))
    assert_json_error(status, hdrs, body, 413)
    status, _, _ = one(s, req("GET", "/healthz", ["Content-Length: 4"], body=b"1234"))
    assert status == 200


# ---------------------------------------------------------------- 414 / 431


def line_of(total, method="GET"):
    """A request line of exactly `total` bytes (without CRLF)."""
    fixed = len(f"{method} / HTTP/1.1")
    return f"{method} /{'a' * (total - fixed)} HTTP/1.1"


def test_request_line_limit_414(echo_server):
    raw = (line_of(4097) + "\r\nHost: x\r\n\r\n").encode()
    status, hdrs, body = one(echo_server, raw)
    assert_json_error(status, hdrs, body, 414)


def test_request_line_at_limit_ok(echo_server):
    raw = (line_of(4096) + "\r\nHost: x\r\n\r\n").encode()
    status, hdrs, body = one(echo_server, raw)
    assert_json_error(status, hdrs, body, 404)  # parsed fine, unknown path


def test_request_line_414_before_line_ends(echo_server):
    """The limit applies to an incomplete line: no need to wait for CRLF."""
    c = Conn(echo_server)
    c.send("GET /" + "a" * 5000)
    status, hdrs, body = c.response()
    assert_json_error(status, hdrs, body, 414)
    c.close()


def test_max_line_bytes_flag(start_server):
    s = start_server("--max-line-bytes", "100", "--shards", "1")
    status, hdrs, body = one(s, (line_of(101) + "\r\nHost: x\r\n\r\n").encode())
    assert_json_error(status, hdrs, body, 414)
    status, hdrs, body = one(s, (line_of(100) + "\r\nHost: x\r\n\r\n").encode())
    assert_json_error(status, hdrs, body, 404)
    # header lines obey the same limit, but answer 431
    status, hdrs, body = one(s, req("GET", "/healthz", ["X-Long: " + "v" * 93]))  # 101 bytes
    assert_json_error(status, hdrs, body, 431)
    status, _, _ = one(s, req("GET", "/healthz", ["X-Long: " + "v" * 92]))  # 100 bytes
    assert status == 200


def test_too_many_headers_431(echo_server):
    # Host + 64 more = 65 headers > 64
    status, hdrs, body = one(echo_server, req("GET", "/healthz", [f"X-H{i}: {i}" for i in range(64)]))
    assert_json_error(status, hdrs, body, 431)


def test_max_headers_exactly_ok(echo_server):
    # Host + 63 more = 64 headers
    status, _, body = one(echo_server, req("GET", "/healthz", [f"X-H{i}: {i}" for i in range(63)]))
    assert status == 200 and json.loads(body) == {"status": "ok"}


def test_max_headers_flag(start_server):
    s = start_server("--max-headers", "3", "--shards", "1")
    status, _, _ = one(s, req("GET", "/healthz", ["A: 1", "B: 2"]))
    assert status == 200
    status, hdrs, body = one(s, req("GET", "/healthz", ["A: 1", "B: 2", "C: 3"]))
    assert_json_error(status, hdrs, body, 431)


def test_header_line_too_long_431(echo_server):
    status, hdrs, body = one(echo_server, req("GET", "/healthz", ["X-Big: " + "v" * 4090]))  # 4097 bytes
    assert_json_error(status, hdrs, body, 431)


def test_header_line_at_limit_ok(echo_server):
    status, _, _ = one(echo_server, req("GET", "/healthz", ["X-Big: " + "v" * 4089]))  # 4096 bytes
    assert status == 200


def test_head_too_large_431(echo_server):
    """Every line within its limit, the head as a whole over 8192 bytes."""
    hdrs_ = [f"X-{i}: " + "v" * 3000 for i in range(3)]
    status, hdrs, body = one(echo_server, req("GET", "/healthz", hdrs_))
    assert_json_error(status, hdrs, body, 431)


def test_head_exactly_max_head_bytes(echo_server):
    def padded(total):
        base = len(req("GET", "/healthz", ["X-Pad1: ", "X-Pad2: "]))
        n = total - base
        raw = req("GET", "/healthz", ["X-Pad1: " + "p" * (n // 2), "X-Pad2: " + "q" * (n - n // 2)])
        assert len(raw) == total
        return raw

    assert one(echo_server, padded(8192))[0] == 200
    status, hdrs, body = one(echo_server, padded(8193))
    assert_json_error(status, hdrs, body, 431)


def test_head_too_large_without_end_431(echo_server):
    """Headers keep coming and never end: 431 once 8192 bytes are held."""
    c = Conn(echo_server)
    c.send(req("GET", "/healthz")[:-2])  # no blank line yet
    for i in range(10):
        c.send(f"X-{i}: {'v' * 1000}\r\n")
    status, hdrs, body = c.response()
    assert_json_error(status, hdrs, body, 431)
    c.close()


def test_max_head_bytes_flag(start_server):
    s = start_server("--max-head-bytes", "512", "--shards", "1")
    status, hdrs, body = one(s, req("GET", "/healthz", ["X-Pad: " + "p" * 500]))
    assert_json_error(status, hdrs, body, 431)
    assert one(s, req("GET", "/healthz", ["X-Pad: " + "p" * 400]))[0] == 200


def test_head_larger_than_a_receive_buffer(start_server):
    """With 1 KiB receive buffers a 7 KB head spans many receives."""
    s = start_server("--echo", "--shards", "1", "--recv-buf-size", "1024", "--recv-bufs", "16")
    status, _, body = one(s, req("GET", "/healthz", [f"X-{i}: " + "v" * 1000 for i in range(7)]))
    assert status == 200 and json.loads(body) == {"status": "ok"}
    ws = RawWS(s.host, s.port, headers={"X-Pad": "p" * 3000})
    assert ws.status == 101
    from wsraw import OP_BINARY, frame
    data = os.urandom(100000)
    ws.send(b"".join(frame(OP_BINARY, data[:k]) for k in (1, 200, 3000, 100000)))
    for k in (1, 200, 3000, 100000):
        assert ws.recv_message() == (OP_BINARY, data[:k])
    ws.close()


# ---------------------------------------------------------------- WebSocket handshake errors


def test_upgrade_ok_101(echo_server):
    c = Conn(echo_server)
    c.send(upgrade_req())
    while b"\r\n\r\n" not in c.buf:
        c._fill()
    head = c.buf.split(b"\r\n\r\n")[0].decode()
    lines = head.split("\r\n")
    assert lines[0] == "HTTP/1.1 101 Switching Protocols"
    hdrs = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    assert hdrs["upgrade"].lower() == "websocket"
    assert hdrs["connection"].lower() == "upgrade"
    assert hdrs["sec-websocket-accept"] == WS_ACCEPT
    assert "content-length" not in hdrs
    assert "sec-websocket-extensions" not in hdrs
    c.close()


def test_upgrade_tokens_case_insensitive_and_lists(echo_server):
    ws = RawWS(echo_server.host, echo_server.port,
               headers={"Upgrade": "WebSocket", "Connection": "keep-alive, UPGRADE"})
    assert ws.status == 101
    ws.close()


@pytest.mark.parametrize("version", ["8", "12", "14", "13, 8", "", None])
def test_wrong_or_missing_ws_version_426(echo_server, version):
    status, hdrs, body = one(echo_server, upgrade_req(version=version))
    assert_json_error(status, hdrs, body, 426)
    assert hdrs["sec-websocket-version"] == "13"


def test_plain_get_echo_426(echo_server):
    status, hdrs, body = one(echo_server, req("GET", "/echo"))
    assert_json_error(status, hdrs, body, 426)
    assert hdrs["sec-websocket-version"] == "13"
    assert hdrs["upgrade"].lower() == "websocket"


def test_upgrade_to_other_protocol_426(echo_server):
    status, hdrs, body = one(echo_server, upgrade_req(upgrade="h2c"))
    assert_json_error(status, hdrs, body, 426)
    assert hdrs["sec-websocket-version"] == "13"


@pytest.mark.parametrize("key", [
    "abc",                          # not base64 of 16 bytes
    "dGhlIHNhbXBsZSBub25j",         # 15 bytes
    "dGhlIHNhbXBsZSBub25jZQ",       # missing padding
    "dGhlIHNhbXBsZSBub25jZSEh",     # 17+ bytes
    "dGhlIHNhbXBsZSBub25jZQ==x",    # trailing junk
    "dGhlIHNhbXBs ZSBub25jZQ==",    # space inside
    "!!!!!!!!!!!!!!!!!!!!!!==",     # not the alphabet
    "",
    None,                           # missing
])
def test_bad_ws_key_400(echo_server, key):
    status, hdrs, body = one(echo_server, upgrade_req(key=key))
    assert_json_error(status, hdrs, body, 400, HANDSHAKE_400)


def test_two_ws_keys_400(echo_server):
    status, hdrs, body = one(echo_server, upgrade_req(extra=["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="]))
    assert_json_error(status, hdrs, body, 400, HANDSHAKE_400)


def test_upgrade_without_connection_upgrade_400(echo_server):
    status, hdrs, body = one(echo_server, upgrade_req(connection="keep-alive"))
    assert_json_error(status, hdrs, body, 400, HANDSHAKE_400)


def test_upgrade_without_host_400(echo_server):
    status, hdrs, body = one(echo_server, upgrade_req(host=False))
    assert_json_error(status, hdrs, body, 400, "exactly one Host header is required")


@pytest.mark.parametrize("hosts", [[], ["Host: a", "Host: b"]])
def test_http11_needs_exactly_one_host(echo_server, hosts):
    """RFC 9112 §3.2: a 1.1 request without Host, or with two, is a 400."""
    raw = "GET /healthz HTTP/1.1\r\n" + "".join(h + "\r\n" for h in hosts) + "\r\n"
    status, hdrs, body = one(echo_server, raw)
    assert_json_error(status, hdrs, body, 400, "exactly one Host header is required")


def test_http10_without_host_is_fine(echo_server):
    status, _, body = one(echo_server, "GET /healthz HTTP/1.0\r\n\r\n")
    assert status == 200 and json.loads(body) == {"status": "ok"}


def test_upgrade_http10_400(echo_server):
    status, hdrs, body = one(echo_server, upgrade_req(http="HTTP/1.0"))
    assert_json_error(status, hdrs, body, 400, HANDSHAKE_400)


def test_upgrade_with_body_400(echo_server):
    status, hdrs, body = one(echo_server, upgrade_req(extra=["Content-Length: 2"]) + b"hi")
    assert_json_error(status, hdrs, body, 400, HANDSHAKE_400)


# ---------------------------------------------------------------- connection management


def test_keep_alive_two_requests_one_socket(echo_server):
    c = Conn(echo_server)
    c.send(req("GET", "/healthz"))
    status, hdrs, body = c.response()
    assert status == 200 and json.loads(body) == {"status": "ok"} and "connection" not in hdrs
    c.send(req("GET", "/healthz?second=1"))
    status, hdrs, body = c.response()
    assert status == 200 and json.loads(body) == {"status": "ok"} and "connection" not in hdrs
    c.expect_open()
    c.close()


def test_pipelining_in_order(echo_server):
    c = Conn(echo_server)
    c.send(req("GET", "/healthz") + req("GET", "/nope") + req("GET", "/healthz?third=1")
           + req("POST", "/healthz", ["Content-Length: 0"]))
    s1, _, b1 = c.response()
    s2, h2, b2 = c.response()
    s3, _, b3 = c.response()
    s4, h4, b4 = c.response()
    assert (s1, json.loads(b1)) == (200, {"status": "ok"})
    assert_json_error(s2, h2, b2, 404)
    assert (s3, json.loads(b3)) == (200, {"status": "ok"})
    assert_json_error(s4, h4, b4, 405)
    c.expect_open()
    c.close()


def test_pipelining_many(echo_server):
    c = Conn(echo_server)
    paths = ["/healthz", "/healthz?q=1", "/x"] * 30
    c.send(b"".join(req("GET", p) for p in paths))
    got = [c.response()[0] for _ in paths]
    assert got == [200 if p != "/x" else 404 for p in paths]
    c.close()


def test_pipelined_request_after_upgrade_is_ws_data(echo_server):
    """Bytes after the upgrade request in the same send are WebSocket frames."""
    from wsraw import OP_TEXT, frame
    c = Conn(echo_server)
    c.send(upgrade_req() + frame(OP_TEXT, b"same packet"))
    while b"\r\n\r\n" not in c.buf:
        c._fill()
    head, c.buf = c.buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101 ")
    while len(c.buf) < 2 + len(b"same packet"):
        c._fill()
    assert c.buf == b"\x81\x0bsame packet"
    c.close()


def test_pipelined_upgrade_after_plain_request(echo_server):
    from wsraw import OP_TEXT, frame
    c = Conn(echo_server)
    c.send(req("GET", "/healthz") + upgrade_req() + frame(OP_TEXT, b"ws after http"))
    status, _, body = c.response()
    assert status == 200 and json.loads(body) == {"status": "ok"}
    while b"\r\n\r\n" not in c.buf:
        c._fill()
    head, c.buf = c.buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101 ") and WS_ACCEPT.encode() in head
    while len(c.buf) < 15:
        c._fill()
    assert c.buf == b"\x81\x0dws after http"
    c.close()


def test_upgrade_head_split_with_frame_in_same_packet(echo_server):
    """The head's last bytes and the first frame arrive together, after the
    head's start was buffered."""
    from wsraw import OP_BINARY, frame
    raw_req = upgrade_req()
    c = Conn(echo_server)
    f = frame(OP_BINARY, bytes(range(256)) + b"tail", mask_key=b"\x01\x02\x03\x04")
    c.send(raw_req[:30])
    time.sleep(0.05)
    c.send(raw_req[30:] + f[:5])
    time.sleep(0.05)
    c.send(f[5:])
    while b"\r\n\r\n" not in c.buf:
        c._fill()
    head, c.buf = c.buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101 ")
    want = b"\x82\x7e\x01\x04" + bytes(range(256)) + b"tail"
    while len(c.buf) < len(want):
        c._fill()
    assert c.buf == want
    c.close()


def test_connection_close_honoured(echo_server):
    c = Conn(echo_server)
    c.send(req("GET", "/healthz", ["Connection: close"]) + req("GET", "/healthz?second=1"))
    status, hdrs, body = c.response()
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert hdrs["connection"].lower() == "close"
    c.expect_eof()  # the pipelined second request is not answered
    c.close()


def test_half_close_after_request_gets_response(echo_server):
    c = Conn(echo_server)
    c.send(req("GET", "/healthz"))
    c.sock.shutdown(socket.SHUT_WR)
    status, _, body = c.response()
    assert status == 200 and json.loads(body) == {"status": "ok"}
    c.expect_eof()
    c.close()


def test_head_one_byte_at_a_time(echo_server):
    c = Conn(echo_server)
    raw = req("GET", "/healthz", ["User-Agent: slow/1.0", "Accept: */*"])
    for i in range(len(raw)):
        c.send(raw[i:i + 1])
        time.sleep(0.002)
    status, _, body = c.response()
    assert status == 200 and json.loads(body) == {"status": "ok"}
    c.close()


def test_upgrade_one_byte_at_a_time(echo_server):
    c = Conn(echo_server)
    raw = upgrade_req()
    for i in range(len(raw)):
        c.send(raw[i:i + 1])
        time.sleep(0.002)
    while b"\r\n\r\n" not in c.buf:
        c._fill()
    assert c.buf.startswith(b"HTTP/1.1 101 ")
    assert f"Sec-WebSocket-Accept: {WS_ACCEPT}\r\n".encode() in c.buf
    c.close()


def test_error_split_request_line_one_byte_at_a_time(echo_server):
    c = Conn(echo_server)
    for b in b"GET /healthz HTTP/2.0\r\n":
        c.send(bytes([b]))
        time.sleep(0.002)
    status, hdrs, body = c.response()
    assert_json_error(status, hdrs, body, 505)
    c.close()


# ---------------------------------------------------------------- timeouts


def test_slowloris_partial_head_408(start_server):
    s = start_server("--request-timeout-ms", "300", "--shards", "1")
    c = Conn(s)
    t0 = time.time()
    c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n")
    status, hdrs, body = c.response()
    elapsed = time.time() - t0
    assert_json_error(status, hdrs, body, 408)
    assert hdrs["connection"].lower() == "close"
    assert 0.25 <= elapsed <= 1.5, elapsed
    c.expect_eof()
    c.close()


def test_slowloris_dribbling_bytes_still_408(start_server):
    """The timeout bounds the whole head: a byte every 50 ms does not extend it."""
    s = start_server("--request-timeout-ms", "300", "--shards", "1")
    c = Conn(s)
    t0 = time.time()
    c.sock.settimeout(0.05)
    got = None
    for b in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"x" * 200:
        try:
            c.send(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            break
        try:
            chunk = c.sock.recv(65536)
        except socket.timeout:
            continue
        c.buf += chunk
        got = time.time() - t0
        break
    c.sock.settimeout(5)
    assert got is not None, "no response while dribbling"
    status, hdrs, body = c.response()
    assert_json_error(status, hdrs, body, 408)
    assert 0.25 <= got <= 1.5, got
    c.close()


def test_partial_body_408(start_server):
    s = start_server("--request-timeout-ms", "300", "--shards", "1")
    c = Conn(s)
    c.send(req("GET", "/healthz", ["Content-Length: 10"]) + b"12345")
    status, hdrs, body = c.response()
    assert_json_error(status, hdrs, body, 408)
    c.close()


def test_idle_connection_closed_after_timeout(start_server):
    """A connection that sends nothing gets no response, just a close."""
    s = start_server("--request-timeout-ms", "300", "--shards", "1")
    c = Conn(s)
    t0 = time.time()
    c.expect_eof(timeout=3)
    assert 0.25 <= time.time() - t0 <= 1.5
    c.close()


def test_keep_alive_idle_timeout(start_server):
    s = start_server("--request-timeout-ms", "300", "--shards", "1")
    c = Conn(s)
    c.send(req("GET", "/healthz"))
    assert c.response()[0] == 200
    t0 = time.time()
    c.expect_eof(timeout=3)
    assert 0.25 <= time.time() - t0 <= 1.5
    c.close()


def test_websocket_not_subject_to_request_timeout(start_server):
    from wsraw import OP_TEXT
    s = start_server("--request-timeout-ms", "200", "--shards", "1", "--echo")
    ws = RawWS(s.host, s.port)
    assert ws.status == 101
    time.sleep(0.7)
    ws.send_frame(OP_TEXT, b"still here")
    assert ws.recv_message() == (OP_TEXT, b"still here")
    ws.close()


# ---------------------------------------------------------------- command line and environment


def run_bin(*args, env=None, timeout=10):
    return subprocess.run([ringcast_bin(), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_help():
    r = run_bin("--help")
    assert r.returncode == 0, r.stderr
    assert "usage: ringcast" in r.stdout
    for flag in ["--listen", "--shards", "--echo", "--max-message-bytes", "--max-publish-bytes", "--max-head-bytes",
                 "--max-headers", "--max-line-bytes", "--drain-s", "--request-timeout-ms", "--close-timeout-ms",
                 "--help", "--version"]:
        assert flag in r.stdout, flag
    assert "RINGCAST_" in r.stdout


def test_version():
    r = run_bin("--version")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"ringcast \d+\.\d+\.\d+\S*\n", r.stdout), r.stdout


@pytest.mark.parametrize("args,named", [
    (["--bogus"], "--bogus"),
    (["--no-such-flag=1"], "--no-such-flag"),
    (["--shards", "0"], "--shards"),
    (["--shards", "abc"], "--shards"),
    (["--max-message-bytes", "12x"], "--max-message-bytes"),
    (["--listen", "localhost:80"], "--listen"),
    (["--listen", "127.0.0.1:99999"], "--listen"),
    (["--echo=maybe"], "--echo"),
    (["--request-timeout-ms"], "--request-timeout-ms"),
    (["stray"], "stray"),
])
def test_bad_flag_exits_2(args, named):
    r = run_bin(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert named in r.stderr, r.stderr


def test_bad_env_exits_2():
    r = run_bin("--listen", f"127.0.0.1:{free_port()}", env={"RINGCAST_SHARDS": "lots"})
    assert r.returncode == 2
    assert "RINGCAST_SHARDS" in r.stderr and "--shards" in r.stderr, r.stderr


def test_env_echo_enables_endpoint(start_server):
    s = start_server("--shards", "1", env={"RINGCAST_ECHO": "1"})
    ws = RawWS(s.host, s.port)
    assert ws.status == 101
    from wsraw import OP_BINARY
    ws.send_frame(OP_BINARY, b"\x00\x01env")
    assert ws.recv_message() == (OP_BINARY, b"\x00\x01env")
    ws.close()


def test_flag_wins_over_env(start_server):
    s = start_server("--shards", "1", "--echo=0", env={"RINGCAST_ECHO": "1"})
    status, hdrs, body = one(s, upgrade_req())
    assert_json_error(status, hdrs, body, 404)


@pytest.mark.parametrize("var", ["PORT", "RINGCAST_LISTEN"])
def test_listen_from_env(var):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGCAST_") and k != "PORT"}
    env[var] = str(port) if var == "PORT" else f"127.0.0.1:{port}"
    if var == "RINGCAST_LISTEN":
        env["PORT"] = str(free_port())  # RINGCAST_LISTEN wins over PORT
    env["RINGCAST_ADMIN_LISTEN"] = "off"  # the default 127.0.0.1:9090 may be taken by another server
    p = subprocess.Popen([ringcast_bin(), "--shards", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 10
        while True:
            assert p.poll() is None, p.stdout.read()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.time() < deadline, f"not listening on the port from ${var}"
                time.sleep(0.02)
        status, _, body = http_request("127.0.0.1", port, req("GET", "/healthz"))
        assert status == 200 and json.loads(body) == {"status": "ok"}
    finally:
        p.terminate()
        assert p.wait(10) == 0
        p.stdout.close()


# ---------------------------------------------------------------- GET / (dashboard)


def test_dashboard_page(echo_server):
    """GET / on the admin listener serves the live dashboard: HTML that
    subscribes to the firehose on /ws and polls /metrics, with no external
    resources."""
    admin = echo_server.admin_port
    status, hdrs, body = one(echo_server, req("GET", "/"), port=admin)
    assert status == 200
    assert hdrs["content-type"] == "text/html; charset=utf-8"
    page = body.decode()
    assert page.startswith("<!doctype html>")
    assert '"/ws"' in page and "subscribe_all" in page and 'fetch("/metrics"' in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere
    assert "innerHTML" not in page  # published data is only ever set as text
    status, hdrs, body = one(echo_server, req("POST", "/", ["Content-Length: 0"]), port=admin)
    assert_json_error(status, hdrs, body, 405)
    assert hdrs["allow"] == "GET"
