"""The broadcast engine end to end: what subscribers of /ws receive for what
is published with POST /api/v1/publish, the demo feed and SIGTERM.

  * delivery: the exact JSON text of "data", one text message each, exactly
    once, in publish order per topic, to topic subscribers, "*" (firehose)
    subscribers and, for broadcasts, every /ws connection; nothing after an
    unsubscribe ack;
  * batch windows (--batch-ms) and the frame/delivery counters in /metrics;
  * backpressure: a reader that stops is closed 1008 "slow consumer" on a
    plain topic and conflated (keeps the latest) on a conflatable one, while
    everybody else still gets everything;
  * liveness (--idle-timeout-s), the --demo feed, graceful shutdown;
  * scale: 2,000 clients on 200 topics with churn and firehose readers.

Every test runs with --shards 2 so topics, publishers and subscribers are
spread over both shards. Messages carry their topic and sequence number, so
a loss, a duplicate, a reordering or a delivery to the wrong connection
fails the check that follows.
"""
import asyncio
import base64
import http.client
import json
import os
import random
import resource
import signal
import socket
import struct
import threading
import time

import pytest
from websockets.asyncio.client import connect

import wsraw
from wsraw import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT

SHARDS = ("--shards", "2")
pytestmark = pytest.mark.timeout(120)  # a hung test fails instead of stalling the run (pytest-timeout)


@pytest.fixture(autouse=True)
def _fds(enough_fds):
    """2,000+ clients (conftest's enough_fds)."""


# ---------------------------------------------------------------- helpers


OPEN_SUBS = []


@pytest.fixture(autouse=True)
def close_subs_first(start_server):
    """Closes the test's raw clients before start_server stops the server,
    so a drain never waits --close-timeout-ms for clients nobody reads."""
    yield
    while OPEN_SUBS:
        OPEN_SUBS.pop().close()


class CloseFrame(Exception):
    def __init__(self, code, reason):
        super().__init__(f"close frame {code} {reason!r}")
        self.code, self.reason = code, reason


class EOF(Exception):
    pass


class Sub:
    """A raw /ws client over a blocking socket. Unlike wsraw.RawWS it parses
    with an offset into one buffer, so reading megabytes of small frames
    stays linear. rcvbuf (set before connecting) shrinks the kernel's
    receive buffer, for clients that are meant to stall."""

    def __init__(self, server, rcvbuf=None, timeout=10.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        OPEN_SUBS.append(self)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((server.host, server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        self.buf = bytearray()
        self.pos = 0
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        end = self.buf.index(b"\r\n\r\n") + 4
        assert self.buf.startswith(b"HTTP/1.1 101 "), bytes(self.buf[:end])
        self.pos = end

    def _fill(self):
        try:
            chunk = self.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            raise EOF("reset")
        if not chunk:
            raise EOF("eof")
        if self.pos > (1 << 20):
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += chunk

    def _need(self, n):
        while len(self.buf) - self.pos < n:
            self._fill()

    def frame(self):
        """(fin, opcode, payload) of the next frame."""
        self._need(2)
        b0, b1 = self.buf[self.pos], self.buf[self.pos + 1]
        assert not b1 & 0x80, "server frame is masked"
        assert not b0 & 0x70, "reserved bits set"
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
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv(self):
        """The next text message's bytes; raises CloseFrame / EOF."""
        parts = []
        while True:
            fin, op, payload = self.frame()
            if op in (OP_PING, OP_PONG):
                continue
            if op == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise CloseFrame(code, payload[2:])
            assert op in (OP_TEXT, 0) and (op == OP_TEXT) == (not parts), f"opcode {op}"
            parts.append(payload)
            if fin:
                return b"".join(parts)

    def recv_json(self):
        return json.loads(self.recv())

    def send(self, obj, opcode=OP_TEXT):
        payload = obj if isinstance(obj, (str, bytes)) else json.dumps(obj)
        self.sock.sendall(wsraw.frame(opcode, payload))

    def call(self, obj):
        self.send(obj)
        return self.recv_json()

    def subscribe(self, *topics, key="markets"):
        ack = self.call({"type": "subscribe", key: list(topics)})
        assert ack["type"] == "subscribed" and all(t in ack[key] for t in topics), ack
        return ack[key]

    def ping_barrier(self):
        """Sends a ping and returns every message that arrives before its
        pong (the pong proves the server has nothing else queued before it)."""
        self.send({"type": "ping"})
        before = []
        while True:
            m = self.recv()
            if m == b'{"type":"pong"}':
                return before
            before.append(m)

    def close_reply(self, code=1000):
        try:
            self.send(struct.pack("!H", code), opcode=OP_CLOSE)
        except OSError:
            pass

    def expect_eof(self, timeout=5.0):
        self.sock.settimeout(timeout)
        while True:
            try:
                self._fill()
            except EOF:
                return
            except socket.timeout:
                raise AssertionError("server did not close the TCP connection")

    def close(self):
        self.sock.close()


class Publisher:
    """POST /api/v1/publish over one keep-alive connection (one publisher:
    its requests are sequential, each answered before the next is sent);
    /metrics over a second one, to the admin listener."""

    def __init__(self, server):
        self.server = server
        self.conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
        self.admin = http.client.HTTPConnection(server.host, server.admin_port, timeout=30)

    def post(self, body, path="/api/v1/publish"):
        if not isinstance(body, (str, bytes)):
            body = json.dumps(body, separators=(",", ":"))
        if isinstance(body, str):
            body = body.encode()
        self.conn.request("POST", path, body, {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data else None

    def publish(self, body):
        status, resp = self.post(body)
        assert status == 200, resp
        return resp["published"]

    def metrics(self):
        self.admin.request("GET", "/metrics")
        resp = self.admin.getresponse()
        text = resp.read().decode()
        assert resp.status == 200
        return {l.split()[0].removeprefix("ringcast_"): int(l.split()[1])
                for l in text.splitlines() if l and not l.startswith("#")}

    def close(self):
        self.conn.close()
        self.admin.close()


def publish_new_connection(server, items):
    """One publish on a fresh connection (Connection: close)."""
    c = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        c.request("POST", "/api/v1/publish", json.dumps(items, separators=(",", ":")),
                  {"Connection": "close", "Content-Type": "application/json"})
        resp = c.getresponse()
        body = resp.read()
        assert resp.status == 200, body
        return json.loads(body)["published"]
    finally:
        c.close()


class Worker(threading.Thread):
    """A thread whose exception (or result) the test collects with .result()."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True)
        self.fn, self.args, self.exc, self.value = fn, args, None, None

    def run(self):
        try:
            self.value = self.fn(*self.args)
        except BaseException as e:
            self.exc = e

    def result(self, timeout=60):
        self.join(timeout)
        assert not self.is_alive(), f"{self.fn.__name__} still running after {timeout}s"
        if self.exc:
            raise self.exc
        return self.value


def wait_until(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def ws_connect(server, **kw):
    opts = dict(compression=None, proxy=None, ping_interval=None, max_size=None, open_timeout=60,
                close_timeout=5, max_queue=None)
    opts.update(kw)
    return connect(server.url + "/ws", **opts)


def data(topic, i, pad=""):
    """The exact JSON text published for message i of topic (compact, so
    json.dumps with separators=(",", ":") writes the same bytes)."""
    return f'{{"t":"{topic}","i":{i}{pad}}}'.encode()


def item(topic, i):
    return {"topic": topic, "data": {"t": topic, "i": i}}


def split_by_topic(msgs):
    """{topic: [i, ...]} of messages made by data()."""
    out = {}
    for m in msgs:
        d = json.loads(m)
        out.setdefault(d["t"], []).append(d["i"])
    return out


# ---------------------------------------------------------------- delivery


EXACT_VALUES = [
    '{"a" : 12345678901234567890 ,"b":[ 1.10 , -0.0, 1e400, 2E-3, -1E+2 ], "c" :{ } }',
    "12345678901234567890",
    "1.10",
    "-0",
    "0.1000000000000000055511151231257827",
    r'"\u00e9\n\"q\" \\ \/ \ud83d\ude00 \u0000"',
    '"raw caf\u00e9 \u2603 \U0001f600"',
    "[[1,[2,[3,[]]]],{},[[]]]",
    '[ 1 ,\t2 ,\n 3\r\n]',
    '{"nested":{"deep":[{"x":{"y":[1,2,{"z":null}]}}]},"k\\u0041":"v"}',
    "true",
    "false",
    "null",
    '""',
    "{}",
    "[]",
    '"' + "m" * 125 + '"',  # 127 bytes: a 16-bit WebSocket length
    '"' + "L" * 70000 + '"',  # a 64-bit WebSocket length
    '{"dup":1,"dup":2}',
]


def test_data_is_delivered_as_the_exact_json_text_published(start_server):
    s = start_server(*SHARDS)
    subs = [Sub(s) for _ in range(8)]
    for i, c in enumerate(subs):
        if i == 0:
            assert c.call({"type": "subscribe_all"}) == {"type": "subscribed", "markets": ["*"]}
        elif i == 1:
            c.call({"type": "subscribe_all"})
            c.subscribe("exact")  # firehose and the topic itself: still once
        else:
            c.subscribe("other", "exact")
    # One array with odd whitespace around every token of the envelope.
    body = "[\n" + " ,\n".join(f' {{ "topic" :"exact" ,  "data" :  {v}  ,"x":1}}' for v in EXACT_VALUES) + "\n]"
    pub = Publisher(s)
    assert pub.publish(body) == len(EXACT_VALUES)
    # Single objects, "data" before "topic", escapes in the keys.
    singles = ['{ "data" :[1, 2] , "topic":"exact" }', '{"d\\u0061ta":  {"k":1.50}  ,"topic":"exact"}',
               '\t{"topic":"exact","data":"last"}\r\n']
    for b in singles:
        assert pub.publish(b) == 1
    expected = [v.encode() for v in EXACT_VALUES] + [b"[1, 2]", b'{"k":1.50}', b'"last"']
    for c in subs:
        got = [c.recv() for _ in expected]
        assert got == expected
        assert c.ping_barrier() == []  # exactly once: nothing more


def test_exactly_once_in_order_across_requests_connections_and_shards(start_server):
    s = start_server(*SHARDS)
    topics = [f"ord{k}" for k in range(8)]
    n_per = 300
    sets = [topics[k % 8 : k % 8 + 3] for k in range(12)] + [topics]
    subs = []
    for st in sets:
        c = Sub(s)
        c.subscribe(*st)
        subs.append((c, st))
    fire = Sub(s)
    fire.call({"type": "subscribe_all"})
    fire.subscribe(topics[0], topics[5])
    subs.append((fire, topics))

    def keepalive_publisher():
        """Even topics, one keep-alive connection, requests of 1..40 items."""
        p = Publisher(s)
        nxt = {t: 0 for t in topics[0::2]}
        rng = random.Random(1)
        while any(v < n_per for v in nxt.values()):
            batch = []
            for _ in range(rng.randint(1, 40)):
                t = rng.choice([t for t, v in nxt.items() if v < n_per] or [None])
                if t is None:
                    break
                batch.append(item(t, nxt[t]))
                nxt[t] += 1
            assert p.publish(batch) == len(batch)
        p.close()

    def new_connection_publisher():
        """Odd topics, a new connection for every request: each request
        lands on either shard, and must still follow the previous one."""
        rng = random.Random(2)
        nxt = {t: 0 for t in topics[1::2]}
        while any(v < n_per for v in nxt.values()):
            batch = []
            for _ in range(rng.randint(1, 60)):
                t = rng.choice([t for t, v in nxt.items() if v < n_per] or [None])
                if t is None:
                    break
                batch.append(item(t, nxt[t]))
                nxt[t] += 1
            assert publish_new_connection(s, batch) == len(batch)

    def read(c, st):
        return [c.recv() for _ in range(n_per * len(st))]

    readers = [Worker(read, c, st) for c, st in subs]
    publishers = [Worker(keepalive_publisher), Worker(new_connection_publisher)]
    for w in readers + publishers:
        w.start()
    for w in publishers:
        w.result()
    for idx, ((c, st), w) in enumerate(zip(subs, readers)):
        got = w.result()
        assert split_by_topic(got) == {t: list(range(n_per)) for t in st}, f"subscriber {idx} of {st}"
        assert c.ping_barrier() == []


@pytest.mark.parametrize("batch_ms", ["0", "20"])
def test_batch_windows_deliver_everything_once_in_order(start_server, batch_ms):
    s = start_server(*SHARDS, "--batch-ms", batch_ms)
    topics = ["bw-a", "bw-b", "bw-c"]
    subs = []
    for k in range(9):
        c = Sub(s)
        st = topics[: 1 + k % 3]
        c.subscribe(*st)
        subs.append((c, st))
    fire = Sub(s)
    fire.call({"type": "subscribe_all"})
    subs.append((fire, topics))
    pub = Publisher(s)
    nxt = dict.fromkeys(topics, 0)
    rng = random.Random(int(batch_ms))
    for r in range(60):
        batch = []
        for _ in range(rng.randint(1, 30)):
            t = rng.choice(topics)
            batch.append(item(t, nxt[t]))
            nxt[t] += 1
        assert pub.publish(batch) == len(batch)
        if r % 10 == 0:
            time.sleep(0.03)  # let some windows close mid-stream
    for c, st in subs:
        got = [c.recv() for _ in range(sum(nxt[t] for t in st))]
        assert split_by_topic(got) == {t: list(range(nxt[t])) for t in st}
        assert c.ping_barrier() == []


def test_batch_window_shares_one_frame_between_messages_and_subscribers(start_server):
    s = start_server(*SHARDS, "--batch-ms", "50")
    subs = [Sub(s) for _ in range(10)]
    for c in subs:
        c.subscribe("win")
    pub = Publisher(s)
    before = pub.metrics()
    # 100 messages in 20 quick requests (a few ms): one window, at most two.
    t0 = time.time()
    for r in range(20):
        pub.publish([item("win", r * 5 + k) for k in range(5)])
    elapsed = time.time() - t0
    assert elapsed < 0.5, "publishing was too slow to test a 50 ms window"
    windows = int(elapsed / 0.05) + 2  # 2 when it took < 50 ms, as it normally does
    for c in subs:
        assert split_by_topic([c.recv() for _ in range(100)]) == {"win": list(range(100))}
    after = pub.metrics()
    d = {k: after[k] - before[k] for k in after}
    assert d["messages_published_total"] == 100
    assert d["deliveries_total"] == 1000
    assert 1 <= d["frames_built_total"] <= windows, (d["frames_built_total"], elapsed)
    # One request of 100 messages: one frame, 1000 deliveries.
    pub.publish([item("win", 100 + k) for k in range(100)])
    for c in subs:
        assert split_by_topic([c.recv() for _ in range(100)]) == {"win": list(range(100, 200))}
        assert c.ping_barrier() == []
    again = pub.metrics()
    assert again["frames_built_total"] - after["frames_built_total"] == 1
    assert again["deliveries_total"] - after["deliveries_total"] == 1000
    assert again["messages_published_total"] - after["messages_published_total"] == 100
    assert again["delivery_bytes_total"] - after["delivery_bytes_total"] == 10 * sum(
        len(data("win", i)) + 2 for i in range(100, 200))


def test_window_holds_messages_no_longer_than_batch_ms(start_server):
    s = start_server(*SHARDS, "--batch-ms", "200")
    c = Sub(s)
    c.subscribe("late")
    pub = Publisher(s)
    t0 = time.time()
    pub.publish(item("late", 0))
    assert c.recv() == data("late", 0)
    waited = time.time() - t0
    assert 0.15 < waited < 1.0, waited


def test_broadcast_reaches_every_ws_connection(start_server):
    s = start_server(*SHARDS)
    subs = [Sub(s) for _ in range(10)]
    subs[0].subscribe("bc-t")
    subs[1].call({"type": "subscribe_all"})
    subs[2].subscribe("elsewhere")
    subs[3].subscribe("bc-t")
    subs[3].call({"type": "unsubscribe_all"})
    subs[4].subscribe("bc-t")
    subs[4].call({"type": "unsubscribe", "markets": ["bc-t"]})
    # 5..9 never sent anything
    pub = Publisher(s)
    body = []
    for i in range(50):
        body.append({"broadcast": True, "data": {"b": i}})
        body.append(item("bc-t", i))
    assert pub.publish(body) == 100
    assert pub.publish({"broadcast": True, "topic": "ignored", "data": "end"}) == 1
    bcs = [json.dumps({"b": i}, separators=(",", ":")).encode() for i in range(50)] + [b'"end"']
    for k, c in enumerate(subs):
        got = [c.recv() for _ in range(len(bcs) + (50 if k in (0, 1) else 0))]
        assert c.ping_barrier() == []
        topic_msgs = [m for m in got if m.startswith(b'{"t"')]
        assert [m for m in got if not m.startswith(b'{"t"')] == bcs, k
        want = [data("bc-t", i) for i in range(50)] if k in (0, 1) else []
        assert topic_msgs == want, k


def test_nothing_arrives_after_the_unsubscribe_ack(start_server):
    """While a publisher streams to "u" and "keep", clients unsubscribe from
    "u" (or everything) at different moments: after the ack, no message of
    what they left may arrive, and "keep" continues without a gap."""
    s = start_server(*SHARDS)
    stop = threading.Event()
    published = {"n": 0}

    def stream():
        p = Publisher(s)
        i = 0
        while not stop.is_set():
            p.publish([item("u", i), item("keep", i), item("u", i + 1), item("keep", i + 1)])
            i += 2
            published["n"] = i
        p.close()

    clients = [Sub(s) for _ in range(8)]
    for c in clients:
        c.subscribe("u", "keep")
    streamer = Worker(stream)
    streamer.start()
    try:
        for k, c in enumerate(clients):
            wait_until(lambda: published["n"] > 200 * (k + 1), 10, "the stream")
            c.send({"type": "unsubscribe_all"} if k % 2 else {"type": "unsubscribe", "markets": ["u"]})
            before = []
            while True:
                m = c.recv()
                if m.startswith(b'{"type"'):
                    break
                before.append(m)
            assert json.loads(m) == {"type": "subscribed", "markets": [] if k % 2 else ["keep"]}
            seen = split_by_topic(before)
            assert seen["u"] == list(range(len(seen["u"]))) and len(seen["u"]) > 0
            assert seen["keep"] == list(range(len(seen["keep"])))
            c.last_keep = seen["keep"][-1]
            c.k = k
        # Keep streaming a while, then check what each got after its ack.
        n_at = published["n"]
        wait_until(lambda: published["n"] > n_at + 400, 10, "more of the stream")
    finally:
        stop.set()
        streamer.result(10)
    n = published["n"]
    time.sleep(0.3)  # what is still in flight between the shards lands
    for c in clients:
        after = []
        if c.k % 2 == 0:  # still subscribed to "keep": read up to its last message
            while not after or after[-1] != data("keep", n - 1):
                after.append(c.recv())
        after += c.ping_barrier()
        per = split_by_topic(after)
        assert "u" not in per, f"client {c.k} got {len(per['u'])} messages of u after its unsubscribe ack"
        if c.k % 2:
            assert per == {}, f"client {c.k} got messages after unsubscribe_all"
        else:
            assert per == {"keep": list(range(c.last_keep + 1, n))}
    # Subscribing again resumes delivery.
    c = clients[0]
    c.subscribe("u")
    pub = Publisher(s)
    pub.publish(item("u", 10**6))
    assert c.recv() == data("u", 10**6)


# ---------------------------------------------------------------- backpressure


def stalled_subscriber(s, topic):
    """A raw client that subscribes and then does not read (with a small
    kernel receive buffer, so the server's queue is what fills)."""
    c = Sub(s, rcvbuf=4096)
    c.subscribe(topic)
    return c


def run_backpressure(s, topic, stop_when, extra_after, on_hit=None, n_readers=20, msg_size=1000,
                     per_request=10, lag=30, cap_msgs=15000):
    """n_readers websockets clients read `topic` (where a stalled client is
    subscribed too) and keep up. Messages of
    ~msg_size bytes are published per_request per request, keeping the
    readers at most `lag` messages behind (so only the stalled client can
    fall behind the queue cap), until stop_when(metrics) holds; then
    on_hit() is called and extra_after more messages are published.
    Returns (messages published, {reader: messages}, final metrics, the
    expected bytes of message i)."""
    pad = ',"p":"' + "x" * (msg_size - 40) + '"'
    progress = [0] * n_readers
    final = {}
    out = {}
    failed = []

    def wait_for_readers(upto):
        deadline = time.time() + 30
        while min(progress) < upto:
            assert not failed, failed
            assert time.time() < deadline, f"readers stuck at {min(progress)} of {upto}"
            time.sleep(0.001)

    async def reader(k, ready):
        try:
            async with ws_connect(s) as ws:
                await ws.send(json.dumps({"type": "subscribe", "markets": [topic]}))
                assert json.loads(await ws.recv()) == {"type": "subscribed", "markets": [topic]}
                ready.release()
                got = []
                while "n" not in final or len(got) < final["n"]:
                    got.append(await asyncio.wait_for(ws.recv(decode=False), 30))
                    progress[k] = len(got)
                await ws.send('{"type":"ping"}')
                assert await ws.recv(decode=False) == b'{"type":"pong"}', f"reader {k}: more than published"
                out[k] = got
        except BaseException as e:
            failed.append(f"reader {k}: {e!r}")
            raise

    def publisher():
        p = Publisher(s)
        n = 0
        hit_at = None

        def publish_batch(n):
            wait_for_readers(n - lag)
            batch = ",".join('{"topic":"%s","data":%s}' % (topic, data(topic, n + j, pad).decode())
                             for j in range(per_request))
            assert p.publish("[" + batch + "]") == per_request
            return n + per_request

        while hit_at is None or n < hit_at + extra_after:
            n = publish_batch(n)
            if hit_at is None and n % (per_request * 10) == 0 and stop_when(p.metrics()):
                hit_at = n
                if on_hit:
                    on_hit()
            assert n < cap_msgs, f"published {n} messages and the condition never held: {p.metrics()}"
        final["n"] = n + per_request  # before the last request: readers stop once they have it
        n = publish_batch(n)
        wait_for_readers(n)
        m = p.metrics()
        p.close()
        return n, m

    async def main():
        ready = asyncio.Semaphore(0)
        tasks = [asyncio.create_task(reader(k, ready)) for k in range(n_readers)]
        for _ in range(n_readers):
            await asyncio.wait_for(ready.acquire(), 30)
        pub = asyncio.ensure_future(asyncio.to_thread(publisher))
        await asyncio.wait_for(asyncio.gather(pub, *tasks), 90)
        return pub.result()

    n, m = asyncio.run(main())
    return n, out, m, lambda i: data(topic, i, pad)


def test_slow_consumer_is_closed_1008_and_the_others_get_everything(start_server):
    s = start_server(*SHARDS, "--max-queue-bytes", "65536")

    def read_stalled():
        """Starts as soon as the server gave up on the client: reads what
        was already on its way, then the close (well within
        --close-timeout-ms), answers it and waits for the TCP close."""
        got = []
        try:
            while True:
                got.append(stalled.recv())
        except (CloseFrame, EOF) as e:
            if isinstance(e, CloseFrame):
                stalled.close_reply(1008)
                stalled.expect_eof()
            return got, e

    stalled = stalled_subscriber(s, "plain")
    stalled_reader = Worker(read_stalled)
    n, out, m, want = run_backpressure(
        s, "plain", stop_when=lambda m: m["slow_consumer_closes_total"] >= 1, extra_after=200,
        on_hit=stalled_reader.start)
    stalled_got, end = stalled_reader.result(30)
    # the kernel send buffer (--sndbuf 128K, doubled: ~256 messages) filled
    # first, then the 64 KiB queue, then 200 more were published
    assert n >= 450
    assert len(out) == 20
    for k, got in out.items():
        assert len(got) == n and all(got[i] == want(i) for i in range(n)), f"reader {k}: {len(got)} of {n}"
    assert m["slow_consumer_closes_total"] == 1
    # The stalled client: a gap-free prefix of the stream, then close 1008
    # "slow consumer", then (after its close reply) the TCP close.
    assert 0 < len(stalled_got) < n and all(m == want(i) for i, m in enumerate(stalled_got))
    assert isinstance(end, CloseFrame), f"no close frame, only {end!r}"
    assert end.code == 1008 and end.reason == b"slow consumer"


CONFLATE_CASES = [
    pytest.param(("--conflate", "px:*"), "px:AAA", id="conflate-flag"),
    pytest.param(("--conflate", "nothing-*,px:*,other"), "px:BBB", id="conflate-list"),
    pytest.param((), "demo:ZZZ", id="demo-always"),
]


@pytest.mark.parametrize("flags,topic", CONFLATE_CASES)
def test_conflatable_topic_keeps_a_slow_reader_with_the_latest(start_server, flags, topic):
    s = start_server(*SHARDS, "--max-queue-bytes", "65536", *flags)
    stalled = stalled_subscriber(s, topic)
    n, out, m, want = run_backpressure(
        s, topic, stop_when=lambda m: m["frames_conflated_total"] > 0, extra_after=500)
    assert len(out) == 20
    for k, got in out.items():
        assert len(got) == n and all(got[i] == want(i) for i in range(n)), f"reader {k}: {len(got)} of {n}"
    assert m["slow_consumer_closes_total"] == 0
    assert m["frames_conflated_total"] > 0 and m["messages_conflated_total"] >= m["frames_conflated_total"]
    # The stalled reader was not closed: it reads on and gets increasing
    # sequence numbers, with a gap where frames were conflated, up to the
    # last message published, which is the last it receives.
    got = []
    while not got or got[-1] != want(n - 1):
        got.append(stalled.recv())
    seqs = [json.loads(x)["i"] for x in got]
    assert seqs[0] == 0, seqs[:3]
    assert all(b > a for a, b in zip(seqs, seqs[1:])), "not increasing"
    assert len(seqs) < n, "nothing was conflated for the stalled reader"
    assert all(x == want(i) for x, i in zip(got, seqs))  # the bytes are intact
    # Whole frames go: the last one (the last request's 10 messages) is complete.
    assert seqs[-10:] == list(range(n - 10, n))
    assert stalled.ping_barrier() == []
    assert stalled.subscribe("more") == [topic, "more"]


# ---------------------------------------------------------------- liveness


def test_silent_client_is_closed_for_idleness(start_server):
    s = start_server(*SHARDS, "--idle-timeout-s", "2", "--idle-sweep-s", "1")
    silent = [Sub(s) for _ in range(4)]
    silent[0].subscribe("idle-topic")  # a message, then silence
    t0 = time.time()
    for c in silent:
        c.sock.settimeout(6)
        with pytest.raises(CloseFrame) as ei:
            c.recv()
        took = time.time() - t0
        assert ei.value.code in (1000, 1001), ei.value.code
        assert 1.5 < took < 4.5, took
        c.close_reply(ei.value.code)
        c.expect_eof()
    m = Publisher(s).metrics()
    assert m["idle_closes_total"] == 4
    assert m["ws_connections"] == 0


def test_listen_only_client_that_answers_pings_stays_open(start_server):
    """A browser-like client that never sends a message: the server pings it
    at half the idle timeout, its library answers, it keeps receiving."""
    import websockets

    s = start_server(*SHARDS, "--idle-timeout-s", "2", "--idle-sweep-s", "1")

    async def listen():
        async with websockets.connect(f"{s.url}/ws", ping_interval=None) as ws:  # no client pings
            await ws.send(json.dumps({"type": "subscribe", "markets": ["listen"]}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            await asyncio.sleep(5.0)  # 2.5 idle timeouts, silent except for pongs
            await asyncio.to_thread(Publisher(s).publish, item("listen", 1))
            return await asyncio.wait_for(ws.recv(), 5)

    assert asyncio.run(listen()).encode() == data("listen", 1)
    m = Publisher(s).metrics()
    assert m["idle_closes_total"] == 0
    assert m["ws_pings_sent_total"] >= 2


def test_pinging_client_stays_open(start_server):
    s = start_server(*SHARDS, "--idle-timeout-s", "2", "--idle-sweep-s", "1")
    pingers = [Sub(s) for _ in range(3)]
    pingers[0].subscribe("alive")
    t0 = time.time()
    pongs = 0
    while time.time() - t0 < 5.0:
        for c in pingers:
            assert c.call({"type": "ping"}) == {"type": "pong"}
            pongs += 1
        time.sleep(0.5)
    assert pongs >= 27
    Publisher(s).publish(item("alive", 1))
    assert pingers[0].recv() == data("alive", 1)
    assert Publisher(s).metrics()["idle_closes_total"] == 0


# ---------------------------------------------------------------- demo feed


DEMO_FLAGS = ("--demo", "--demo-topics", "8", "--demo-rate", "400", "--demo-size", "300")


def test_demo_feed(start_server):
    s = start_server(*SHARDS, *DEMO_FLAGS)
    c = Sub(s)
    assert c.call({"type": "subscribe", "markets": ["demo:BTC", "demo:ETH"]}) == {
        "type": "subscribed", "markets": ["demo:BTC", "demo:ETH"]}
    fire = Sub(s)
    fire.call({"type": "subscribe_all"})
    t0 = time.time()
    got = {"demo:BTC": [], "demo:ETH": []}
    while time.time() - t0 < 2.0:
        m = c.recv()
        now_us = time.time() * 1e6
        d = json.loads(m)
        topic = d["topic"]
        assert topic in got, topic
        prefix = f'{{"topic":"{topic}","seq":{d["seq"]},"ts":{d["ts"]},'.encode()
        assert m.startswith(prefix), m[:80]
        assert len(m) >= 300, (len(m), m)  # exactly 300: see test_demo_messages_are_exactly_demo_size
        assert abs(now_us - d["ts"]) < 1e6, (now_us, d["ts"])
        got[topic].append(d["seq"])
    for topic, seqs in got.items():
        # 400/s over 8 topics: ~50/s each
        assert len(seqs) >= 40, (topic, len(seqs))
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{topic}: gaps or reordering"
    # The firehose sees all 8 demo topics, each gap-free, at ~400/s in total.
    elapsed = time.time() - t0
    fire_msgs = fire.ping_barrier()
    per = {}
    for m in fire_msgs:
        d = json.loads(m)
        assert m.startswith(f'{{"topic":"{d["topic"]}","seq":{d["seq"]},"ts":'.encode())
        per.setdefault(d["topic"], []).append(d["seq"])
    assert len(per) == 8 and set(got) <= set(per), sorted(per)
    for topic, seqs in per.items():
        assert topic.startswith("demo:")
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), topic
    assert 0.6 * 400 * elapsed < len(fire_msgs) < 1.4 * 400 * elapsed, (len(fire_msgs), elapsed)


def test_demo_messages_are_exactly_demo_size(start_server):
    s = start_server(*SHARDS, *DEMO_FLAGS)
    c = Sub(s)
    c.call({"type": "subscribe_all"})
    sizes = {}
    t0 = time.time()
    while time.time() - t0 < 1.0:
        m = c.recv()
        sizes.setdefault(json.loads(m)["topic"], set()).add(len(m))
    assert len(sizes) == 8
    assert sizes == {t: {300} for t in sizes}, sizes


# ---------------------------------------------------------------- shutdown


def read_all_then_close(c):
    """Reads messages until a close frame; answers it and waits for the TCP
    close. Returns (messages, close code, close reason)."""
    got = []
    try:
        while True:
            got.append(c.recv())
    except CloseFrame as e:
        c.close_reply(e.code)
        c.expect_eof()
        return got, e.code, e.reason


def test_sigterm_delivers_every_queued_message_then_1001(start_server):
    """Clients that have not read anything yet when SIGTERM arrives: their
    send queues hold megabytes; they get all of it, then 1001, and the
    process exits 0."""
    s = start_server(*SHARDS, "--max-queue-bytes", str(64 << 20))
    clients = [Sub(s, rcvbuf=8192) for _ in range(6)]
    topics = ["st-a", "st-b"]
    for k, c in enumerate(clients):
        c.subscribe(*topics[: 1 + k % 2])
    pub = Publisher(s)
    pad = ',"p":"' + "q" * 1000 + '"'
    n = 0
    for r in range(40):
        batch = [{"topic": t, "data": json.loads(data(t, n + j, pad))} for j in range(100) for t in topics]
        assert pub.publish(json.dumps(batch, separators=(",", ":"))) == 200
        n += 100
    assert pub.metrics()["queued_bytes"] > 1 << 20, "the send queues are not holding anything"
    pub.close()
    s.proc.send_signal(signal.SIGTERM)
    readers = [Worker(read_all_then_close, c) for c in clients]
    for w in readers:
        w.start()
    for k, w in enumerate(readers):
        got, code, reason = w.result(30)
        assert code == 1001, (k, code, reason)
        st = topics[: 1 + k % 2]
        assert split_by_topic(got) == {t: list(range(n)) for t in st}, k
    assert s.proc.wait(10) == 0, s.logs()


def test_sigterm_delivers_an_open_batch_window_then_1001(start_server):
    s = start_server(*SHARDS, "--batch-ms", "300")
    clients = [Sub(s) for _ in range(6)]
    topics = [f"sw{k}" for k in range(4)]
    for c in clients:
        c.subscribe(*topics)
    pub = Publisher(s)
    assert pub.publish([item(t, i) for i in range(5) for t in topics]) == 20
    s.proc.send_signal(signal.SIGTERM)
    readers = [Worker(read_all_then_close, c) for c in clients]
    for w in readers:
        w.start()
    for k, w in enumerate(readers):
        got, code, reason = w.result(30)
        assert code == 1001, (k, code, reason)
        assert split_by_topic(got) == {t: list(range(5)) for t in topics}, k
    assert s.proc.wait(10) == 0, s.logs()


# ---------------------------------------------------------------- scale


N_STEADY, N_TOPICS, PER_TOPIC, N_FIRE, N_CHURN = 2000, 200, 100, 10, 200
REQUESTS_PER_PUBLISHER = 5


def sc(k):
    return f"sc{k:03d}"


def sc_msg(k, i):
    return f'{{"t":"{sc(k)}","seq":{i}}}'.encode()


def sc_end(k):
    return f'{{"t":"{sc(k)}","end":1}}'.encode()


def steady_topics(i):
    """3 distinct topics per client, each topic held by exactly 30 clients
    (whose connections land on both shards), listed in a rotated order."""
    ks = [(3 * i + j) % N_TOPICS for j in range(3)]
    r = i % 3
    return ks[r:] + ks[:r]


def test_2000_clients_200_topics(start_server):
    """2 shards, 2,000 clients on 3 topics each, 10 firehose clients, 200
    clients subscribing and unsubscribing in a loop; two concurrent HTTP
    publishers each own half the topics and send 100 messages per topic in
    a few big requests that interleave topics. Every steady client gets
    exactly its 3 x 100 messages in order, every firehose client all 20,000;
    no churning client ever gets a message of a topic its last ack did not
    list."""
    s = start_server(*SHARDS)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] > N_STEADY + N_FIRE + N_CHURN + 200
    results = {}
    churn_stats = {}
    errors = []

    async def read_until_ends(ws, n_ends, got):
        """Appends messages to got (in place, so a timeout still shows what
        arrived) until n_ends end markers came."""
        ends = 0
        while ends < n_ends:
            m = await ws.recv(decode=False)
            got.append(m)
            if m.endswith(b',"end":1}'):
                ends += 1

    async def steady(i, acked):
        ks = steady_topics(i)
        async with ws_connect(s) as ws:
            await ws.send(json.dumps({"type": "subscribe", "markets": [sc(k) for k in ks]}))
            ack = json.loads(await ws.recv())
            assert ack == {"type": "subscribed", "markets": [sc(k) for k in ks]}, ack
            acked.release()
            results[("steady", i)] = (ks, [])
            await read_until_ends(ws, 3, results[("steady", i)][1])
            # Nothing more: the next message after everything is the pong.
            await ws.send('{"type":"ping"}')
            extra = await ws.recv()
            assert extra == '{"type":"pong"}', f"steady {i}: extra message {extra[:80]}"

    async def firehose(k, acked):
        async with ws_connect(s) as ws:
            await ws.send('{"type":"subscribe_all"}')
            assert json.loads(await ws.recv()) == {"type": "subscribed", "markets": ["*"]}
            if k % 2 == 0:  # firehose plus two topics by name: still once each
                names = [sc(k), sc(k + 101)]
                await ws.send(json.dumps({"type": "subscribe", "markets": names}))
                assert json.loads(await ws.recv()) == {"type": "subscribed", "markets": ["*", *names]}
            acked.release()
            results[("fire", k)] = (range(N_TOPICS), [])
            await read_until_ends(ws, N_TOPICS, results[("fire", k)][1])
            await ws.send('{"type":"ping"}')
            extra = await ws.recv()
            assert extra == '{"type":"pong"}', f"firehose {k}: extra message {extra[:80]}"

    async def churner(j, started, done):
        rng = random.Random(1000 + j)
        current = []
        last_seq = {}
        bad = []
        stats = {"cycles": 0, "msgs": 0}

        def check(m):
            if m.startswith(b'{"type"'):
                return json.loads(m)
            t = m[6:11].decode()
            stats["msgs"] += 1
            if t not in current:
                bad.append(f"churner {j}: {m!r} while its last ack listed {current}")
            if not m.endswith(b',"end":1}'):
                seq = int(m[19:-1])
                if seq <= last_seq.get(t, -1):
                    bad.append(f"churner {j}: {t} seq {seq} after {last_seq[t]}")
                last_seq[t] = seq
            return None

        async def until_ack():
            while True:
                reply = check(await ws.recv(decode=False))
                if reply is not None:
                    assert reply["type"] == "subscribed", reply
                    return reply["markets"]

        async with ws_connect(s) as ws:
            first = True
            while first or not done.is_set():
                names = [sc(k) for k in rng.sample(range(N_TOPICS), rng.randint(1, 3))]
                await ws.send(json.dumps({"type": "subscribe", "markets": names}))
                ack = await until_ack()
                assert ack == names, (ack, names)
                current = ack
                if first:
                    started.release()
                    first = False
                try:
                    async with asyncio.timeout(rng.uniform(0.002, 0.04)):
                        while True:
                            check(await ws.recv(decode=False))
                except TimeoutError:
                    pass
                if rng.random() < 0.5:
                    await ws.send('{"type":"unsubscribe_all"}')
                else:
                    await ws.send(json.dumps({"type": "unsubscribe", "markets": names}))
                # Until the ack arrives the old set still applies.
                ack = await until_ack()
                assert ack == [], ack
                current = []
                stats["cycles"] += 1
            # Anything still in flight would arrive before this pong.
            await ws.send('{"type":"ping"}')
            assert await until_ack_or_pong(ws, check) == "pong"
        churn_stats[j] = stats
        errors.extend(bad)

    async def until_ack_or_pong(ws, check):
        while True:
            reply = check(await ws.recv(decode=False))
            if reply is not None:
                return reply["type"]

    def publisher(p):
        pub = Publisher(s)
        mine = [k for k in range(N_TOPICS) if k % 2 == p]
        per_req = PER_TOPIC // REQUESTS_PER_PUBLISHER
        for r in range(REQUESTS_PER_PUBLISHER):
            items = [{"topic": sc(k), "data": {"t": sc(k), "seq": i}}
                     for i in range(r * per_req, (r + 1) * per_req) for k in mine]
            assert pub.publish(items) == len(items)
            time.sleep(0.05)
        assert pub.publish([{"topic": sc(k), "data": {"t": sc(k), "end": 1}} for k in mine]) == len(mine)
        pub.close()

    async def main():
        t0 = time.time()
        acked, started, done = asyncio.Semaphore(0), asyncio.Semaphore(0), asyncio.Event()
        tasks = [asyncio.create_task(steady(i, acked)) for i in range(N_STEADY)]
        tasks += [asyncio.create_task(firehose(k, acked)) for k in range(N_FIRE)]
        churners = [asyncio.create_task(churner(j, started, done)) for j in range(N_CHURN)]

        async def wait_sem(sem, n):
            for _ in range(n):
                await sem.acquire()

        waiting = asyncio.ensure_future(asyncio.gather(wait_sem(acked, N_STEADY + N_FIRE), wait_sem(started, N_CHURN)))
        finished, _ = await asyncio.wait([waiting, *tasks, *churners], timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            failed = [t.exception() for t in tasks + churners if t.done() and t.exception()]
            for t in [waiting, *tasks, *churners]:
                t.cancel()
            await asyncio.gather(waiting, *tasks, *churners, return_exceptions=True)
            raise AssertionError(f"not every client connected and subscribed; first errors {failed[:3]!r}")
        t_sub = time.time() - t0
        await asyncio.gather(asyncio.to_thread(publisher, 0), asyncio.to_thread(publisher, 1))
        t_pub = time.time() - t0
        _, pending = await asyncio.wait(tasks, timeout=45)
        for t in pending:  # what they got so far is checked below
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        done.set()
        await asyncio.wait_for(asyncio.gather(*churners), 30)
        for t in tasks:
            if not t.cancelled() and t.exception():
                raise t.exception()
        return t_sub, t_pub, time.time() - t0, len(pending)

    t_sub, t_pub, t_all, timed_out = asyncio.run(main())

    lost = dup = wrong = 0
    bad_clients = []
    for (kind, idx), (ks, got) in results.items():
        per = {}
        for m in got:
            per.setdefault(m[6:11], []).append(m)
        want = {sc(k).encode(): [sc_msg(k, i) for i in range(PER_TOPIC)] + [sc_end(k)] for k in ks}
        if per != want:
            bad_clients.append((kind, idx))
            n_got = sum(len(v) for v in per.values())
            n_want = sum(len(v) for v in want.values())
            lost += max(0, n_want - n_got)
            dup += max(0, n_got - len(set(got)))
            wrong += sum(len(v) for t, v in per.items() if t not in want)
    assert len(results) == N_STEADY + N_FIRE
    assert not bad_clients, (f"{len(bad_clients)} clients got the wrong messages (lost {lost}, duplicated {dup}, "
                             f"wrong topic {wrong}; {timed_out} still waiting after 45 s); "
                             f"first: {bad_clients[:5]}")
    assert timed_out == 0
    assert not errors, f"{len(errors)} churn violations; first: {errors[:5]}"
    assert len(churn_stats) == N_CHURN
    assert sum(st["cycles"] for st in churn_stats.values()) >= 2 * N_CHURN
    assert sum(st["msgs"] for st in churn_stats.values()) > 1000, "churning clients got (almost) nothing"
    m = Publisher(s).metrics()
    assert m["messages_published_total"] == N_TOPICS * (PER_TOPIC + 1)
    assert m["slow_consumer_closes_total"] == 0
    print(f"subscribed {t_sub:.1f}s, published {t_pub:.1f}s, all received {t_all:.1f}s; churn: "
          f"{sum(st['cycles'] for st in churn_stats.values())} cycles, "
          f"{sum(st['msgs'] for st in churn_stats.values())} messages")
