"""permessage-deflate (RFC 7692) end to end.

  * negotiation: the exact Sec-WebSocket-Extensions answer for accepted
    offers (server_max_window_bits echoed, first acceptable offer wins,
    several header lines), unacceptable offers declined with a successful
    handshake and an uncompressed connection, --deflate off;
  * broadcast interop: Python websockets, Node's ws, headless Chromium and
    raw subscribers (which see RSV1 on every frame) all decode compressed
    deliveries to the published JSON byte for byte, next to plain
    subscribers, at ISA-L and libdeflate levels; /metrics shows one
    compression per message shared by every compressed subscriber;
  * client->server compression: compressed subscribes, compressed echo of
    0 B to 1 MiB, the inflate cap (decompression bombs close 1009 at once
    while other clients keep receiving), invalid DEFLATE and invalid UTF-8
    inside it (1007), RSV1 where it may not be (1002);
  * server_max_window_bits: what the server compresses for such a client
    inflates with that window, checked with a strict one-byte-at-a-time
    inflate that really enforces the window (and is shown to reject a
    window-15 stream).

Raw clients (wsraw.RawWS) are used wherever the frame bits matter; every
server frame they read is checked (FIN, RSV, opcode) before its payload.
"""
import json
import os
import random
import socket
import struct
import time
import zlib

import pytest
from websockets.sync.client import connect

from clients.pmdtools import (PMD_RESPONSE, Chromium, NodeSub, chromium_binary, deflate_payload, inflate_payload,
                              metrics, node_available, publish, publish_raw, spread, strict_inflate, topic_owner)
from wsraw import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWS

pytestmark = pytest.mark.timeout(180)


KIB, MIB = 1024, 1024 * 1024
RSV1 = 4
SHARDS = ("--shards", "2")
CD = "ringcast_compressed_deliveries_total"
COMPRESSIONS = "ringcast_compressions_total"


# ---------------------------------------------------------------- data


def msg_json(topic, seq, size):
    """Compact JSON text of exactly `size` UTF-8 bytes (size >= 90): a
    market-data record with some non-ASCII, padded to the byte."""
    d = {"topic": topic, "seq": seq, "venue": "Zürich", "bids": [], "asks": [], "pad": ""}

    def text():
        return json.dumps(d, separators=(",", ":"), ensure_ascii=False)

    i = 0
    while len(text().encode()) + 30 < size:
        d["bids"].append([round(100 - i * 0.25 + seq * 0.01, 2), 10 * i + seq % 7])
        d["asks"].append([round(100 + i * 0.25 + seq * 0.01, 2), 9 * i + seq % 5])
        i += 1
    while len(text().encode()) > size and d["bids"]:
        d["bids"].pop()
        d["asks"].pop()
    d["pad"] = "." * (size - len(text().encode()))
    t = text().encode()
    assert len(t) == size, (len(t), size)
    return t


def json_text(n, seed=0):
    """n bytes of JSON-ish ASCII text (compressible), deterministic."""
    rnd = random.Random(seed)
    words = ["price", "qty", "side", "bid", "ask", "symbol", "BTC-USD", "ETH-USD", "true", "false", "null"]
    parts, total = [], 0
    while total < n:
        p = '{"%s":%d.%02d,"%s":"%s"},' % (rnd.choice(words), rnd.randrange(100000), rnd.randrange(100),
                                          rnd.choice(words), rnd.choice(words))
        parts.append(p)
        total += len(p)
    return "".join(parts)[:n]


def random_bytes(n, seed=0):
    return random.Random(seed).randbytes(n)


def far_repeats(n, block=700, seed=1):
    """ASCII text made of one random block repeated: every match a
    compressor finds is `block` bytes back, beyond a 512-byte window."""
    rnd = random.Random(seed)
    b = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(block))
    return (b * (n // block + 1))[:n]


# ---------------------------------------------------------------- raw clients


def handshake(server, path="/echo", ext_lines=(), timeout=10.0):
    """A raw upgrade with the given Sec-WebSocket-Extensions header lines.
    Returns (ws, [(name, value)] of the 101's headers, in order)."""
    ws = RawWS(server.host, server.port, handshake=False, timeout=timeout)
    ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = (f"GET {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           + "".join(f"Sec-WebSocket-Extensions: {v}\r\n" for v in ext_lines) + "\r\n")
    ws.sock.sendall(req.encode())
    status, hdrs, head = ws.read_http_head()
    ws.status, ws.response_headers = status, hdrs
    lines = [tuple(x.strip() for x in line.split(":", 1)) for line in head.decode("latin-1").split("\r\n")[1:]]
    assert status == 101, head
    return ws, lines


def ext_answers(lines):
    return [v for k, v in lines if k.lower() == "sec-websocket-extensions"]


def recv_data(ws, timeout=10.0):
    """The next data frame (a whole message: the server never fragments):
    returns (rsv, opcode, payload as sent on the wire)."""
    ws.sock.settimeout(timeout)
    while True:
        fin, rsv, op, payload = ws.recv_frame()
        if op in (OP_PING, OP_PONG):
            continue
        assert op != OP_CLOSE, f"close frame {payload!r}"
        assert fin, "server fragmented a message"
        assert rsv in (0, RSV1), f"RSV bits {rsv:03b}"
        return rsv, op, payload


def recv_message(ws, wbits=15, timeout=10.0):
    """(compressed?, opcode, message bytes) of the next data frame, inflated
    (strictly within 2^wbits when wbits < 15) when RSV1 is set."""
    rsv, op, payload = recv_data(ws, timeout)
    if rsv & RSV1:
        data = strict_inflate(payload, wbits) if wbits < 15 else inflate_payload(payload)
        return True, op, data
    return False, op, payload


def raw_echo(server, offer="permessage-deflate"):
    ws, lines = handshake(server, "/echo", [offer] if offer else [])
    return ws, ext_answers(lines)


# ================================================================ negotiation

ACCEPTED = [
    ("permessage-deflate", None),
    ("permessage-deflate; client_max_window_bits", None),
    ("permessage-deflate; client_max_window_bits=10", None),
    ("permessage-deflate; server_no_context_takeover", None),
    ("permessage-deflate; client_no_context_takeover", None),
    ("permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits", None),
    ("permessage-deflate; server_max_window_bits=10", 10),
    ('permessage-deflate; server_max_window_bits="10"', 10),
    ("permessage-deflate; server_max_window_bits=8", 8),
    ("permessage-deflate; server_max_window_bits=15", 15),
    ("permessage-deflate;server_max_window_bits=12;client_max_window_bits", 12),
    ("permessage-deflate ; server_max_window_bits = 11 ; client_no_context_takeover", 11),
    # several offers: the first acceptable one wins
    ("permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=11, "
     "permessage-deflate", 11),
    ("x-webkit-deflate-frame, permessage-deflate; foo=1, "
     "permessage-deflate; client_no_context_takeover; server_max_window_bits=13", 13),
    ("permessage-deflate; server_max_window_bits=9, permessage-deflate", 9),
    ("permessage-deflate, permessage-deflate; server_max_window_bits=9", None),
    ("foo; bar=baz, permessage-deflate; client_max_window_bits", None),
]


def expected_answer(bits):
    return PMD_RESPONSE + (f"; server_max_window_bits={bits}" if bits else "")


@pytest.mark.parametrize("offer,bits", ACCEPTED, ids=[o for o, _ in ACCEPTED])
def test_offer_accepted_exact_answer(echo_server, offer, bits):
    ws, answers = raw_echo(echo_server, offer)
    try:
        assert answers == [expected_answer(bits)]
        # ...and the connection is compressed: a compressible echo comes back with RSV1.
        msg = json_text(2000, seed=len(offer)).encode()
        ws.send_frame(OP_TEXT, deflate_payload(msg), rsv=RSV1)
        compressed, op, got = recv_message(ws, wbits=bits or 15)
        assert (compressed, op, got) == (True, OP_TEXT, msg)
        ws.send_frame(OP_CLOSE, struct.pack("!H", 1000))
        ws.expect_close(1000)
    finally:
        ws.close()


DECLINED = [
    "permessage-deflate; foo",
    "permessage-deflate; foo=bar",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; client_max_window_bits; client_max_window_bits",
    "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=0",
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; server_max_window_bits=010",
    "permessage-deflate; server_max_window_bits=+9",
    "permessage-deflate; server_max_window_bits=9.0",
    "permessage-deflate; client_max_window_bits=7",
    "permessage-deflate; client_max_window_bits=16",
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; client_no_context_takeover=true",
    "x-webkit-deflate-frame",
    "deflate-frame",
    "permessage-deflate-x",
    # malformed headers decline everything in them, later offers included
    'permessage-deflate; server_max_window_bits="1 0"',
    "permessage-deflate; =10",
    "permessage-deflate; server_max_window_bits=10 junk, permessage-deflate",
    "permessage-deflate;; client_max_window_bits, permessage-deflate",
]


def assert_uncompressed_connection(ws):
    """A compressible message echoes back without RSV1, and a frame with
    RSV1 is a protocol error: the extension is not in use."""
    msg = json_text(3000, seed=7).encode()
    ws.send_frame(OP_TEXT, msg)
    assert recv_data(ws) == (0, OP_TEXT, msg)
    ws.send_frame(OP_TEXT, deflate_payload(msg), rsv=RSV1)
    ws.expect_close(1002)


@pytest.mark.parametrize("offer", DECLINED)
def test_offer_declined_handshake_succeeds(echo_server, offer):
    ws, answers = raw_echo(echo_server, offer)
    try:
        assert answers == []
        assert_uncompressed_connection(ws)
    finally:
        ws.close()


@pytest.mark.parametrize("lines,bits", [
    (["x-webkit-deflate-frame", "permessage-deflate; server_max_window_bits=11"], 11),
    (["permessage-deflate; bogus", "permessage-deflate"], None),
    (["permessage-deflate; =malformed, permessage-deflate; server_max_window_bits=9",
      "permessage-deflate; server_max_window_bits=10"], 10),
    (["permessage-deflate; server_max_window_bits=12", "permessage-deflate"], 12),
], ids=["second-line", "first-line-declined", "malformed-line-then-good", "first-line-wins"])
def test_offers_over_several_header_lines(echo_server, lines, bits):
    ws, head = handshake(echo_server, "/echo", lines)
    try:
        assert ext_answers(head) == [expected_answer(bits)]
        msg = json_text(1500, seed=3).encode()
        ws.send_frame(OP_BINARY, msg)  # uncompressed from us: fine either way
        compressed, op, got = recv_message(ws, wbits=bits or 15)
        assert (compressed, op, got) == (True, OP_BINARY, msg)
    finally:
        ws.close()


def test_ws_endpoint_negotiates_too(start_server):
    s = start_server(*SHARDS)
    for offer, bits in [("permessage-deflate", None), ("permessage-deflate; server_max_window_bits=9", 9),
                        ("permessage-deflate; server_max_window_bits=7", "declined")]:
        ws, head = handshake(s, "/ws", [offer])
        try:
            assert ext_answers(head) == ([] if bits == "declined" else [expected_answer(bits)])
        finally:
            ws.close()


def test_websockets_default_offer_negotiated(echo_server):
    with connect(echo_server.url + "/echo", max_size=None, proxy=None, open_timeout=5, ping_interval=None) as ws:
        assert ws.response.headers.get_all("Sec-WebSocket-Extensions") == [PMD_RESPONSE]
        (ext,) = ws.protocol.extensions
        assert (ext.name, ext.remote_no_context_takeover, ext.local_no_context_takeover) == (
            "permessage-deflate", True, True)


@pytest.mark.parametrize("path", ["/echo", "/ws"])
def test_deflate_off_never_negotiates(start_server, path):
    s = start_server("--echo", "--deflate", "off", *SHARDS)
    for offer in [o for o, _ in ACCEPTED]:
        ws, head = handshake(s, path, [offer])
        try:
            assert ext_answers(head) == [], offer
        finally:
            ws.close()
    ws, head = handshake(s, "/echo", ["permessage-deflate"])
    try:
        assert_uncompressed_connection(ws)
    finally:
        ws.close()
    # and a compressed-capable client still works, without compression
    with connect(s.url + "/echo", max_size=None, proxy=None, open_timeout=5, ping_interval=None) as ws:
        assert ws.protocol.extensions == []
        ws.send("x" * 5000)
        assert ws.recv(timeout=5) == "x" * 5000


# ================================================================ broadcast interop


def test_deflate_subscriber_of_a_remote_topic(start_server):
    """The minimal case of the bug above: one compressing subscriber whose
    topics are owned by both shards. The server must ack and live on."""
    s = start_server(*SHARDS)
    topics = ["pmd:remote:a"]
    topics = spread(topics)
    assert {topic_owner(t) for t in topics} == {0, 1}
    ws, head = handshake(s, "/ws", ["permessage-deflate"])
    try:
        ws.send_frame(OP_TEXT, json.dumps({"type": "subscribe", "markets": topics}))
        rsv, op, ack = recv_data(ws)
        ack = json.loads(ack)
        assert (rsv, op, ack["type"], sorted(ack["markets"])) == (0, OP_TEXT, "subscribed", sorted(topics))
        time.sleep(0.2)
        assert s.proc.poll() is None, f"server died with {s.proc.returncode}"
        ws.send_frame(OP_TEXT, b'{"type":"ping"}')
        assert recv_data(ws) == (0, OP_TEXT, b'{"type":"pong"}')
    finally:
        ws.close()


class PyClient:
    """Python websockets on /ws (compression="deflate" is its default)."""

    def __init__(self, server, topics, compression="deflate", firehose=False):
        topics = None if firehose else spread(topics)
        self.ws = connect(server.url + "/ws", compression=compression, max_size=None, proxy=None,
                          open_timeout=5, close_timeout=5, ping_interval=None, legacy=True)
        self.compressed = bool(self.ws.protocol.extensions)
        assert self.compressed == (compression == "deflate")
        if compression == "deflate":
            assert self.ws.response.headers["Sec-WebSocket-Extensions"] == PMD_RESPONSE
        self.ws.send(json.dumps({"type": "subscribe_all"} if firehose else {"type": "subscribe", "markets": topics}))
        ack = json.loads(self.ws.recv(timeout=5))
        assert ack["type"] == "subscribed", ack
        assert sorted(ack["markets"]) == (["*"] if firehose else sorted(topics)), ack

    def expect(self, texts):
        for t in texts:
            got = self.ws.recv(timeout=15)
            assert isinstance(got, str), got
            assert got.encode() == t

    def close(self):
        self.ws.close()
        assert self.ws.close_code == 1000


class RawSub:
    """A raw /ws subscriber: sees RSV1 on every frame. offer=None: plain."""

    def __init__(self, server, topics, offer="permessage-deflate", firehose=False):
        topics = None if firehose else spread(topics)
        self.ws, head = handshake(server, "/ws", [offer] if offer else [])
        answers = ext_answers(head)
        self.wbits = 0
        if offer:
            assert len(answers) == 1 and answers[0].startswith(PMD_RESPONSE), answers
            self.wbits = int(answers[0].rsplit("=", 1)[1]) if "server_max_window_bits" in answers[0] else 15
        else:
            assert answers == []
        self.compressed = offer is not None
        self.ws.send_frame(OP_TEXT, json.dumps({"type": "subscribe_all"} if firehose else
                                               {"type": "subscribe", "markets": topics}))
        rsv, op, ack = recv_data(self.ws)
        assert (rsv, op) == (0, OP_TEXT)
        ack = json.loads(ack)
        assert (ack["type"], sorted(ack["markets"])) == ("subscribed", ["*"] if firehose else sorted(topics)), ack
        self.seen = []  # (compressed, size) of every message

    def expect(self, texts, rsv1=None):
        """rsv1(text) -> the RSV1 bit expected for that message (None: any)."""
        for t in texts:
            compressed, op, got = recv_message(self.ws, wbits=self.wbits or 15)
            assert op == OP_TEXT
            assert got == t
            if not self.compressed:
                assert not compressed, "RSV1 on a connection that did not negotiate compression"
            elif rsv1 is not None:
                assert compressed == rsv1(t), (len(t), compressed)
            self.seen.append((compressed, len(t)))

    def close(self):
        self.ws.send_frame(OP_CLOSE, struct.pack("!H", 1000))
        code, _, _ = self.ws.expect_close(1000)
        self.ws.close()


class NodeClient:
    def __init__(self, server, topics, mode="deflate"):
        topics = spread(topics)
        self.sub = NodeSub(server, topics, mode)
        self.compressed = mode == "deflate"
        ev = self.sub.next(15)
        assert ev["event"] == "open", ev
        if self.compressed:
            assert ev["header"] == PMD_RESPONSE and ev["extensions"].startswith("permessage-deflate"), ev
        else:
            assert ev["header"] is None and ev["extensions"] == "", ev
        ev = self.sub.next(10)
        assert ev["event"] == "ack", ev
        ack = json.loads(ev["text"])
        assert (ack["type"], sorted(ack["markets"])) == ("subscribed", sorted(topics)), ev

    def expect(self, texts):
        got = self.sub.messages(len(texts))
        assert got == [(False, t) for t in texts]

    def close(self):
        ev = self.sub.close()
        assert ev is not None and ev["code"] == 1000, self.sub.lines[-3:]


class PageClient:
    def __init__(self, browser, server, topics):
        topics = spread(topics)
        url = f"file://{os.path.dirname(os.path.abspath(__file__))}/clients/deflate_sub.html?port={server.port}&topics={','.join(topics)}"
        self.page = browser.open_page(url)
        self.compressed = True
        self.page.wait("window.rc && window.rc.ack !== null", what="subscribe ack")
        st = self.page.evaluate("JSON.stringify({ext: rc.extensions, ack: rc.ack, dom: document.getElementById('ack').textContent})")
        st = json.loads(st)
        assert st["ext"] == PMD_RESPONSE, st
        ack = json.loads(st["ack"])
        assert (ack["type"], sorted(ack["markets"])) == ("subscribed", sorted(topics)), st
        assert st["dom"] == st["ack"]
        self.n = 0

    def expect(self, texts):
        want = self.n + len(texts)
        self.page.wait(f"rc.count >= {want}", what=f"{want} messages")
        got = self.page.evaluate(
            f"Array.from(document.querySelectorAll('#log li')).slice({self.n}, {want}).map(li => li.textContent)")
        assert [g.encode() for g in got] == texts
        assert self.page.evaluate("[rc.count, rc.binary, rc.errors, rc.exceptions]") == [want, 0, 0, []]
        self.n = want

    def close(self):
        self.page.evaluate("closeSocket()")
        closed = self.page.wait("rc.closed", what="close event")
        assert closed["code"] == 1000 and closed["wasClean"], closed
        self.page.close()


@pytest.fixture(scope="module")
def browser():
    if not chromium_binary():
        pytest.skip("chromium is not installed (./dev.sh installs Debian's chromium)")
    b = Chromium()
    yield b
    b.close()


def needs_node():
    if not node_available():
        pytest.skip("node and Debian's node-ws are not installed (./dev.sh installs them)")


def warm_up(server, topic, clients, n_compressed):
    """The owner of a topic learns that a shard has compressing subscribers
    through its inbox, just after the subscribe ack: publish ≥256-byte
    messages until one is delivered compressed to all n_compressed clients
    (every client reads every warm-up message, checked byte for byte)."""
    for i in range(100):
        before = metrics(server)[CD]
        text = msg_json(topic, 10_000 + i, 1500)
        publish(server, topic, text.decode())
        for c in clients:
            c.expect([text])
        if metrics(server)[CD] - before == n_compressed:
            return i
    raise AssertionError("compressed deliveries never reached every compressing subscriber")


def bcast_messages(topic, n_big=12, n_small=6):
    """~1 KiB messages interleaved with small ones, and the 255/256 edge."""
    msgs = []
    for i in range(n_big):
        msgs.append(msg_json(topic, i, 900 + 37 * i))
        if i < n_small:
            msgs.append(msg_json(topic, 100 + i, 90 + 25 * i))
    msgs += [msg_json(topic, 200, 255), msg_json(topic, 201, 256), msg_json(topic, 202, 257)]
    # past the 32 KiB window: still compressed for 15-bit windows (a
    # back-reference never reaches further than the window anyway)
    msgs += [msg_json(topic, 300, 40000), msg_json(topic, 301, 200000)]
    return msgs


def run_broadcast(server, topic, clients, msgs, batch=False):
    """Publishes msgs to topic (one POST each, or all in one array POST), every
    client reads them all; returns the /metrics deltas."""
    m0 = metrics(server)
    if batch:
        body = "[" + ",".join('{"topic":%s,"data":%s}' % (json.dumps(topic), m.decode()) for m in msgs) + "]"
        assert publish_raw(server, body) == (200, {"published": len(msgs)})
    else:
        for m in msgs:
            publish(server, topic, m.decode())
    for c in clients:
        if isinstance(c, RawSub):
            c.expect(msgs, rsv1=lambda t: len(t) >= 256)
        else:
            c.expect(msgs)
    m1 = metrics(server)
    return {k: m1[k] - m0.get(k, 0) for k in m1}


def check_counts(delta, msgs, clients):
    n_big = sum(len(m) >= 256 for m in msgs)
    n_comp = sum(c.compressed for c in clients)
    assert delta[COMPRESSIONS] == n_big, delta
    assert delta[CD] == n_big * n_comp, delta
    assert delta["ringcast_deliveries_total"] == len(msgs) * len(clients), delta
    assert delta["ringcast_messages_published_total"] == len(msgs), delta


def test_broadcast_python_clients(start_server):
    """websockets (compressed x2, plain), raw compressed, raw compressed
    firehose and raw plain subscribers of one topic on a 2-shard server."""
    s = start_server(*SHARDS)
    topic = "pmd:py"
    clients = [PyClient(s, [topic]), PyClient(s, [topic, "pmd:other"]), PyClient(s, [topic], compression=None),
               RawSub(s, [topic]), RawSub(s, None, firehose=True), RawSub(s, [topic], offer=None)]
    warm_up(s, topic, clients, 4)
    msgs = bcast_messages(topic)
    delta = run_broadcast(s, topic, clients, msgs)
    check_counts(delta, msgs, clients)
    # (publishes forwarded to the owner shard may share a batch window)
    assert 1 <= delta["ringcast_frames_built_total"] <= len(msgs)
    # One array publish: the messages share a frame; each is still its own
    # WebSocket message with its own RSV1.
    msgs = [msg_json(topic, 300 + i, size) for i, size in enumerate([1200, 100, 2000, 255, 256, 3000, 120])]
    delta = run_broadcast(s, topic, clients, msgs, batch=True)
    check_counts(delta, msgs, clients)
    # A broadcast to every /ws connection is compressed for those that negotiated it.
    m0 = metrics(s)
    text = msg_json("*", 400, 1500)
    assert publish_raw(s, '{"broadcast":true,"data":%s}' % text.decode()) == (200, {"published": 1})
    for c in clients:
        c.expect([text])
    assert [c.seen[-1][0] for c in clients if isinstance(c, RawSub)] == [True, True, False]
    assert metrics(s)[CD] - m0[CD] == 4
    for c in clients:
        c.close()


def test_broadcast_node_ws(start_server):
    needs_node()
    s = start_server(*SHARDS)
    topic = "pmd:node"
    node, node_plain, raw = NodeClient(s, [topic]), NodeClient(s, [topic], mode="plain"), RawSub(s, [topic])
    clients = [node, node_plain, raw]
    try:
        warm_up(s, topic, clients, 2)
        msgs = bcast_messages(topic)
        delta = run_broadcast(s, topic, clients, msgs)
        check_counts(delta, msgs, clients)
        for c in clients:
            c.close()
    finally:
        node.sub.kill()
        node_plain.sub.kill()


def test_broadcast_chromium(start_server, browser):
    s = start_server(*SHARDS)
    topic = "pmd:chromium"
    page, raw = PageClient(browser, s, [topic]), RawSub(s, [topic])
    clients = [page, raw]
    warm_up(s, topic, clients, 2)
    msgs = bcast_messages(topic)
    delta = run_broadcast(s, topic, clients, msgs)
    check_counts(delta, msgs, clients)
    for c in clients:
        c.close()


@pytest.mark.parametrize("level", [1, 3, 6, 12], ids=lambda l: f"level{l}-{'isal' if l <= 3 else 'libdeflate'}")
def test_broadcast_all_clients_share_one_compression(start_server, browser, level):
    """Every kind of client on one topic at each compressor (ISA-L levels
    end with a sync flush, libdeflate's with a BFINAL block and 0x00): all
    decode every message, and each message is compressed once for all."""
    needs_node()
    s = start_server("--deflate-level", str(level), *SHARDS)
    topic = f"pmd:all{level}"
    node = NodeClient(s, [topic])
    try:
        clients = [PyClient(s, [topic]), node, PageClient(browser, s, [topic]), RawSub(s, [topic]),
                   PyClient(s, [topic], compression=None), RawSub(s, [topic], offer=None)]
        warm_up(s, topic, clients, 4)
        msgs = bcast_messages(topic, n_big=20, n_small=8)
        delta = run_broadcast(s, topic, clients, msgs)
        check_counts(delta, msgs, clients)
        n_big = sum(len(m) >= 256 for m in msgs)
        assert delta[COMPRESSIONS] == n_big and delta[CD] == 4 * n_big
        # big JSON really got smaller on the wire for compressed subscribers
        assert delta["ringcast_delivery_bytes_total"] < 0.9 * len(clients) * sum(len(m) for m in msgs)
        for c in clients:
            c.close()
    finally:
        node.sub.kill()


def test_min_bytes_flag(start_server):
    """--deflate-min-bytes 1000: 999 bytes go out plain, 1000 compressed."""
    s = start_server("--deflate-min-bytes", "1000", *SHARDS)
    topic = "pmd:min"
    raw = RawSub(s, [topic])
    warm_up(s, topic, [raw], 1)
    msgs = [msg_json(topic, i, n) for i, n in enumerate([300, 999, 1000, 5000, 256])]
    m0 = metrics(s)
    for m in msgs:
        publish(s, topic, m.decode())
    raw.expect(msgs, rsv1=lambda t: len(t) >= 1000)
    assert metrics(s)[COMPRESSIONS] - m0[COMPRESSIONS] == 2
    raw.close()


# ================================================================ client -> server compression


def test_compressed_subscribe_many_topics(start_server):
    """websockets compresses every message it sends once negotiated: a
    ~1.5 KiB subscribe listing 60 topics arrives compressed and is acked."""
    s = start_server(*SHARDS)
    topics = [f"pmd:sub:{i:03d}:" + "abcdefgh" * 2 for i in range(60)]
    with connect(s.url + "/ws", max_size=None, proxy=None, open_timeout=5, ping_interval=None) as ws:
        assert ws.protocol.extensions
        m0 = metrics(s)["ringcast_client_messages_total"]
        req = json.dumps({"type": "subscribe", "markets": topics})
        assert len(req) > 1024
        ws.send(req)
        ack = json.loads(ws.recv(timeout=5))
        assert ack["type"] == "subscribed" and sorted(ack["markets"]) == sorted(topics)
        ws.send(json.dumps({"type": "ping", "pad": "p" * 300}))
        assert json.loads(ws.recv(timeout=5)) == {"type": "pong"}
        assert metrics(s)["ringcast_client_messages_total"] - m0 == 2
        text = msg_json(topics[41], 1, 800)
        publish(s, topics[41], text.decode())
        assert ws.recv(timeout=5).encode() == text


@pytest.mark.parametrize("form", ["sync-flush", "bfinal", "bfinal+00", "fragmented", "stored-blocks"])
def test_raw_compressed_subscribe(start_server, form):
    s = start_server(*SHARDS)
    ws, head = handshake(s, "/ws", ["permessage-deflate"])
    try:
        topics = [f"raw:{i}" for i in range(40)]
        req = json.dumps({"type": "subscribe", "markets": topics}).encode()
        if form == "sync-flush":
            ws.send_frame(OP_TEXT, deflate_payload(req), rsv=RSV1)
        elif form == "bfinal":
            ws.send_frame(OP_TEXT, deflate_payload(req, final=True), rsv=RSV1)
        elif form == "bfinal+00":
            ws.send_frame(OP_TEXT, deflate_payload(req, final=True) + b"\x00", rsv=RSV1)
        elif form == "fragmented":
            p = deflate_payload(req)
            ws.send_frame(OP_TEXT, p[:5], fin=False, rsv=RSV1)
            ws.send_frame(OP_CONT, p[5:9], fin=False)
            ws.send_frame(OP_PING, b"mid")  # a control frame between fragments
            ws.send_frame(OP_CONT, p[9:], fin=True)
        else:  # stored blocks, as a zlib sender at level 0 makes them
            ws.send_frame(OP_TEXT, deflate_payload(req, level=0), rsv=RSV1)
        rsv, op, ack = recv_data(ws)  # (the pong is skipped)
        assert (rsv, op) == (0, OP_TEXT)
        ack = json.loads(ack)
        assert ack["type"] == "subscribed" and sorted(ack["markets"]) == sorted(topics)
    finally:
        ws.close()


def echo_payload(size, kind, seed):
    if kind == "json":
        return json_text(size, seed)
    if kind == "random-text":
        rnd = random.Random(seed)
        return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz ÄÖÜäöüß€\u00e9") for _ in range(size))[:size]
    return random_bytes(size, seed)


ECHO_SIZES = [0, 1, 125, 126, 255, 256, 257, 1000, 4096, 65535, 65536, 65537, 262144, MIB]


@pytest.mark.parametrize("kind", ["json", "random-text", "random-binary"])
@pytest.mark.parametrize("size", ECHO_SIZES)
def test_compressed_echo_sizes(echo_server, kind, size):
    with connect(echo_server.url + "/echo", max_size=None, proxy=None, open_timeout=5, close_timeout=5,
                 ping_interval=None) as ws:
        assert ws.protocol.extensions
        msg = echo_payload(size, kind, seed=size)
        for _ in range(2):
            ws.send(msg)
            got = ws.recv(timeout=30)
            assert type(got) is type(msg) and len(got) == len(msg)
            assert got == msg
        ws.close()
        assert ws.close_code == 1000


@pytest.mark.parametrize("size,kind,want_rsv1", [
    (1, "json", False), (255, "json", False), (256, "json", True), (4096, "json", True),
    (65536, "json", True), (4096, "random-binary", False), (0, "json", False)])
@pytest.mark.parametrize("sent_compressed", [True, False])
def test_echo_rsv1_on_the_wire(echo_server, size, kind, want_rsv1, sent_compressed):
    """Echoes are compressed from --deflate-min-bytes (256) on, and only
    when that makes them smaller; what the client sent does not matter."""
    ws, answers = raw_echo(echo_server)
    try:
        msg = echo_payload(size, kind, seed=size)
        msg = msg.encode() if isinstance(msg, str) else msg
        op = OP_BINARY if kind == "random-binary" else OP_TEXT
        if sent_compressed:
            ws.send_frame(op, deflate_payload(msg), rsv=RSV1)
        else:
            ws.send_frame(op, msg)
        rsv, rop, payload = recv_data(ws)
        assert (rsv == RSV1, rop) == (want_rsv1, op)
        assert (inflate_payload(payload) if rsv else payload) == msg
        if rsv:
            assert len(payload) < len(msg)
    finally:
        ws.close()


@pytest.mark.parametrize("payload", [b"\x00", b"", b"\x02\x00", b"\x03\x00"], ids=["stored-00", "nothing", "fixed-empty",
                                                                                     "fixed-final-empty"])
def test_compressed_empty_message(echo_server, payload):
    """The empty message as senders encode it (§7.2.3.6: 0x00) and as zlib
    writes it; all inflate to nothing and come back as an empty text."""
    ws, _ = raw_echo(echo_server)
    try:
        ws.send_frame(OP_TEXT, payload, rsv=RSV1)
        assert recv_data(ws) == (0, OP_TEXT, b"")
        ws.send_frame(OP_TEXT, b"still fine")
        assert recv_data(ws) == (0, OP_TEXT, b"still fine")
    finally:
        ws.close()


@pytest.fixture(scope="module")
def capped_server():
    from conftest import Server
    s = Server(["--echo", "--max-message-bytes", "1048576", *SHARDS])
    yield s
    assert s.stop() == 0, s.logs()


@pytest.fixture(scope="module")
def bomb():
    """64 MiB of zeros, raw-deflated at level 9: ~64 KiB on the wire."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(MIB)
    out = b"".join(c.compress(chunk) for _ in range(64)) + c.flush(zlib.Z_SYNC_FLUSH)
    assert len(out) < 128 * KIB
    return out[:-4]


@pytest.mark.parametrize("n,ok", [(MIB, True), (MIB + 1, False)], ids=["cap", "cap+1"])
@pytest.mark.parametrize("op", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_inflated_size_cap(capped_server, n, ok, op):
    """--max-message-bytes bounds the inflated size: exactly the cap is
    echoed, one byte more is 1009 (the compressed form is tiny)."""
    ws, _ = raw_echo(capped_server)
    try:
        msg = (b"abcdefgh" * (n // 8 + 1))[:n]
        ws.send_frame(op, deflate_payload(msg), rsv=RSV1)
        if ok:
            compressed, rop, got = recv_message(ws, timeout=20)
            assert (compressed, rop, got == msg) == (True, op, True)
        else:
            ws.expect_close(1009, timeout=5)
    finally:
        ws.close()


@pytest.mark.parametrize("path", ["/echo", "/ws"])
def test_decompression_bomb_closes_1009_fast(start_server, bomb, path):
    """One 64 KiB compressed frame that inflates to 64 MiB: 1009 within a
    second, without the server inflating it all, while a subscriber on the
    same server keeps getting broadcasts (before, during, after)."""
    s = start_server("--echo", "--max-message-bytes", "1048576", *SHARDS)
    topic = "pmd:bomb" + path.replace("/", ":")
    sub = RawSub(s, [topic])
    plain = PyClient(s, [topic], compression=None)
    try:
        warm_up(s, topic, [sub, plain], 1)
        for round_ in range(3):
            ws, head = handshake(s, path, ["permessage-deflate"])
            assert ext_answers(head) == [PMD_RESPONSE]
            t0 = time.monotonic()
            ws.send_frame(OP_TEXT if round_ != 1 else OP_BINARY, bomb, rsv=RSV1)
            code, reason, before = ws.expect_close(1009, timeout=5)
            elapsed = time.monotonic() - t0
            assert before == [] and elapsed < 1.0, (elapsed, before)
            ws.close()
            text = msg_json(topic, round_, 1200)
            publish(s, topic, text.decode())
            sub.expect([text], rsv1=lambda t: True)
            plain.expect([text])
        # many bombs at once, from parallel connections, still cheap
        conns = [handshake(s, path, ["permessage-deflate"])[0] for _ in range(20)]
        t0 = time.monotonic()
        for ws in conns:
            ws.send_frame(OP_TEXT, bomb, rsv=RSV1)
        text = msg_json(topic, 99, 1200)
        publish(s, topic, text.decode())
        sub.expect([text], rsv1=lambda t: True)
        for ws in conns:
            ws.expect_close(1009, timeout=5)
            ws.close()
        assert time.monotonic() - t0 < 5.0
        sub.close()
        plain.close()
    finally:
        sub.ws.close()


@pytest.fixture(scope="module")
def big_bomb():
    """900 MiB of zeros in 0.9 MiB, under the 1 MiB frame cap. After the
    first MiB the compressor's state repeats, so does its output: the
    stream is built from two compressed MiB, not by compressing 900."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(bytes(MIB)) + c.flush(zlib.Z_SYNC_FLUSH)
    again = c.compress(bytes(MIB)) + c.flush(zlib.Z_SYNC_FLUSH)
    assert again == c.compress(bytes(MIB)) + c.flush(zlib.Z_SYNC_FLUSH)
    out = (first + again * 899)[:-4]
    assert len(out) < MIB
    return out


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_decompression_bomb_cpu_is_bounded(capped_server, big_bomb):
    """Ten 0.9 MiB frames that would inflate to 900 MiB each (~2 s of zlib
    each, here): all closed 1009, for a fraction of a second of server CPU
    in all: inflation stops at --max-message-bytes."""
    s = capped_server
    cpu0 = cpu_seconds(s.proc.pid)
    conns = [handshake(s, "/echo", ["permessage-deflate"])[0] for _ in range(10)]
    for ws in conns:
        ws.send_frame(OP_BINARY, big_bomb, rsv=RSV1)
    for ws in conns:
        ws.expect_close(1009, timeout=10)
        ws.close()
    used = cpu_seconds(s.proc.pid) - cpu0
    assert used < 1.5, f"server used {used:.2f} s of CPU on 10 bombs"
    with connect(s.url + "/echo", max_size=None, proxy=None, open_timeout=5, ping_interval=None) as ws:
        ws.send("alive" * 100)
        assert ws.recv(timeout=5) == "alive" * 100


def fixed_huffman_distance_too_far():
    """A fixed-Huffman block: literal 'a', then a match of length 3 at
    distance 2 (only 1 byte exists): 'invalid distance too far back'."""
    bits = []

    def put(v, n, msb=False):
        if msb:
            bits.extend((v >> (n - 1 - i)) & 1 for i in range(n))
        else:
            bits.extend((v >> i) & 1 for i in range(n))

    put(1, 1)  # BFINAL
    put(1, 2)  # BTYPE 01 fixed
    put(0x30 + ord("a"), 8, msb=True)  # literal 'a' (0-143: 8 bits from 0x30)
    put(0b0000001, 7, msb=True)  # length code 257 = length 3
    put(1, 5, msb=True)  # distance code 1 = distance 2
    put(0, 7, msb=True)  # end of block
    while len(bits) % 8:
        bits.append(0)
    return bytes(sum(b << i for i, b in enumerate(bits[k:k + 8])) for k in range(0, len(bits), 8))


def _truncated():
    p = deflate_payload(json_text(5000, seed=11).encode())
    return p[: len(p) // 2]


INVALID_DEFLATE = {
    "reserved-btype": b"\xff\xff\xff\xff",
    "stored-nlen-mismatch": b"\x00\x05\x00\x00\x00hello",
    "distance-too-far": fixed_huffman_distance_too_far(),
    "data-after-final-block": deflate_payload(b"hello" * 100, final=True) + b"\x01\x02\x03",
    "truncated-mid-block": _truncated(),
    "garbage": random_bytes(300, seed=5),
}
# zlib itself raises on these; the other two are invalid by RFC 7692 §7.2.2
# (the message must end at a block boundary / with its final block), which
# zlib's streaming API does not check: ringcast does (src/ws/deflate.c).
ZLIB_REJECTS = {"reserved-btype", "stored-nlen-mismatch", "distance-too-far", "garbage"}


@pytest.mark.parametrize("name", list(INVALID_DEFLATE))
@pytest.mark.parametrize("op", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_invalid_deflate_closes_1007(echo_server, name, op):
    if name in ZLIB_REJECTS:
        with pytest.raises(zlib.error):
            strict_inflate(INVALID_DEFLATE[name], 15)  # it really is invalid
    ws, _ = raw_echo(echo_server)
    try:
        ws.send_frame(op, INVALID_DEFLATE[name], rsv=RSV1)
        ws.expect_close(1007)
    finally:
        ws.close()


def test_invalid_deflate_on_ws_endpoint_1007(start_server):
    s = start_server(*SHARDS)
    ws, _ = handshake(s, "/ws", ["permessage-deflate"])
    try:
        ws.send_frame(OP_TEXT, INVALID_DEFLATE["reserved-btype"], rsv=RSV1)
        ws.expect_close(1007)
    finally:
        ws.close()


@pytest.mark.parametrize("bad", [b"\xff\xfe" + b"x" * 400, ("é" * 300).encode()[:-1], b"ok " * 200 + b"\xed\xa0\x80",
                                 b"\xc0\xaf" + b"{}" * 200], ids=["ff-fe", "cut-sequence", "surrogate", "overlong"])
@pytest.mark.parametrize("path", ["/echo", "/ws"])
def test_compressed_invalid_utf8_text_1007(echo_server, bad, path):
    s = echo_server
    ws, _ = handshake(s, path, ["permessage-deflate"])
    try:
        ws.send_frame(OP_TEXT, deflate_payload(bad), rsv=RSV1)
        ws.expect_close(1007)
    finally:
        ws.close()
    if path == "/echo":  # the same bytes as binary are fine
        ws, _ = handshake(s, path, ["permessage-deflate"])
        try:
            ws.send_frame(OP_BINARY, deflate_payload(bad), rsv=RSV1)
            compressed, op, got = recv_message(ws)
            assert (op, got) == (OP_BINARY, bad)
        finally:
            ws.close()


def test_compressed_fragmented_invalid_utf8_1007(echo_server):
    """Invalid UTF-8 in the inflated text of a fragmented compressed message."""
    p = deflate_payload(b'{"a":"' + b"x" * 500 + b'\xff"}')
    ws, _ = raw_echo(echo_server)
    try:
        ws.send_frame(OP_TEXT, p[:10], fin=False, rsv=RSV1)
        ws.send_frame(OP_CONT, p[10:], fin=True)
        ws.expect_close(1007)
    finally:
        ws.close()


@pytest.mark.parametrize("case", ["rsv1-on-continuation", "rsv1-on-continuation-of-plain", "rsv1-on-ping",
                                  "rsv1-on-close", "rsv2", "rsv3", "rsv1-on-final-continuation-only"])
def test_rsv_misuse_1002(echo_server, case):
    ws, _ = raw_echo(echo_server)
    p = deflate_payload(json_text(1000).encode())
    try:
        if case == "rsv1-on-continuation":
            ws.send_frame(OP_TEXT, p[:20], fin=False, rsv=RSV1)
            ws.send_frame(OP_CONT, p[20:], fin=True, rsv=RSV1)
        elif case == "rsv1-on-continuation-of-plain":
            ws.send_frame(OP_TEXT, b"plain ", fin=False)
            ws.send_frame(OP_CONT, p, fin=True, rsv=RSV1)
        elif case == "rsv1-on-final-continuation-only":
            ws.send_frame(OP_TEXT, p[:20], fin=False, rsv=RSV1)
            ws.send_frame(OP_CONT, p[20:40], fin=False)
            ws.send_frame(OP_CONT, p[40:], fin=True, rsv=RSV1)
        elif case == "rsv1-on-ping":
            ws.send_frame(OP_PING, b"\x02\x00", rsv=RSV1)
        elif case == "rsv1-on-close":
            ws.send_frame(OP_CLOSE, struct.pack("!H", 1000), rsv=RSV1)
        elif case == "rsv2":
            ws.send_frame(OP_TEXT, p, rsv=2)
        else:
            ws.send_frame(OP_TEXT, p, rsv=1)
        ws.expect_close(1002)
    finally:
        ws.close()


# ================================================================ server_max_window_bits


def test_strict_check_rejects_a_window_15_stream():
    """The reference for the window checks below: 4 KiB of a 1000-byte block
    repeated, compressed with a 32 KiB window (matches 1000 bytes back), is
    rejected by the strict inflate with a 512-byte window, although an
    ordinary one-shot inflate with that window accepts it; the same data
    compressed with a 512-byte window passes."""
    data = random_bytes(1000, seed=42) * 4 + b"tail"
    p15 = deflate_payload(data, wbits=15, level=9)
    assert len(p15) < 1500  # it found the far matches
    assert inflate_payload(p15, wbits=15) == data
    with pytest.raises(zlib.error, match="too far back"):
        strict_inflate(p15, 9)
    assert strict_inflate(p15, 10) == data  # 1000 < 1024
    p9 = deflate_payload(data, wbits=9, level=9)
    assert strict_inflate(p9, 9) == data
    # the one-shot inflate with a large buffer does not see the violation
    assert zlib.decompressobj(wbits=-9).decompress(p15 + b"\x00\x00\xff\xff") == data


ECHO_WINDOW_MSGS = [
    ("json-600", json_text(600, seed=1)),
    ("json-4k", json_text(4096, seed=2)),
    ("json-64k", json_text(65536, seed=3)),
    ("far-repeats-8k", far_repeats(8192, block=700)),
    ("far-repeats-4k-300", far_repeats(4096, block=300)),
    ("near-repeats-16k", far_repeats(16384, block=100)),
]


@pytest.mark.parametrize("bits", [8, 9, 10, 12])
def test_echo_honours_server_max_window_bits(echo_server, bits):
    """Echoes to a client that offered server_max_window_bits=B inflate with
    a 2^B window, checked one output byte at a time (or come uncompressed)."""
    ws, answers = raw_echo(echo_server, f"permessage-deflate; server_max_window_bits={bits}")
    try:
        assert answers == [expected_answer(bits)]
        n_compressed = 0
        for name, text in ECHO_WINDOW_MSGS:
            msg = text.encode()
            for sent_compressed in (True, False):
                if sent_compressed:
                    ws.send_frame(OP_TEXT, deflate_payload(msg), rsv=RSV1)
                else:
                    ws.send_frame(OP_TEXT, msg)
                rsv, op, payload = recv_data(ws, timeout=20)
                assert op == OP_TEXT
                if rsv:
                    n_compressed += 1
                    try:
                        got = strict_inflate(payload, bits)
                    except zlib.error as e:
                        raise AssertionError(f"{name}: echo refers beyond the {1 << bits}-byte window: {e}")
                    assert got == msg, name
                    assert len(payload) < len(msg)
                else:
                    assert payload == msg, name
        # the repetitive messages compress even in a small window
        assert n_compressed >= 6, n_compressed
        # and the far-repeat data would have failed the check at window 15
        with pytest.raises(zlib.error):
            strict_inflate(deflate_payload(far_repeats(8192, block=700).encode(), wbits=15), min(bits, 9))
    finally:
        ws.close()


def test_broadcast_honours_server_max_window_bits(start_server):
    """A /ws subscriber with server_max_window_bits=9 gets only frames that
    inflate within 512 bytes (the shared window-15 variant only when every
    compressed message in it is ≤ 512 bytes); a window-15 subscriber of the
    same topic gets everything ≥256 bytes compressed."""
    s = start_server(*SHARDS)
    topic = "pmd:win9"
    small = RawSub(s, [topic], offer="permessage-deflate; server_max_window_bits=9")
    big = RawSub(s, [topic])
    assert small.wbits == 9
    warm_up(s, topic, [small, big], 1)  # warm-up messages are 1500 B: plain for small
    sizes = [300, 400, 511, 512, 513, 700, 1000, 4000, 16000, 256, 260]
    msgs = [msg_json(topic, i, n) for i, n in enumerate(sizes)]
    for m in msgs:
        publish(s, topic, m.decode())
    small.expect(msgs)  # strict 2^9 inflate of every RSV1 frame inside
    big.expect(msgs, rsv1=lambda t: len(t) >= 256)
    assert any(c for c, _ in small.seen[-len(msgs):]), "nothing compressed for the window-9 subscriber"
    # a frame holding a large message: the window-9 subscriber still decodes everything
    batch = [msg_json(topic, 50, 300), msg_json(topic, 51, 3000)]
    body = "[" + ",".join('{"topic":"%s","data":%s}' % (topic, m.decode()) for m in batch) + "]"
    assert publish_raw(s, body) == (200, {"published": 2})
    small.expect(batch)
    big.expect(batch, rsv1=lambda t: True)
    small.close()
    big.close()
