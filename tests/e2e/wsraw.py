"""A raw RFC 6455 client for tests that must send what polite clients never do:
bad masks, reserved bits, split frames, invalid UTF-8, hostile handshakes.

Everything is explicit bytes over a blocking socket with timeouts, so a test
states exactly what goes on the wire and what must come back.
"""
import base64
import os
import socket
import struct
import time

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None, length=None):
    """Builds one client frame. `rsv` is the 3-bit RSV field (4 = RSV1),
    `length` overrides the encoded length (to lie about it)."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if len(payload) < 4096 else _mask_fast(payload, key)
    return head + key + masked


def _mask_fast(payload, key):
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


class Closed(Exception):
    """The TCP connection ended (EOF or reset) while reading."""


class RawWS:
    def __init__(self, host, port, path="/echo", headers=None, timeout=5.0, handshake=True):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.status = None
        self.response_headers = {}
        if handshake:
            self.handshake(host, port, path, headers)

    # ---- HTTP ----
    def handshake(self, host, port, path, headers=None):
        key = base64.b64encode(os.urandom(16)).decode()
        h = {
            "Host": f"{host}:{port}",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        }
        if headers:
            h.update(headers)
        req = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items() if v is not None) + "\r\n"
        self.sock.sendall(req.encode())
        status, hdrs, _ = self.read_http_head()
        self.status = status
        self.response_headers = hdrs
        return status

    def read_http_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hdrs = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        return status, hdrs, head

    # ---- frames ----
    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(frame(opcode, payload, **kw))

    def _fill(self):
        try:
            chunk = self.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            raise Closed("reset")
        except socket.timeout:
            raise TimeoutError("no data from server")
        if not chunk:
            raise Closed("eof")
        self.buf += chunk

    def _need(self, n):
        while len(self.buf) < n:
            self._fill()

    def recv_frame(self):
        """Returns (fin, rsv, opcode, payload). Server frames must be unmasked."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert not (b1 & 0x80), "server frame is masked"
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        self._need(off + n)
        payload = self.buf[off : off + n]
        self.buf = self.buf[off + n :]
        return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload

    def recv_message(self):
        """Returns (opcode, payload) of the next data message, answering nothing;
        control frames other than close are skipped."""
        parts, first = [], None
        while True:
            fin, _, op, payload = self.recv_frame()
            if op in (OP_PING, OP_PONG):
                continue
            if op == OP_CLOSE:
                raise AssertionError(f"close frame instead of data: {payload!r}")
            if first is None:
                first = op
            parts.append(payload)
            if fin:
                return first, b"".join(parts)

    def expect_close(self, codes, timeout=5.0):
        """Reads until a close frame; asserts its code is in `codes` (None = no
        code), replies with a close, and asserts the server then ends TCP.
        Data frames before the close are returned."""
        if isinstance(codes, int) or codes is None:
            codes = [codes]
        self.sock.settimeout(timeout)
        before = []
        while True:
            fin, rsv, op, payload = self.recv_frame()
            if op == OP_CLOSE:
                break
            before.append((op, payload))
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        assert code in codes, f"close code {code}, expected one of {codes}; reason {payload[2:]!r}"
        try:
            self.send_frame(OP_CLOSE, close_payload(code if code and code not in (1005, 1006) else 1000))
        except OSError:
            pass
        self.expect_eof(timeout)
        return code, payload[2:], before

    def expect_eof(self, timeout=5.0):
        deadline = time.time() + timeout
        self.sock.settimeout(timeout)
        while time.time() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return
            except socket.timeout:
                break
            if not chunk:
                return
        raise AssertionError("server did not close the TCP connection")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def http_request(host, port, raw, timeout=5.0, source=None):
    """Sends raw request bytes, returns (status, headers, body) of the
    response (body read by Content-Length). `source` binds the client
    socket to that local address first."""
    s = socket.create_connection((host, port), timeout=timeout, source_address=(source, 0) if source else None)
    try:
        s.sendall(raw if isinstance(raw, bytes) else raw.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise Closed("eof before response head")
            buf += chunk
        head, body = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hdrs = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        while len(body) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, hdrs, body[:n]
    finally:
        s.close()
