"""wss:// and https:// on --tls-listen (issue 6), end to end.

The certificates come from tlsutil.py (a throwaway root CA, an intermediate,
leaves for localhost/127.0.0.1 made with the openssl CLI); every client
trusts the test root only, so a server that does not send its chain file's
intermediate fails verification.

  * Python websockets over wss:// subscribes and receives broadcasts
    published over HTTPS on the TLS port and over HTTP on the plain one,
    with and without permessage-deflate (a raw TLS subscriber sees RSV1 on
    the wire exactly where a plain-TCP subscriber does; /metrics counts the
    compressed deliveries), messages of 90 B to 200 KB (up to 13 TLS
    records), client-to-server compression (/echo up to 1 MiB), TLS 1.3
    and forced 1.2, RSA and ECDSA certificates; the client port's HTTP
    endpoints over https:// (/readyz, /metrics and the dashboard are on the
    plain admin listener); a bad --tls-* configuration exits 2 with a message;
  * `openssl s_client`: TLS 1.3, ALPN http/1.1, ChaCha20-Poly1305 preferred,
    verification OK with the chain, -tls1_2 works, -tls1/-tls1_1 refused
    (the same client command is first shown to work against an `openssl
    s_server -tls1_1`, so the refusal is the server's);
  * headless Chromium (trusting the test intermediate through
    --ignore-certificate-errors-spki-list) loads https://localhost:P/healthz and
    receives a broadcast over wss://localhost:P/ws; with a leaf-only chain
    it must not connect;
  * bad input costs only that connection: plain HTTP on the TLS port (400 +
    the JSON body, then close), garbage, aborted and stalled handshakes
    (--tls-handshake-timeout-ms), clients refusing an expired or wrong-host
    certificate; after each a normal wss client still works, the metrics
    moved, and the server log has no ERROR (conftest);
  * SIGHUP swaps certificate and key for new handshakes while old
    connections stay; bad files on reload keep the old certificate (WARN);
    100 reloads in a row keep the server up; SIGTERM closes wss:// clients
    with 1001; every server started here must exit 0 (clean_exit);
  * 1,000 concurrent TLS clients receive one broadcast.

wss:// clients are websockets' asyncio implementation (see _Loop for why
not the sync one); raw TLS clients are wsraw.RawWS on an SSLSocket.
"""
import asyncio
import http.client
import json
import os
import random
import re
import resource
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest
from websockets.asyncio.client import connect as aconnect
from websockets.sync.client import connect

from clients import pmdtools
from clients.pmdtools import PMD_RESPONSE, Chromium, chromium_binary, deflate_payload, inflate_payload, spread
from conftest import free_port, ringcast_bin
from tlsutil import pki  # noqa: F401  (session fixture: the throwaway PKI)
from wsraw import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, RawWS, http_request

pytestmark = pytest.mark.timeout(180)

SHARDS = ("--shards", "2")
RSV1 = 4
PLAIN_HTTP_BODY = b'{"error":"this port speaks TLS: use https:// or wss://","status":400}'
CD = "ringcast_compressed_deliveries_total"
HS = "ringcast_tls_handshakes_total"
HS_FAIL = "ringcast_tls_handshake_failures_total"
HS_TIMEOUT = "ringcast_tls_handshake_timeouts_total"
PLAIN_HTTP = "ringcast_tls_plain_http_total"
TLS_CONNS = "ringcast_tls_connections"


# ---------------------------------------------------------------- server and metrics


STARTED = []


@pytest.fixture(autouse=True)
def clean_exit(start_server):
    """Every server a test started must exit 0 on SIGTERM (a crash in
    teardown would otherwise go unseen: conftest only reads the log)."""
    yield
    while STARTED:
        s = STARTED.pop()
        if s.proc.poll() is None:
            code = s.stop()
        else:
            code = s.proc.returncode
        assert code == 0, f"ringcast exited with {code}: {s.logs()[-2000:]}"


def start_tls(start_server, chain, key, *extra):
    """ringcast with a plain listener (s.port) and --tls-listen (s.tls_port)."""
    tls_port = free_port()
    s = start_server("--tls-listen", f"127.0.0.1:{tls_port}", "--tls-cert", str(chain), "--tls-key", str(key),
                     *SHARDS, *extra)
    STARTED.append(s)
    s.tls_port = tls_port
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection((s.host, tls_port), timeout=0.5).close()
            break
        except OSError:
            if time.time() > deadline:
                raise AssertionError(f"TLS port {tls_port} never accepted: {s.logs()}")
            time.sleep(0.02)
    wait_metric(s, TLS_CONNS, lambda v: v == 0, what="the probe connection gone")
    return s


def metrics(s):
    """/metrics read over the (plain) admin listener, so reading never moves a TLS counter."""
    return pmdtools.metrics(s)


def admin_get(s, path):
    """GET path on the admin listener (plain HTTP): (status, headers dict, body bytes)."""
    c = http.client.HTTPConnection(s.host, s.admin_port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def wait_metric(s, name, pred, timeout=10.0, what=None):
    deadline = time.time() + timeout
    while True:
        m = metrics(s)
        assert name in m, f"{name} missing from /metrics"
        if pred(m[name]):
            return m[name]
        if time.time() > deadline:
            raise AssertionError(f"{what or name}: {name} = {m[name]}")
        time.sleep(0.05)


# ---------------------------------------------------------------- HTTPS


def https(s, method, path, body=None, ctx=None, host="localhost", headers=None, conn=None):
    """One request over https:// to the TLS port; returns (status, headers dict, body bytes)."""
    c = conn or http.client.HTTPSConnection(host, s.tls_port, context=ctx, timeout=10)
    if isinstance(body, str):
        body = body.encode()  # (http.client would send a str as Latin-1)
    try:
        headers = dict(headers or {})
        if body and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"  # publish and /ws/test need it
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        if conn is None:
            c.close()


def publish_https(s, ctx, topic, text):
    status, _, body = https(s, "POST", "/api/v1/publish", '{"topic":%s,"data":%s}' % (json.dumps(topic), text), ctx=ctx)
    assert (status, json.loads(body)) == (200, {"published": 1}), (status, body)


def publish_plain(s, topic, text):
    pmdtools.publish(s, topic, text)


def msg_text(topic, seq, size):
    """JSON text of exactly `size` UTF-8 bytes (size >= 60) naming topic and seq."""
    d = {"topic": topic, "seq": seq, "venue": "Zürich", "pad": ""}
    base = len(json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode())
    assert size >= base, size
    rnd = random.Random(seq * 7919 + size)
    d["pad"] = "".join(rnd.choice("0123456789abcdef,.:") for _ in range(size - base))
    t = json.dumps(d, ensure_ascii=False, separators=(",", ":"))
    assert len(t.encode()) == size
    return t


# ---------------------------------------------------------------- clients


class _Loop:
    """One asyncio event loop on a background thread for the wss:// clients.

    Python websockets' *sync* client is not used over TLS: it reads the
    socket on a thread of its own while the caller writes, so an SSLSocket
    is driven by two threads at once (OpenSSL does not allow that). Seen
    here: once in a few hundred connections the upgrade request was never
    written after the client read the server's TLS 1.3 NewSessionTicket (a
    TCP proxy in between saw no byte after the client's Finished), and the
    handshake timed out. The asyncio client runs TLS through a memory BIO
    on one thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="wss-clients", daemon=True)
        self.thread.start()

    def run(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


_LOOP = None


def loop():
    global _LOOP
    if _LOOP is None:
        _LOOP = _Loop()
    return _LOOP


class Wss:
    """A websockets (asyncio) client on wss:// with blocking methods."""

    def __init__(self, url, ctx, compression="deflate", **kw):
        kw = {"max_size": None, "proxy": None, "open_timeout": 10, "close_timeout": 5, "ping_interval": None, **kw}
        async def open_():
            return await aconnect(url, ssl=ctx, compression=compression, **kw)

        self.ws = loop().run(open_())
        self.tls = self.ws.transport.get_extra_info("ssl_object")
        assert isinstance(self.tls, ssl.SSLObject)

    @property
    def protocol(self):
        return self.ws.protocol

    @property
    def response(self):
        return self.ws.response

    @property
    def close_code(self):
        return self.ws.close_code

    def send(self, m):
        loop().run(self.ws.send(m))

    def recv(self, timeout=10):
        return loop().run(asyncio.wait_for(self.ws.recv(), timeout), timeout + 10)

    def close(self):
        loop().run(self.ws.close())


class WssSub:
    """Python websockets on wss://HOST:tls_port/ws, subscribed to topics."""

    def __init__(self, s, ctx, topics, compression=None, host="localhost", path="/ws"):
        self.ws = Wss(f"wss://{host}:{s.tls_port}{path}", ctx, compression=compression)
        self.tls = self.ws.tls
        if topics is not None:
            self.topics = spread(topics)
            self.ws.send(json.dumps({"type": "subscribe", "markets": self.topics}))
            ack = json.loads(self.ws.recv(timeout=10))
            assert ack["type"] == "subscribed" and sorted(ack["markets"]) == sorted(self.topics), ack

    @property
    def compressed(self):
        return bool(self.ws.protocol.extensions)

    def expect(self, texts, timeout=15):
        for t in texts:
            got = self.ws.recv(timeout=timeout)
            assert isinstance(got, str), type(got)
            assert len(got) == len(t) and got == t, (len(got), len(t), got[:80], t[:80])

    def close(self):
        self.ws.close()
        assert self.ws.close_code == 1000, self.ws.close_code


class PlainSub(WssSub):
    """The same over ws:// on the plain port."""

    def __init__(self, s, topics):
        self.ws = connect(f"ws://127.0.0.1:{s.port}/ws", compression=None, max_size=None, proxy=None,
                          open_timeout=10, close_timeout=5, ping_interval=None, legacy=True)
        self.topics = spread(topics)
        self.ws.send(json.dumps({"type": "subscribe", "markets": self.topics}))
        ack = json.loads(self.ws.recv(timeout=10))
        assert ack["type"] == "subscribed", ack


class RawTlsSub:
    """A raw /ws subscriber over TLS (wsraw.RawWS on an SSLSocket), or over
    the plain port with ctx=None: sees the RSV1 bit of every frame, so
    compression is checked on the wire."""

    def __init__(self, s, ctx, topics, offer="permessage-deflate"):
        if ctx is None:
            self.ws = RawWS(s.host, s.port, handshake=False, timeout=10)
            host, port = "127.0.0.1", s.port
        else:
            self.ws = RawWS(s.host, s.tls_port, handshake=False, timeout=10)
            self.ws.sock = ctx.wrap_socket(self.ws.sock, server_hostname="localhost")
            host, port = "localhost", s.tls_port
        hdrs = {"Sec-WebSocket-Extensions": offer} if offer else None
        assert self.ws.handshake(host, port, "/ws", hdrs) == 101
        if offer:
            assert self.ws.response_headers.get("sec-websocket-extensions") == PMD_RESPONSE, self.ws.response_headers
        else:
            assert "sec-websocket-extensions" not in self.ws.response_headers
        self.offer = offer
        topics = spread(topics)
        self.ws.send_frame(OP_TEXT, json.dumps({"type": "subscribe", "markets": topics}))
        _, rsv, op, ack = self.next_frame()
        assert (rsv, op, json.loads(ack)["type"]) == (0, OP_TEXT, "subscribed"), ack
        self.rsv1 = []

    def next_frame(self):
        while True:
            fin, rsv, op, payload = self.ws.recv_frame()
            if op in (OP_PING, OP_PONG):
                continue
            assert op != OP_CLOSE, payload
            assert fin and rsv in (0, RSV1), (fin, rsv)
            return fin, rsv, op, payload

    def expect(self, texts):
        for t in texts:
            _, rsv, op, payload = self.next_frame()
            assert op == OP_TEXT
            data = inflate_payload(payload) if rsv & RSV1 else payload
            assert data == t.encode()
            self.rsv1.append(bool(rsv & RSV1))

    def close(self):
        self.ws.send_frame(OP_CLOSE, b"\x03\xe8")
        self.ws.sock.settimeout(5)
        while True:
            _, _, op, _ = self.ws.recv_frame()
            if op == OP_CLOSE:
                break
        self.ws.close()


def assert_normal_client_works(s, ctx, topic="tls:after", leaf=None):
    """A fresh, verifying wss client subscribes and receives a broadcast
    published over HTTPS; the plain ports still serve too."""
    c = WssSub(s, ctx, [topic])
    try:
        if leaf is not None:
            assert c.tls.getpeercert(binary_form=True) == leaf.der()
        t = msg_text(topic, 1, 120)
        publish_https(s, ctx, topic, t)
        c.expect([t])
    finally:
        c.close()
    status, _, body = http_request(s.host, s.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, json.loads(body)) == (200, {"status": "ok"})  # the plain client port answers
    assert "ringcast_connections" in metrics(s)  # and so does the admin listener


def read_until_eof(sock, timeout):
    """Reads until the peer closes; returns (bytes read, seconds taken).
    Raises AssertionError if the connection is still open after timeout."""
    t0 = time.time()
    data = b""
    sock.settimeout(0.2)
    while time.time() - t0 < timeout:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return data, time.time() - t0
        if not chunk:
            return data, time.time() - t0
        data += chunk
    raise AssertionError(f"connection still open after {timeout}s (read {data[:60]!r})")


def client_hello(host="localhost"):
    """The bytes of a real TLS 1.3 ClientHello (OpenSSL, through a MemoryBIO),
    and the SSLObject that made it."""
    ctx = ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=host)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = out.read()
    assert hello[0] == 0x16 and len(hello) > 100, hello[:8]
    return hello, obj


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def ctx(pki):  # noqa: F811
    return pki.client_context()


@pytest.fixture
def server(start_server, pki):  # noqa: F811
    return start_tls(start_server, pki.rsa.chain, pki.rsa.key)


# ================================================================ start-up


@pytest.mark.parametrize("case", ["no-cert-no-key", "no-key", "missing-cert", "missing-key", "key-mismatch",
                                  "cert-is-a-key", "garbage-cert", "tls-files-without-listen"])
def test_bad_tls_configuration_exits_2(pki, tmp_path, case):  # noqa: F811
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    listen = ["--tls-listen", f"127.0.0.1:{free_port()}"]
    args, says = {
        "no-cert-no-key": (listen, "--tls-cert"),
        "no-key": (listen + ["--tls-cert", str(pki.rsa.chain)], "--tls-key"),
        "missing-cert": (listen + ["--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(pki.rsa.key)], "nope.pem"),
        "missing-key": (listen + ["--tls-cert", str(pki.rsa.chain), "--tls-key", str(tmp_path / "nope.key")], "nope.key"),
        "key-mismatch": (listen + ["--tls-cert", str(pki.rsa.chain), "--tls-key", str(pki.rsa_b.key)], "match"),
        "cert-is-a-key": (listen + ["--tls-cert", str(pki.rsa.key), "--tls-key", str(pki.rsa.key)], "certificate"),
        "garbage-cert": (listen + ["--tls-cert", str(bad), "--tls-key", str(pki.rsa.key)], "bad.pem"),
        "tls-files-without-listen": (["--tls-cert", str(pki.rsa.chain), "--tls-key", str(pki.rsa.key)], "--tls-listen"),
    }[case]
    r = subprocess.run([ringcast_bin(), "--listen", f"127.0.0.1:{free_port()}", *args], capture_output=True, text=True,
                       timeout=20)
    out = r.stdout + r.stderr
    assert r.returncode == 2, (r.returncode, out)
    assert says in out, out
    assert "listening on" not in out, out


# ================================================================ wss:// broadcast


def warm_up(s, ctx, topic, clients, n_compressed):
    """Compressed deliveries start once the topic's owner shard has learnt
    (through its inbox, just after the ack) that a shard has compressing
    subscribers: publish 1 KB messages until one reaches all n_compressed
    compressing clients compressed. Every client reads every message."""
    for i in range(100):
        before = metrics(s)[CD]
        t = msg_text(topic, 10_000 + i, 1000)
        publish_https(s, ctx, topic, t)
        for c in clients:
            c.expect([t])
        if metrics(s)[CD] - before == n_compressed:
            return
    raise AssertionError("compressed deliveries never reached every compressing subscriber")


SIZES = [90, 200, 255, 256, 1000, 16_000, 16_384, 40_000, 200_000]


@pytest.mark.parametrize("compression", [None, "deflate"], ids=["no-compression", "permessage-deflate"])
def test_wss_broadcast_published_over_https_and_plain_http(server, ctx, pki, compression):  # noqa: F811
    s = server
    topic = f"tls:bc:{compression}"
    wss = WssSub(s, ctx, [topic], compression=compression)
    # the connection really is TLS 1.3 with the chain's leaf, and the extension is what was asked for
    assert wss.tls.version() == "TLSv1.3"
    assert wss.tls.getpeercert(binary_form=True) == pki.rsa.der()
    assert wss.tls.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256", wss.tls.cipher()
    if compression:
        assert wss.ws.response.headers.get_all("Sec-WebSocket-Extensions") == [PMD_RESPONSE]
        (ext,) = wss.ws.protocol.extensions
        assert ext.name == "permessage-deflate"
    else:
        assert wss.ws.response.headers.get_all("Sec-WebSocket-Extensions") == []
        assert wss.ws.protocol.extensions == []
    raw = RawTlsSub(s, ctx, [topic], offer="permessage-deflate" if compression else None)
    plain = PlainSub(s, [topic])
    raw_tcp = RawTlsSub(s, None, [topic])  # compressed, over plain TCP: the reference
    clients = [wss, raw, plain, raw_tcp]
    n_comp = 3 if compression else 1
    warm_up(s, ctx, topic, clients, n_comp)
    m0 = metrics(s)
    msgs = []
    for i, size in enumerate(SIZES):
        t = msg_text(topic, i, size)
        if i % 2 == 0:
            publish_https(s, ctx, topic, t)  # POST over TLS
        else:
            publish_plain(s, topic, t)  # POST over the plain port
        msgs.append(t)
    for c in clients:
        c.expect(msgs)
    m1 = metrics(s)
    n_big = sum(len(t.encode()) >= 256 for t in msgs)
    assert m1["ringcast_deliveries_total"] - m0["ringcast_deliveries_total"] == len(msgs) * len(clients)
    # on the wire (inside TLS): RSV1 exactly where the compressed plain-TCP subscriber has it, and at least
    # on every message from 256 B up to the 32 KiB window
    tcp_bits = raw_tcp.rsv1[-len(msgs):]
    assert tcp_bits[:7] == [len(t.encode()) >= 256 for t in msgs][:7], tcp_bits
    assert raw.rsv1[-len(msgs):] == (tcp_bits if compression else [False] * len(msgs)), (raw.rsv1[-len(msgs):], tcp_bits)
    assert m1[CD] - m0[CD] == sum(tcp_bits) * n_comp, (m0[CD], m1[CD], tcp_bits)
    assert sum(tcp_bits) >= n_big - 2
    # a broadcast to every /ws connection, published over HTTPS
    t = msg_text("*", 99, 1200)
    status, _, body = https(s, "POST", "/api/v1/publish", '{"broadcast":true,"data":%s}' % t, ctx=ctx)
    assert (status, json.loads(body)) == (200, {"published": 1})
    for c in clients:
        c.expect([t])
    # POST /ws/test over HTTPS reaches every /ws client too
    status, _, body = https(s, "POST", "/ws/test", json.dumps({"message": "over tls"}), ctx=ctx)
    assert status == 200 and json.loads(body)["type"] == "test_response", body
    for c in (wss, plain):
        got = json.loads(c.ws.recv(timeout=10))
        assert (got["type"], got["message"]) == ("test", "over tls"), got
    for c in clients:
        c.close()
    assert wait_metric(s, TLS_CONNS, lambda v: v == 0, what="TLS connections after closing") == 0


def test_compressed_client_to_server_over_tls(start_server, pki, ctx):  # noqa: F811
    """permessage-deflate in the other direction: websockets compresses what
    it sends; /echo over wss:// returns 0 B .. 1 MiB intact (both ways
    compressed), and a raw TLS client's compressed subscribe is understood."""
    s = start_tls(start_server, pki.rsa.chain, pki.rsa.key, "--echo")
    ws = Wss(f"wss://localhost:{s.tls_port}/echo", ctx)
    assert ws.protocol.extensions
    rnd = random.Random(5)
    for n in [0, 1, 255, 256, 16_384, 16_385, 100_000, 1 << 20]:
        msg = "".join(rnd.choice('{"px":1.25,"qty":3},') for _ in range(n))
        ws.send(msg)
        assert ws.recv(timeout=30) == msg
        b = rnd.randbytes(n)
        ws.send(b)
        assert ws.recv(timeout=30) == b
    ws.close()
    assert ws.close_code == 1000
    raw = RawWS(s.host, s.tls_port, handshake=False, timeout=10)
    raw.sock = ctx.wrap_socket(raw.sock, server_hostname="localhost")
    assert raw.handshake("localhost", s.tls_port, "/ws", {"Sec-WebSocket-Extensions": "permessage-deflate"}) == 101
    topics = [f"tls:z:{i}" for i in range(50)]
    raw.send_frame(OP_TEXT, deflate_payload(json.dumps({"type": "subscribe", "markets": topics}).encode()), rsv=RSV1)
    _, rsv, op, ack = raw.recv_frame()
    assert op == OP_TEXT and sorted(json.loads(inflate_payload(ack) if rsv & RSV1 else ack)["markets"]) == sorted(topics)
    raw.close()


@pytest.mark.parametrize("leaf_name", ["rsa", "ecdsa"])
@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_wss_versions_and_key_types(start_server, pki, leaf_name, version):  # noqa: F811
    leaf = getattr(pki, leaf_name)
    s = start_tls(start_server, leaf.chain, leaf.key)
    ctx = pki.client_context()
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version.replace("TLSv1.", "TLSv1_"))
    c = WssSub(s, ctx, ["tls:ver"], compression="deflate")
    assert c.tls.version() == version
    assert c.tls.getpeercert(binary_form=True) == leaf.der()
    assert "CHACHA20" in c.tls.cipher()[0], c.tls.cipher()  # the server's first choice
    if version == "TLSv1.2":
        assert c.tls.cipher()[0] == ("ECDHE-ECDSA-CHACHA20-POLY1305" if leaf_name == "ecdsa"
                                     else "ECDHE-RSA-CHACHA20-POLY1305"), c.tls.cipher()
    texts = [msg_text("tls:ver", i, n) for i, n in enumerate([80, 3000, 70_000])]
    for t in texts:
        publish_https(s, ctx, "tls:ver", t)
    c.expect(texts)
    c.close()


@pytest.mark.parametrize("version,cipher,offloaded", [
    ("TLSv1.3", None, True),                          # TLS_CHACHA20_POLY1305_SHA256
    ("TLSv1.2", "ECDHE-RSA-CHACHA20-POLY1305", True),
    ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", False),  # AES-GCM stays on wolfSSL
])
def test_record_layer_hand_off(start_server, pki, version, cipher, offloaded):  # noqa: F811
    """After the handshake a ChaCha20-Poly1305 session leaves wolfSSL (its
    ~56 KiB object is freed) for ringcast's own record layer; AES-GCM
    sessions stay. Either way big and small messages cross intact both ways
    and the close ends with close_notify."""
    s = start_tls(start_server, pki.rsa.chain, pki.rsa.key, "--echo")
    ctx = pki.client_context()
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version.replace("TLSv1.", "TLSv1_"))
    if cipher:
        ctx.set_ciphers(cipher)
    before = metrics(s)["ringcast_tls_offloads_total"]
    e = Wss(f"wss://localhost:{s.tls_port}/echo", ctx, compression=None)
    assert e.tls.version() == version
    for n in (0, 1, 125, 16_000, 16_384, 16_385, 70_000, 1 << 20):
        m = os.urandom(n)
        e.send(m)
        assert e.recv() == m, n
    c = WssSub(s, ctx, ["tls:handoff"], compression=None)
    texts = [msg_text("tls:handoff", i, n) for i, n in enumerate([80, 20_000, 300_000])]
    for t in texts:
        publish_plain(s, "tls:handoff", t)
    c.expect(texts)
    assert metrics(s)["ringcast_tls_offloads_total"] - before == (2 if offloaded else 0)
    e.close()
    assert e.close_code == 1000
    c.close()


def test_https_endpoints(start_server, pki, ctx):  # noqa: F811
    s = start_tls(start_server, pki.rsa.chain, pki.rsa.key, "--echo")
    status, hdrs, body = https(s, "GET", "/healthz", ctx=ctx)
    assert (status, hdrs["content-type"], json.loads(body)) == (200, "application/json", {"status": "ok"})
    status, _, body = https(s, "GET", "/nope", ctx=ctx)
    assert status == 404 and json.loads(body)["status"] == 404
    # /readyz, the dashboard and /metrics are served by the (plain) admin listener
    status, _, body = admin_get(s, "/readyz")
    assert (status, json.loads(body)) == (200, {"ready": True})
    status, _, body = admin_get(s, "/")
    assert status == 200 and b"<html" in body.lower()
    # keep-alive: several requests on one TLS connection, one handshake;
    # /metrics shows the counters of this very connection while it is open
    c = http.client.HTTPSConnection("127.0.0.1", s.tls_port, context=ctx, timeout=10)
    hs0 = metrics(s)[HS]
    for _ in range(5):
        assert https(s, "GET", "/healthz", conn=c)[0] == 200
    m = metrics(s)
    for name in (HS, HS_FAIL, HS_TIMEOUT, PLAIN_HTTP, TLS_CONNS):
        assert name in m, f"{name} missing from /metrics"
    assert m[TLS_CONNS] >= 1 and m[HS] >= 1, m
    assert m[HS] - hs0 == 1
    c.close()
    # echo over wss (--echo), several records each way
    ws = Wss(f"wss://127.0.0.1:{s.tls_port}/echo", ctx, compression=None)
    for n in (0, 125, 16_384, 300_000):
        b = os.urandom(n)
        ws.send(b)
        assert ws.recv(timeout=20) == b
    ws.close()


def test_alpn_and_sni_from_python(server, pki):  # noqa: F811
    s = server
    for offered, selected in [(["h2", "http/1.1"], "http/1.1"), (["http/1.1"], "http/1.1"), (["h2", "spdy/3"], None),
                              ([], None)]:
        ctx = pki.client_context()
        if offered:
            ctx.set_alpn_protocols(offered)
        for host in ("localhost", "127.0.0.1"):  # SNI "localhost" / no SNI
            with socket.create_connection((s.host, s.tls_port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname=host) as tls:
                    assert tls.selected_alpn_protocol() == selected, (offered, host)
                    tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    data, _ = read_until_eof(tls, 10)
                    assert data.startswith(b"HTTP/1.1 200 "), data[:100]
    # any SNI name is accepted (one certificate): verification then fails only on the client's hostname check
    ctx = pki.client_context()
    ctx.check_hostname = False
    with socket.create_connection((s.host, s.tls_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="some-other-name.example") as tls:
            assert tls.getpeercert(binary_form=True) == pki.rsa.der()


# ================================================================ openssl s_client


def s_client(port, *args):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30, text=True)
    return r.returncode, r.stdout + r.stderr


def test_openssl_s_client_tls13_alpn_verify(server, pki):  # noqa: F811
    s = server
    m0 = metrics(s)
    rc, out = s_client(s.tls_port, "-alpn", "http/1.1", "-servername", "localhost", "-CAfile", str(pki.ca),
                       "-verify_return_error", "-verify_hostname", "localhost")
    assert rc == 0, out
    assert "New, TLSv1.3, Cipher is TLS_CHACHA20_POLY1305_SHA256" in out, out  # server order: ChaCha20 first
    assert "ALPN protocol: http/1.1" in out, out
    assert "Verify return code: 0 (ok)" in out and "Verification: OK" in out, out
    # the chain file's intermediate is sent after the leaf
    chain = re.findall(r"^\s*(\d) s:(.*)$", out, re.M)
    assert [(d, "CN = ringcast test rsa" in n or "CN=ringcast test rsa" in n) for d, n in chain][:1] == [("0", True)], chain
    assert len(chain) == 2 and "intermediate CA" in chain[1][1], chain
    # TLS 1.2 forced
    rc, out = s_client(s.tls_port, "-tls1_2", "-alpn", "http/1.1", "-servername", "localhost", "-CAfile", str(pki.ca),
                       "-verify_return_error")
    assert rc == 0, out
    assert re.search(r"^\s*Protocol\s*: TLSv1\.2$", out, re.M), out
    assert "New, TLSv1.2, Cipher is ECDHE-RSA-CHACHA20-POLY1305" in out, out
    assert "ALPN protocol: http/1.1" in out and "Verify return code: 0 (ok)" in out, out
    # other protocols only: handshake succeeds without ALPN; no SNI / another SNI: same certificate
    for args in (["-alpn", "h2"], ["-noservername"], ["-servername", "whatever.example"]):
        rc, out = s_client(s.tls_port, *args, "-CAfile", str(pki.ca), "-verify_return_error")
        assert rc == 0 and "Verify return code: 0 (ok)" in out and "TLSv1.3" in out, (args, out)
        if args[0] == "-alpn":
            assert "No ALPN negotiated" in out, out
    assert metrics(s)[HS] - m0[HS] == 5


@pytest.fixture
def tls11_control(pki):  # noqa: F811
    """An `openssl s_server` that does accept TLS 1.0/1.1: the client command
    of test_old_versions_refused must work against it."""
    port = free_port()
    p = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(pki.rsa.cert),
                          "-key", str(pki.rsa.key), "-cert_chain", str(pki.inter), "-min_protocol", "TLSv1",
                          "-max_protocol", "TLSv1.1", "-cipher", "DEFAULT@SECLEVEL=0", "-www"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines = []
        while not lines or b"ACCEPT" not in lines[-1]:
            lines.append(p.stdout.readline())
            assert lines[-1], lines
        yield port
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("flag,name", [("-tls1", "TLSv1"), ("-tls1_1", "TLSv1.1")])
def test_old_versions_refused(server, pki, tls11_control, flag, name):  # noqa: F811
    s = server
    args = [flag, "-cipher", "DEFAULT@SECLEVEL=0", "-servername", "localhost", "-CAfile", str(pki.ca)]
    rc, out = s_client(tls11_control, *args)
    assert rc == 0 and re.search(rf"^\s*Protocol\s*: {re.escape(name)}$", out, re.M), out  # the client can
    m0 = metrics(s)
    rc, out = s_client(s.tls_port, *args)
    assert rc != 0, out
    assert "Cipher is (NONE)" in out and "alert protocol version" in out, out
    wait_metric(s, HS_FAIL, lambda v: v >= m0[HS_FAIL] + 1, what="handshake failure counted")
    assert_normal_client_works(s, pki.client_context())


# ================================================================ Chromium


@pytest.fixture(scope="module")
def browser(pki):  # noqa: F811
    """Headless Chromium that trusts certificate chains containing the test
    intermediate (its SPKI hash in --ignore-certificate-errors-spki-list:
    Debian's libnss3-tools, which would let us add the root to an NSS db
    with certutil, is not installed by ./dev.sh)."""
    assert chromium_binary(), "chromium is not installed (./dev.sh installs Debian's chromium)"
    spki = pki.intermediate_spki()
    wrapper = pki.dir / "chromium-with-test-ca"
    wrapper.write_text(f'#!/bin/sh\nexec {chromium_binary()} --ignore-certificate-errors-spki-list={spki} "$@"\n')
    wrapper.chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pmdtools, "chromium_binary", lambda: str(wrapper))
        b = Chromium()
    yield b
    b.close()


PAGE_JS = """
window.rc = {open: false, ext: null, msgs: [], errors: 0, closed: null};
window.sock = new WebSocket(%s);
sock.onopen = () => { rc.open = true; rc.ext = sock.extensions;
                      sock.send(JSON.stringify({type: "subscribe", markets: %s})); };
sock.onmessage = (ev) => rc.msgs.push(ev.data);
sock.onerror = () => { rc.errors++; };
sock.onclose = (ev) => { rc.closed = {code: ev.code, wasClean: ev.wasClean}; };
true
"""


def test_chromium_wss(start_server, pki, browser, ctx):  # noqa: F811
    s = start_tls(start_server, pki.rsa.chain, pki.rsa.key)
    # the page itself comes over https:// from ringcast's TLS port (GET
    # /healthz: the dashboard is on the admin listener), so the WebSocket
    # below is same-origin from a secure context
    url = f"https://localhost:{s.tls_port}/healthz"
    page = browser.open_page(url)
    try:
        page.wait(f"location.href === {json.dumps(url)} && document.readyState === 'complete'",
                  what=f"{url} loaded")
        assert '"status":"ok"' in page.evaluate("document.body.innerText")
        topics = spread(["tls:chromium"])
        page.evaluate(PAGE_JS % (json.dumps(f"wss://localhost:{s.tls_port}/ws"), json.dumps(topics)))
        page.wait("rc.msgs.length >= 1 || rc.closed", what="subscribe ack")
        st = page.evaluate("rc")
        assert st["open"] and st["errors"] == 0 and st["closed"] is None, st
        assert st["ext"] == PMD_RESPONSE, st  # Chromium offers permessage-deflate; over TLS as over TCP
        ack = json.loads(st["msgs"][0])
        assert ack["type"] == "subscribed" and sorted(ack["markets"]) == sorted(topics), ack
        texts = [msg_text("tls:chromium", i, n) for i, n in enumerate([90, 1500, 40_000])]
        for t in texts:
            publish_https(s, ctx, "tls:chromium", t)
        page.wait(f"rc.msgs.length >= {1 + len(texts)}", what="broadcasts")
        assert page.evaluate("rc.msgs.slice(1)") == texts
        page.evaluate("sock.close(1000, 'done'); true")
        closed = page.wait("rc.closed", what="close")
        assert closed == {"code": 1000, "wasClean": True}, closed
    finally:
        page.close()


def test_chromium_refuses_leaf_without_chain(start_server, pki, browser):  # noqa: F811
    """Control for the test above: the SPKI allowance is the intermediate's,
    so a server whose --tls-cert lacks the intermediate is not trusted."""
    s = start_tls(start_server, pki.rsa.cert, pki.rsa.key)
    good = start_tls(start_server, pki.rsa.chain, pki.rsa.key)
    page = browser.open_page("about:blank")
    try:
        page.evaluate(PAGE_JS % (json.dumps(f"wss://localhost:{s.tls_port}/ws"), "[]"))
        closed = page.wait("rc.closed", what="close of the untrusted connection")
        assert closed["code"] == 1006 and page.evaluate("rc.open") is False, closed
        page.evaluate(PAGE_JS % (json.dumps(f"wss://localhost:{good.tls_port}/ws"), '["x"]'))
        page.wait("rc.msgs.length >= 1", what="ack from the server with the chain")
    finally:
        page.close()


# ================================================================ bad input


@pytest.mark.parametrize("request_bytes", [
    b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b'POST /api/v1/publish HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 31\r\n\r\n'
    b'{"topic":"tls:after","data":1}\n',
], ids=["healthz", "ws-upgrade", "publish"])
def test_plain_http_on_tls_port(server, ctx, pki, request_bytes):  # noqa: F811
    s = server
    sub = WssSub(s, ctx, ["tls:after"])
    m0 = metrics(s)
    with socket.create_connection((s.host, s.tls_port), timeout=10) as c:
        c.sendall(request_bytes)
        data, _ = read_until_eof(c, 5)  # answered, then closed
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), data
    hdrs = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in head.decode().split("\r\n")[1:])}
    assert hdrs.get("content-type", "").startswith("application/json"), hdrs
    assert int(hdrs["content-length"]) == len(body), (hdrs, body)
    assert body == PLAIN_HTTP_BODY
    assert json.loads(body) == {"error": "this port speaks TLS: use https:// or wss://", "status": 400}
    m1 = metrics(s)
    assert m1[PLAIN_HTTP] - m0[PLAIN_HTTP] == 1
    assert m1[HS] == m0[HS]
    assert m1["ringcast_messages_published_total"] == m0["ringcast_messages_published_total"]  # not executed
    # the subscribed client saw nothing, and still gets the next broadcast
    t = msg_text("tls:after", 2, 100)
    publish_https(s, ctx, "tls:after", t)
    sub.expect([t])
    sub.close()
    assert_normal_client_works(s, ctx)


def garbage_inputs():
    rnd = random.Random(42)
    junk = bytes([0x80 | rnd.randrange(128)]) + rnd.randbytes(999)
    return {
        "random-1000": junk,
        "random-64k": bytes([0xFF]) + rnd.randbytes(65535),
        "zeros": bytes(512),
        "handshake-record-garbage-body": b"\x16\x03\x01\x00\x40" + rnd.randbytes(64),
        "handshake-record-oversized": b"\x16\x03\x01\xff\xff" + rnd.randbytes(300),
        "alert-record-first": b"\x15\x03\x03\x00\x02\x02\x28",
        "appdata-before-handshake": b"\x17\x03\x03\x00\x20" + rnd.randbytes(32),
        "sslv2-hello": bytes.fromhex("802e0103010015000000100100800300800700c0060040020080040080") + rnd.randbytes(16),
    }


GARBAGE = garbage_inputs()


@pytest.mark.parametrize("name", list(GARBAGE))
def test_garbage_closes_only_that_connection(server, ctx, name):
    s = server
    sub = WssSub(s, ctx, ["tls:after"])
    m0 = metrics(s)
    with socket.create_connection((s.host, s.tls_port), timeout=10) as c:
        try:
            c.sendall(GARBAGE[name])
        except (ConnectionResetError, BrokenPipeError):
            pass
        # closed by the server at once, not by the 10 s handshake timeout
        _, took = read_until_eof(c, 5)
    assert took < 5
    assert s.proc.poll() is None
    wait_metric(s, HS_FAIL, lambda v: v >= m0[HS_FAIL] + 1, what="garbage counted as a failed handshake")
    t = msg_text("tls:after", 3, 500)
    publish_https(s, ctx, "tls:after", t)
    sub.expect([t])
    sub.close()
    assert_normal_client_works(s, ctx)
    wait_metric(s, TLS_CONNS, lambda v: v == 0, what="TLS connections after the garbage")


@pytest.mark.parametrize("how", ["close", "reset"])
def test_aborted_handshake(server, ctx, how):
    s = server
    hello, _ = client_hello()
    m0 = metrics(s)
    for cut in (1, 5, 6, len(hello) // 2, len(hello) - 1):
        c = socket.create_connection((s.host, s.tls_port), timeout=10)
        c.sendall(hello[:cut])
        time.sleep(0.05)
        if how == "reset":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
    wait_metric(s, TLS_CONNS, lambda v: v == 0, what="TLS connections after aborted handshakes")
    m1 = metrics(s)
    assert m1[HS] == m0[HS] and m1[HS_TIMEOUT] == m0[HS_TIMEOUT]
    assert_normal_client_works(s, ctx)


def test_stalled_handshakes_time_out(start_server, pki, ctx):  # noqa: F811
    s = start_tls(start_server, pki.rsa.chain, pki.rsa.key, "--tls-handshake-timeout-ms", "500")
    # an established client idle for longer than the handshake timeout is not affected
    idle = WssSub(s, ctx, ["tls:idle"])
    m0 = metrics(s)
    hello, _ = client_hello()
    stallers = {}
    silent = socket.create_connection((s.host, s.tls_port), timeout=10)  # connects, says nothing
    stallers["silent"] = (silent, time.time())
    half = socket.create_connection((s.host, s.tls_port), timeout=10)  # half a ClientHello
    half.sendall(hello[: len(hello) // 2])
    stallers["half-hello"] = (half, time.time())
    full = socket.create_connection((s.host, s.tls_port), timeout=10)  # whole ClientHello, then never Finished
    t_full = time.time()
    full.sendall(hello)
    flight = b""
    full.settimeout(5)
    while len(flight) < 5 or len(flight) < 5 + int.from_bytes(flight[3:5], "big"):
        chunk = full.recv(65536)
        assert chunk, "server closed instead of answering the ClientHello"
        flight += chunk
    assert flight[0] == 0x16, flight[:5]  # ServerHello: the server did answer
    stallers["after-server-flight"] = (full, t_full)
    for name, (c, t0) in stallers.items():
        data, _ = read_until_eof(c, 5)
        took = time.time() - t0
        assert 0.45 <= took <= 3.0, (name, took)
        c.close()
    wait_metric(s, HS_TIMEOUT, lambda v: v - m0[HS_TIMEOUT] == 3, what="3 handshake timeouts")
    wait_metric(s, TLS_CONNS, lambda v: v == 1, what="only the idle client left")
    # the idle, established client is still there
    time.sleep(0.6)
    t = msg_text("tls:idle", 1, 300)
    publish_https(s, ctx, "tls:idle", t)
    idle.expect([t])
    idle.close()
    assert_normal_client_works(s, ctx)


@pytest.mark.parametrize("leaf_name,reason", [("expired", "certificate has expired"),
                                              ("wronghost", "Hostname mismatch")])
def test_client_refuses_bad_certificate(start_server, pki, ctx, leaf_name, reason):  # noqa: F811
    leaf = getattr(pki, leaf_name)
    s = start_tls(start_server, leaf.chain, leaf.key)
    m0 = metrics(s)
    # a subscriber that does not verify (it pins the certificate instead) keeps being served throughout
    pinned = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    pinned.check_hostname = False
    pinned.verify_mode = ssl.CERT_NONE
    keeper = WssSub(s, pinned, ["tls:keep"])
    assert keeper.tls.getpeercert(binary_form=True) == leaf.der()
    for i in range(3):
        with pytest.raises(ssl.SSLCertVerificationError) as e:
            Wss(f"wss://localhost:{s.tls_port}/ws", ctx)
        assert reason in str(e.value), e.value
    with socket.create_connection((s.host, s.tls_port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="localhost")
    rc, out = s_client(s.tls_port, "-servername", "localhost", "-CAfile", str(pki.ca), "-verify_return_error",
                       "-verify_hostname", "localhost")
    assert rc != 0 and "Verify return code: 0 (ok)" not in out, out
    # the server counts the client's refusals as failed handshakes, not successes
    wait_metric(s, HS_FAIL, lambda v: v - m0[HS_FAIL] >= 5, what="5 refused handshakes counted")
    wait_metric(s, TLS_CONNS, lambda v: v == 1, what="only the pinned client left")
    assert metrics(s)[HS] - m0[HS] == 1  # the pinned client's
    t = msg_text("tls:keep", 1, 700)
    publish_https(s, pinned, "tls:keep", t)
    keeper.expect([t])
    keeper.close()
    # plain port unaffected; a fresh pinned client works
    assert_normal_client_works(s, pinned, leaf=leaf)
    plain = PlainSub(s, ["tls:p"])
    plain.close()


# ================================================================ SIGHUP reload


def peer_der(s, ctx):
    with socket.create_connection((s.host, s.tls_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True)


def wait_peer(s, ctx, der, timeout=10.0):
    deadline = time.time() + timeout
    while True:
        got = peer_der(s, ctx)
        if got == der:
            return
        if time.time() > deadline:
            raise AssertionError("new handshakes did not get the expected certificate")
        time.sleep(0.05)


def swap_in(src_chain, src_key, dst_chain, dst_key):
    """Replaces the files at the paths the server was started with (write a
    temporary file, rename over: how deployments replace certificates)."""
    for src, dst in ((src_chain, dst_chain), (src_key, dst_key)):
        tmp = dst.with_suffix(".tmp")
        tmp.write_bytes(src.read_bytes() if hasattr(src, "read_bytes") else src)
        os.replace(tmp, dst)


def warn_lines(s):
    return [line for line in s.logs().splitlines() if " WARN " in line]


def warn_count(s):
    return len(warn_lines(s))


def test_sighup_reloads_certificate(start_server, pki, ctx, tmp_path):  # noqa: F811
    a, b = pki.rsa, pki.rsa_b
    assert a.serial() != b.serial()
    chain, key = pki.copy_leaf(a, tmp_path)
    s = start_tls(start_server, chain, key)
    old = WssSub(s, ctx, ["tls:reload"], compression="deflate")
    assert old.tls.getpeercert(binary_form=True) == a.der()
    assert peer_der(s, ctx) == a.der()

    swap_in(b.chain, b.key, chain, key)
    s.proc.send_signal(signal.SIGHUP)
    wait_peer(s, ctx, b.der())
    middle = WssSub(s, ctx, ["tls:reload"])
    assert middle.tls.getpeercert(binary_form=True) == b.der()
    assert s.proc.poll() is None

    # a bad certificate file: WARN naming the file, B stays
    w0 = warn_count(s)
    swap_in(b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n", b.key.read_bytes(),
            chain, key)
    s.proc.send_signal(signal.SIGHUP)
    pmdtools.wait_for(lambda: warn_count(s) > w0, timeout=10, what="WARN line for the bad certificate")
    assert str(chain) in warn_lines(s)[-1], warn_lines(s)[-1]
    assert peer_der(s, ctx) == b.der()
    # certificate A with key B (mismatched): WARN, B stays
    w0 = warn_count(s)
    swap_in(a.chain, b.key, chain, key)
    s.proc.send_signal(signal.SIGHUP)
    pmdtools.wait_for(lambda: warn_count(s) > w0, timeout=10, what="WARN line for the mismatched key")
    assert str(key) in warn_lines(s)[-1], warn_lines(s)[-1]
    assert peer_der(s, ctx) == b.der()
    # a missing key file: WARN naming it, B stays
    w0 = warn_count(s)
    key.unlink()
    s.proc.send_signal(signal.SIGHUP)
    pmdtools.wait_for(lambda: warn_count(s) > w0, timeout=10, what="WARN line for the missing key")
    assert str(key) in warn_lines(s)[-1], warn_lines(s)[-1]
    assert peer_der(s, ctx) == b.der()
    # back to A (an ECDSA-free round trip through three reloads), served to new handshakes
    swap_in(a.chain, a.key, chain, key)
    s.proc.send_signal(signal.SIGHUP)
    wait_peer(s, ctx, a.der())

    # the connections made under A and under B are still up and still receive
    texts = [msg_text("tls:reload", i, n) for i, n in enumerate([100, 2000])]
    for t in texts:
        publish_https(s, ctx, "tls:reload", t)
    old.expect(texts)
    middle.expect(texts)
    assert old.tls.getpeercert(binary_form=True) == a.der()
    old.close()
    middle.close()
    assert s.proc.poll() is None
    assert metrics(s)[TLS_CONNS] == 0


def test_sighup_storm_keeps_serving(start_server, pki, ctx):  # noqa: F811
    """100 reloads one after the other (each shard drops its reference to
    the old certificate context while the other shards and the main thread
    drop theirs), handshakes in between: the server stays up, an open
    connection stays up, and it exits 0 afterwards (clean_exit)."""
    s = start_tls(start_server, pki.rsa.chain, pki.rsa.key)
    keep = WssSub(s, ctx, ["tls:storm"])
    n = 100
    for i in range(n):
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while s.logs().count("SIGHUP: reloaded") < i + 1 and s.proc.poll() is None and time.time() < deadline:
            time.sleep(0.002)
        time.sleep(0.002)
        assert s.proc.poll() is None, f"ringcast died after SIGHUP {i + 1} ({s.proc.returncode}): {s.logs()[-1500:]}"
        assert s.logs().count("SIGHUP: reloaded") == i + 1, f"reload {i + 1} not logged"
        if i % 10 == 9:
            assert peer_der(s, ctx) == pki.rsa.der()
    t = msg_text("tls:storm", 1, 400)
    publish_https(s, ctx, "tls:storm", t)
    keep.expect([t])
    keep.close()


def test_sigterm_drains_tls_clients(start_server, pki, ctx):  # noqa: F811
    """SIGTERM with wss:// clients connected: each gets a 1001 close over
    TLS, and the server exits 0."""
    s = start_tls(start_server, pki.rsa.chain, pki.rsa.key)
    subs = [WssSub(s, ctx, ["tls:drain"], compression=("deflate" if i % 2 else None)) for i in range(10)]
    s.proc.send_signal(signal.SIGTERM)
    for c in subs:
        with pytest.raises(Exception):
            c.ws.recv(timeout=10)
        assert c.ws.close_code == 1001, c.ws.close_code
    assert s.proc.wait(15) == 0, s.logs()[-2000:]


# ================================================================ 1,000 clients


N_LOAD = 1000


@pytest.fixture
def enough_fds():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    assert want >= N_LOAD + 200, f"RLIMIT_NOFILE hard limit {hard} is too low for {N_LOAD} clients"
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_1000_concurrent_tls_clients(enough_fds, start_server, pki, ctx):  # noqa: F811
    t_start = time.time()
    s = start_tls(start_server, pki.rsa.chain, pki.rsa.key)
    topic = "tls:load"
    topics = spread([topic])
    text = msg_text(topic, 1, 700)

    async def main():
        handshaking = asyncio.Semaphore(100)
        subscribed = asyncio.Semaphore(0)
        go = asyncio.Event()

        async def client(i):
            async with handshaking:
                ws = await aconnect(f"wss://127.0.0.1:{s.tls_port}/ws", ssl=ctx, compression=None, proxy=None,
                                    ping_interval=None, open_timeout=30, close_timeout=10, max_size=None)
            try:
                assert ws.transport.get_extra_info("ssl_object").version() == "TLSv1.3"
                await ws.send(json.dumps({"type": "subscribe", "markets": topics}))
                ack = json.loads(await asyncio.wait_for(ws.recv(), 20))
                assert ack["type"] == "subscribed", ack
                subscribed.release()
                await go.wait()
                got = await asyncio.wait_for(ws.recv(), 20)
                return got == text or f"client {i} got {got[:80]!r}"
            finally:
                await ws.close()

        tasks = [asyncio.create_task(client(i)) for i in range(N_LOAD)]

        async def all_subscribed():
            for _ in range(N_LOAD):
                await subscribed.acquire()

        waiter = asyncio.ensure_future(all_subscribed())
        await asyncio.wait([waiter, *tasks], timeout=40, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            errors = [t.exception() for t in tasks if t.done() and t.exception()]
            waiter.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise AssertionError(f"not all {N_LOAD} clients subscribed; first errors {errors[:3]!r}")
        m = await asyncio.to_thread(metrics, s)
        assert m[TLS_CONNS] == N_LOAD, m[TLS_CONNS]
        t0 = time.time()
        await asyncio.to_thread(publish_https, s, ctx, topic, text)
        go.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        return results, time.time() - t0, m

    results, fanout_s, m = asyncio.run(main())
    bad = [r for r in results if r is not True]
    assert not bad, f"{len(bad)} of {N_LOAD} clients failed; first {bad[:3]!r}"
    assert m[HS] >= N_LOAD
    wait_metric(s, TLS_CONNS, lambda v: v == 0, what="all TLS clients gone")
    assert time.time() - t_start < 60, time.time() - t_start
