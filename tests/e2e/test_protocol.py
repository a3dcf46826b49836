"""The broadcast engine's protocol surface: the /ws JSON client protocol
(seeds 002 and 001: subscribe/unsubscribe acks with the full set,
subscribe_all/unsubscribe_all, ping, errors that never close), topic name
and per-connection limits, POST /api/v1/publish validation (a 400 publishes
nothing), POST /ws/test, and the /metrics text format and counters.

Clients are raw sockets (wsraw.RawWS on /ws), so every test states the exact
text sent and the exact text that must come back. "Nothing was delivered"
is checked with a marker: after the request under test a good message is
published, and it must be the very next thing every subscriber receives.
"""
import json
import re
import socket
import time

import pytest

from conftest import Server
from wsraw import OP_BINARY, OP_CLOSE, OP_CONT, OP_TEXT, RawWS, frame, http_request

SHARDS = ("--shards", "2")
pytestmark = pytest.mark.timeout(60)  # a hung test fails instead of stalling the run (pytest-timeout)


# ---------------------------------------------------------------- helpers


OPEN_CLIENTS = []


@pytest.fixture(autouse=True)
def close_clients_first(start_server):
    """Closes the test's clients before start_server stops the server, so a
    drain never waits --close-timeout-ms for clients nobody reads."""
    yield
    while OPEN_CLIENTS:
        OPEN_CLIENTS.pop().close()


class Client:
    """One /ws connection speaking the JSON protocol."""

    def __init__(self, server, timeout=5.0, track=True):
        self.ws = RawWS(server.host, server.port, path="/ws", timeout=timeout)
        assert self.ws.status == 101, self.ws.status
        if track:
            OPEN_CLIENTS.append(self)

    def send(self, obj):
        text = obj if isinstance(obj, (str, bytes)) else json.dumps(obj)
        self.ws.send_frame(OP_TEXT, text)

    def recv(self):
        """The next text message's bytes (fails on a close or binary frame)."""
        op, payload = self.ws.recv_message()
        assert op == OP_TEXT, (op, payload)
        return payload

    def recv_json(self):
        return json.loads(self.recv())

    def call(self, obj):
        """Sends one command and returns the JSON reply."""
        self.send(obj)
        return self.recv_json()

    def subscribed(self, key="markets"):
        """The current set, read from the ack of an empty subscribe."""
        ack = self.call({"type": "subscribe", key: []})
        assert ack["type"] == "subscribed", ack
        return ack[key]

    def assert_open(self):
        assert self.call({"type": "ping"}) == {"type": "pong"}

    def close(self):
        self.ws.close()


def post(server, path, body, headers="", method="POST"):
    """A body goes with Content-Type: application/json (publish and /ws/test
    need it) unless `headers` name another."""
    if isinstance(body, str):
        body = body.encode()
    if body and "content-type:" not in headers.lower():
        headers = "Content-Type: application/json\r\n" + headers
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode()
    return http_request(server.host, server.port, head + body)


def publish(server, body):
    """POSTs body (a JSON value, or raw text) to /api/v1/publish."""
    if not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    status, hdrs, resp = post(server, "/api/v1/publish", body)
    return status, hdrs, json.loads(resp) if resp else None


def get(server, path, port=None):
    """GET path on the client port, or on port (server.admin_port)."""
    return http_request(server.host, port or server.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")


def metrics(server):
    """{name: value} of the samples in /metrics (admin listener)."""
    status, hdrs, body = get(server, "/metrics", port=server.admin_port)
    assert status == 200
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.split()
            out[name] = int(value)
    return out


def error_reply(reply):
    assert set(reply) == {"type", "message"} and reply["type"] == "error", reply
    assert isinstance(reply["message"], str) and reply["message"], reply
    return reply["message"]


# ---------------------------------------------------------------- subscribe / unsubscribe acks


@pytest.mark.parametrize("key", ["markets", "channels", "topics"])
def test_subscribe_and_unsubscribe_ack_the_full_set_in_subscription_order(start_server, key):
    s = start_server(*SHARDS)
    c = Client(s)
    assert c.call({"type": "subscribe", key: ["team-arsenal", "player-saka"]}) == {
        "type": "subscribed", key: ["team-arsenal", "player-saka"]}
    # Adding lists the whole set, not just the added keys; a repeat is not added twice.
    assert c.call({"type": "subscribe", key: ["b", "team-arsenal", "a", "b"]}) == {
        "type": "subscribed", key: ["team-arsenal", "player-saka", "b", "a"]}
    # Unsubscribe answers with the same "subscribed" type, listing what remains in order.
    assert c.call({"type": "unsubscribe", key: ["team-arsenal", "nope"]}) == {
        "type": "subscribed", key: ["player-saka", "b", "a"]}
    assert c.call({"type": "unsubscribe", key: ["a"]}) == {"type": "subscribed", key: ["player-saka", "b"]}
    assert c.call({"type": "subscribe", key: ["team-arsenal"]}) == {
        "type": "subscribed", key: ["player-saka", "b", "team-arsenal"]}
    assert c.call({"type": "unsubscribe", key: ["player-saka", "b", "team-arsenal"]}) == {"type": "subscribed", key: []}
    c.assert_open()


def test_ack_uses_the_key_the_client_last_used(start_server):
    s = start_server(*SHARDS)
    c = Client(s)
    assert c.call({"type": "subscribe", "channels": ["binance_prices", "binance_orderbook"]}) == {
        "type": "subscribed", "channels": ["binance_prices", "binance_orderbook"]}
    assert c.call({"type": "unsubscribe", "markets": ["binance_prices"]}) == {
        "type": "subscribed", "markets": ["binance_orderbook"]}
    assert c.call({"type": "subscribe", "topics": ["x"]}) == {"type": "subscribed", "topics": ["binance_orderbook", "x"]}
    # subscribe_all / unsubscribe_all answer with the last key used too.
    assert c.call({"type": "subscribe_all"}) == {"type": "subscribed", "topics": ["binance_orderbook", "x", "*"]}
    assert c.call({"type": "unsubscribe_all"}) == {"type": "subscribed", "topics": []}


def test_subscribe_all_and_unsubscribe_all(start_server):
    s = start_server(*SHARDS)
    c = Client(s)
    # Never used a key: acks say "markets" (seed 002).
    assert c.call({"type": "subscribe_all"}) == {"type": "subscribed", "markets": ["*"]}
    assert c.call({"type": "subscribe_all"}) == {"type": "subscribed", "markets": ["*"]}
    assert c.call({"type": "unsubscribe_all"}) == {"type": "subscribed", "markets": []}
    assert c.call({"type": "unsubscribe_all"}) == {"type": "subscribed", "markets": []}
    assert c.call({"type": "subscribe", "markets": ["a", "b"]}) == {"type": "subscribed", "markets": ["a", "b"]}
    assert c.call({"type": "subscribe_all"}) == {"type": "subscribed", "markets": ["a", "b", "*"]}
    # "*" is an ordinary member of the set: it can be unsubscribed by name.
    assert c.call({"type": "unsubscribe", "markets": ["*"]}) == {"type": "subscribed", "markets": ["a", "b"]}
    assert c.call({"type": "subscribe", "markets": ["*"]}) == {"type": "subscribed", "markets": ["a", "b", "*"]}
    assert c.call({"type": "unsubscribe_all"}) == {"type": "subscribed", "markets": []}
    c.assert_open()


def test_ping_pong_and_extra_fields_ignored(start_server):
    s = start_server(*SHARDS)
    c = Client(s)
    for _ in range(3):
        assert c.call({"type": "ping"}) == {"type": "pong"}
    assert c.call({"type": "ping", "id": 7, "extra": [1, 2]}) == {"type": "pong"}
    assert c.call({"type": "subscribe", "markets": ["m"], "id": "x"}) == {"type": "subscribed", "markets": ["m"]}
    # Pipelined commands are answered in order.
    c.ws.send(b"".join(
        frame(OP_TEXT, json.dumps(m))
        for m in [{"type": "ping"}, {"type": "subscribe", "markets": ["n"]}, {"type": "ping"},
                  {"type": "unsubscribe", "markets": ["m"]}]))
    assert c.recv_json() == {"type": "pong"}
    assert c.recv_json() == {"type": "subscribed", "markets": ["m", "n"]}
    assert c.recv_json() == {"type": "pong"}
    assert c.recv_json() == {"type": "subscribed", "markets": ["n"]}


def test_fragmented_client_message_is_one_command(start_server):
    s = start_server(*SHARDS)
    c = Client(s)
    text = json.dumps({"type": "subscribe", "markets": ["frag-a", "frag-b"]}).encode()
    c.ws.send_frame(OP_TEXT, text[:10], fin=False)
    c.ws.send_frame(OP_CONT, text[10:20], fin=False)
    c.ws.send_frame(OP_CONT, text[20:], fin=True)
    assert c.recv_json() == {"type": "subscribed", "markets": ["frag-a", "frag-b"]}


# ---------------------------------------------------------------- errors never close


def test_invalid_json_and_unknown_type(start_server):
    s = start_server(*SHARDS)
    c = Client(s)
    c.call({"type": "subscribe", "markets": ["keep"]})
    for bad in ["nope", "{", '{"type":"ping"', "", "{'type':'ping'}", '{"type":"ping"} x']:
        assert c.call(bad) == {"type": "error", "message": "Invalid JSON"}, bad
    assert c.call({"type": "zz"}) == {"type": "error", "message": "Unknown message type: zz"}
    assert c.call({"type": "Subscribe", "markets": ["x"]}) == {
        "type": "error", "message": "Unknown message type: Subscribe"}
    assert c.call({"type": "candle_update"}) == {"type": "error", "message": "Unknown message type: candle_update"}
    # Not an object, or no string type: an error too.
    for bad in ["[]", "5", '"ping"', "null", "{}", '{"type":5}', '{"type":null}', '{"markets":["x"]}']:
        error_reply(c.call(bad))
    # subscribe without a usable array.
    for bad in [{"type": "subscribe"}, {"type": "subscribe", "markets": "x"}, {"type": "unsubscribe", "channels": {}},
                {"type": "subscribe", "markets": None}]:
        error_reply(c.call(bad))
    assert c.subscribed() == ["keep"]
    c.assert_open()


def test_binary_message_gets_an_error_and_the_connection_stays(start_server):
    s = start_server(*SHARDS)
    c = Client(s)
    c.call({"type": "subscribe", "markets": ["keep"]})
    c.ws.send_frame(OP_BINARY, json.dumps({"type": "subscribe", "markets": ["bin"]}).encode())
    error_reply(c.recv_json())
    c.ws.send_frame(OP_BINARY, b"\x00\xff\x10")
    error_reply(c.recv_json())
    assert c.subscribed() == ["keep"]
    c.assert_open()


BAD_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("x" * 201, id="201-bytes"),
    pytest.param("a b", id="space"),
    pytest.param('a"b', id="quote"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("caf\u00e9", id="non-ascii"),
    pytest.param("\u2603", id="snowman"),
    pytest.param("tab\there", id="tab"),
    pytest.param("nl\n", id="newline"),
    pytest.param("nul\u0000x", id="nul"),
    pytest.param("del\x7f", id="del"),
    pytest.param(5, id="number"),
    pytest.param(None, id="null"),
    pytest.param(["x"], id="array"),
    pytest.param({"n": "x"}, id="object"),
    pytest.param(True, id="bool"),
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_topic_names_are_errors_and_change_nothing(start_server, name):
    s = start_server(*SHARDS)
    c = Client(s)
    assert c.call({"type": "subscribe", "markets": ["ok-1", "ok-2"]}) == {"type": "subscribed", "markets": ["ok-1", "ok-2"]}
    # The bad name anywhere in the list: nothing of the message is applied.
    error_reply(c.call({"type": "subscribe", "markets": ["fine", name]}))
    error_reply(c.call({"type": "subscribe", "channels": [name, "fine2"]}))
    error_reply(c.call({"type": "unsubscribe", "markets": ["ok-1", name]}))
    assert c.subscribed() == ["ok-1", "ok-2"]
    c.assert_open()


def test_topic_name_boundaries_are_accepted(start_server):
    s = start_server(*SHARDS)
    c = Client(s)
    edge = ["x" * 200, "!", "~", "a:b/c.d-e_f@g#h$i%j&k(l)m+n=o[p]q{r}s|t;u<v>w?x,y'z`^", "*x", "x*", "\u0041"]
    assert c.call({"type": "subscribe", "topics": edge}) == {"type": "subscribed", "topics": [*edge[:6], "A"]}
    # Escapes that decode to printable ASCII are the same name.
    assert c.call(r'{"type":"unsubscribe","topics":["\u0021","\u007e"]}') == {
        "type": "subscribed", "topics": [edge[0], edge[3], "*x", "x*", "A"]}


def test_error_messages_are_valid_json_for_hostile_names(start_server):
    s = start_server(*SHARDS)
    c = Client(s)
    for raw in [r'{"type":"\"\\\u0000\u2603"}', r'{"type":"subscribe","markets":["\"\\\u0001\ud83d\ude00"]}',
                '{"type":"' + "t" * 5000 + '"}']:
        c.send(raw)
        reply = c.recv()
        error_reply(json.loads(reply))
        assert len(reply) < 600, reply
    c.assert_open()


def test_default_topic_limit_is_1024_per_connection(start_server):
    s = start_server(*SHARDS)
    c = Client(s)
    names = [f"lim-{i:04d}" for i in range(1024)]
    ack = c.call({"type": "subscribe", "markets": names[:1000]})
    assert ack == {"type": "subscribed", "markets": names[:1000]}
    # Repeats of names already held do not count against the limit.
    ack = c.call({"type": "subscribe", "markets": names[990:1024] + names[:10]})
    assert ack == {"type": "subscribed", "markets": names}
    # One more topic: an error, and the set is unchanged.
    msg = error_reply(c.call({"type": "subscribe", "markets": ["one-too-many"]}))
    assert "1024" in msg, msg
    error_reply(c.call({"type": "subscribe", "markets": ["lim-0000", "one-too-many"]}))
    assert c.subscribed() == names
    # After dropping one, one new fits again.
    c.call({"type": "unsubscribe", "markets": ["lim-0500"]})
    ack = c.call({"type": "subscribe", "markets": ["now-fits"]})
    assert ack["markets"] == names[:500] + names[501:] + ["now-fits"]
    c.assert_open()


def test_one_message_with_more_than_1024_topics_is_rejected_whole(start_server):
    s = start_server(*SHARDS)
    c = Client(s)
    c.call({"type": "subscribe", "markets": ["keep"]})
    error_reply(c.call({"type": "subscribe", "markets": [f"big-{i}" for i in range(1025)]}))
    error_reply(c.call({"type": "unsubscribe", "markets": [f"big-{i}" for i in range(1025)]}))
    assert c.subscribed() == ["keep"]
    c.assert_open()


def test_max_topics_per_conn_flag(start_server):
    s = start_server(*SHARDS, "--max-topics-per-conn", "3")
    c = Client(s)
    assert c.call({"type": "subscribe", "markets": ["a", "b"]}) == {"type": "subscribed", "markets": ["a", "b"]}
    error_reply(c.call({"type": "subscribe", "markets": ["c", "d"]}))
    assert c.subscribed() == ["a", "b"]
    assert c.call({"type": "subscribe", "markets": ["c", "a"]}) == {"type": "subscribed", "markets": ["a", "b", "c"]}
    error_reply(c.call({"type": "subscribe", "markets": ["w", "x", "y", "z"]}))
    assert c.subscribed() == ["a", "b", "c"]
    c.call({"type": "unsubscribe_all"})
    assert c.call({"type": "subscribe", "markets": ["x", "y", "z"]}) == {"type": "subscribed", "markets": ["x", "y", "z"]}
    # The limit is per connection: another client has its own.
    d = Client(s)
    assert d.call({"type": "subscribe", "markets": ["x", "y", "z"]}) == {"type": "subscribed", "markets": ["x", "y", "z"]}
    c.assert_open()
    d.assert_open()


def test_subscribe_all_counts_against_the_topic_limit(start_server):
    s = start_server(*SHARDS, "--max-topics-per-conn", "3")
    c = Client(s)
    assert c.call({"type": "subscribe", "markets": ["a", "b", "c"]}) == {"type": "subscribed", "markets": ["a", "b", "c"]}
    # "*" is a member of the set like any other: by name it does not fit...
    error_reply(c.call({"type": "subscribe", "markets": ["*"]}))
    assert c.subscribed() == ["a", "b", "c"]
    # ...and subscribe_all, which adds the same "*", must not slip past the limit.
    error_reply(c.call({"type": "subscribe_all"}))
    assert c.subscribed() == ["a", "b", "c"]
    c.assert_open()


def test_rejected_subscribe_does_not_deliver(start_server):
    """A topic named in a rejected subscribe is really not subscribed."""
    s = start_server(*SHARDS)
    c = Client(s)
    error_reply(c.call({"type": "subscribe", "markets": ["rej-topic", "bad name"]}))
    c.call({"type": "subscribe", "markets": ["marker"]})
    assert publish(s, [{"topic": "rej-topic", "data": 1}, {"topic": "marker", "data": "m"}])[0] == 200
    assert c.recv() == b'"m"'


# ---------------------------------------------------------------- POST /api/v1/publish


def test_publish_single_array_and_broadcast_counts(start_server):
    s = start_server(*SHARDS)
    assert publish(s, {"topic": "nobody-listens", "data": 1})[::2] == (200, {"published": 1})
    status, hdrs, body = publish(s, {"topic": "t", "data": {"x": 1}})
    assert status == 200 and body == {"published": 1}
    assert hdrs["content-type"].startswith("application/json")
    assert publish(s, [{"topic": "a", "data": 1}, {"broadcast": True, "data": 2}, {"topic": "b", "data": [3]}])[::2] == (
        200, {"published": 3})
    assert publish(s, [])[::2] == (200, {"published": 0})
    assert publish(s, {"broadcast": True, "data": None})[::2] == (200, {"published": 1})
    # Unknown keys are ignored; "topic" next to broadcast:true is ignored.
    assert publish(s, {"topic": "t", "data": 0, "extra": [1]})[::2] == (200, {"published": 1})
    assert publish(s, {"broadcast": True, "topic": "t", "data": 0})[::2] == (200, {"published": 1})


BAD_BODIES = [
    pytest.param("", id="empty"),
    pytest.param("{", id="truncated"),
    pytest.param('{"topic":"t","data":1} x', id="trailing-garbage"),
    pytest.param('{"topic":"t","data":01}', id="leading-zero"),
    pytest.param('{"topic":"t","data":1.}', id="bad-float"),
    pytest.param("{'topic':'t','data':1}", id="single-quotes"),
    pytest.param('{"topic":"t","data":NaN}', id="nan"),
    pytest.param('{"topic":"t","data":"a\x01b"}', id="control-in-string"),
    pytest.param(b'{"topic":"t","data":"\xff"}', id="invalid-utf8"),
    pytest.param(b'\xef\xbb\xbf{"topic":"t","data":1}', id="bom"),
    pytest.param("5", id="number"),
    pytest.param('"x"', id="string"),
    pytest.param("null", id="null"),
    pytest.param("[1]", id="array-of-number"),
    pytest.param('[{"topic":"t","data":1},5]', id="array-with-number"),
    pytest.param('{"data":1}', id="missing-topic"),
    pytest.param('{"topic":"t"}', id="missing-data"),
    pytest.param('{"topic":5,"data":1}', id="topic-number"),
    pytest.param('{"topic":null,"data":1}', id="topic-null"),
    pytest.param('{"topic":["t"],"data":1}', id="topic-array"),
    pytest.param('{"topic":"","data":1}', id="topic-empty"),
    pytest.param('{"topic":"a b","data":1}', id="topic-space"),
    pytest.param('{"topic":"' + "x" * 201 + '","data":1}', id="topic-201"),
    pytest.param('{"topic":"caf\u00e9","data":1}', id="topic-non-ascii"),
    pytest.param('{"topic":"a\\"b","data":1}', id="topic-quote"),
    pytest.param('{"topic":"\\u0074","data":1}', id="topic-escape"),
    pytest.param('{"broadcast":false,"data":1}', id="broadcast-false"),
    pytest.param('{"broadcast":"true","data":1}', id="broadcast-string"),
    pytest.param('{"broadcast":true}', id="broadcast-no-data"),
]


@pytest.fixture(scope="module")
def watched():
    """One server for the publish-validation cases, with subscribers that
    would see anything published to "t", "a", "b" or any topic at all;
    .nothing_delivered() checks that the next message each of them gets is
    a fresh marker published after the request under test."""
    s = Server(list(SHARDS))
    clients = [Client(s, track=False) for _ in range(4)]
    for i, c in enumerate(clients):
        if i % 2:
            assert c.call({"type": "subscribe_all"})["markets"] == ["*"]
        else:
            c.call({"type": "subscribe", "markets": ["t", "a", "b", "marker", "x" * 200]})
    counter = iter(range(10**6))

    def nothing_delivered():
        marker = f"marker-{next(counter)}"
        status, _, body = publish(s, {"topic": "marker", "data": marker})
        assert status == 200, body
        for c in clients:
            assert c.recv() == json.dumps(marker).encode()

    s.nothing_delivered = nothing_delivered
    yield s
    for c in clients:
        c.close()
    assert s.stop() == 0, s.logs()
    assert "ERROR" not in s.logs(), s.logs()


@pytest.mark.parametrize("body", BAD_BODIES)
def test_bad_publish_is_400_and_publishes_nothing(watched, body):
    status, hdrs, resp = publish(watched, body)
    assert status == 400, resp
    assert hdrs["content-type"].startswith("application/json")
    assert set(resp) == {"error", "status"} and resp["status"] == 400 and isinstance(resp["error"], str) and resp["error"]
    watched.nothing_delivered()


@pytest.mark.parametrize("bad_item", [
    {"topic": "t"},
    {"data": 1},
    {"topic": "bad name", "data": 1},
    {"topic": 7, "data": 1},
    {"broadcast": False, "data": 1},
    {"topic": "x" * 201, "data": 1},
])
def test_bad_array_item_publishes_none_of_the_good_ones_before_it(watched, bad_item):
    good = [{"topic": "t", "data": {"n": i}} for i in range(50)] + [{"broadcast": True, "data": "all"}] + \
           [{"topic": "a", "data": i} for i in range(50)]
    status, _, resp = publish(watched, good + [bad_item] + [{"topic": "b", "data": 1}])
    assert status == 400 and resp["status"] == 400, resp
    assert "item 101" in resp["error"], resp
    watched.nothing_delivered()


def test_publish_error_texts(start_server):
    s = start_server(*SHARDS)
    cases = {
        "{": "invalid JSON",
        "5": "body must be an object or an array of objects",
        '{"topic":"t"}': 'item 0: missing "data"',
        '[{"topic":"t","data":1},{"data":1}]': 'item 1: missing "topic" (or "broadcast":true)',
        '{"topic":1,"data":1}': 'item 0: "topic" must be a string',
        '{"topic":"a b","data":1}': "item 0: invalid topic name",
        '{"broadcast":1,"data":1}': 'item 0: "broadcast" must be true',
    }
    for body, err in cases.items():
        assert publish(s, body)[::2] == (400, {"error": err, "status": 400}), body


def test_publish_get_is_405_with_allow_post(start_server):
    s = start_server(*SHARDS)
    for method in ["GET", "PUT", "DELETE"]:
        status, hdrs, body = http_request(s.host, s.port, f"{method} /api/v1/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert status == 405, (method, body)
        assert hdrs.get("allow") == "POST", hdrs
        resp = json.loads(body)
        assert resp["status"] == 405 and resp["error"]
    status, hdrs, _ = http_request(s.host, s.port, "GET /ws/test HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 405 and hdrs.get("allow") == "POST"


def test_publish_over_max_publish_bytes_is_413_without_reading_the_body(start_server):
    s = start_server(*SHARDS, "--max-publish-bytes", "1000")
    c = Client(s)
    c.call({"type": "subscribe", "markets": ["t", "marker"]})
    # Only the head, announcing a big body: the answer comes at once.
    sock = socket.create_connection((s.host, s.port), timeout=5)
    t0 = time.time()
    sock.sendall(b"POST /api/v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 50000000\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    assert data.startswith(b"HTTP/1.1 413 "), data
    assert time.time() - t0 < 2
    head, body = data.split(b"\r\n\r\n", 1)
    n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < n:
        body += sock.recv(65536)
    assert json.loads(body) == {"error": "request body too large", "status": 413}
    sock.close()
    # The limit is exact: 1000 bytes pass, 1001 do not.
    body = '{"topic":"t","data":"' + "y" * 977 + '"}'
    assert len(body) == 1000
    assert publish(s, body)[::2] == (200, {"published": 1})
    assert c.recv() == ('"' + "y" * 977 + '"').encode()
    assert publish(s, body + " ")[0] == 413
    assert publish(s, {"topic": "marker", "data": 1})[0] == 200
    assert c.recv() == b"1"


def test_default_max_publish_bytes_is_1mib(start_server):
    s = start_server(*SHARDS)
    sock = socket.create_connection((s.host, s.port), timeout=5)
    sock.sendall(b"POST /api/v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1048577\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 413 ")
    sock.close()
    c = Client(s)
    c.call({"type": "subscribe", "markets": ["big"]})
    payload = "z" * (1048576 - 30)
    body = '{"topic":"big","data":"' + payload + '"}'
    body += " " * (1048576 - len(body))
    assert len(body) == 1048576
    assert publish(s, body)[::2] == (200, {"published": 1})
    assert c.recv() == f'"{payload}"'.encode()


# ---------------------------------------------------------------- POST /ws/test


ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def test_ws_test_broadcasts_to_every_ws_client(start_server):
    s = start_server(*SHARDS)
    clients = [Client(s) for _ in range(8)]
    clients[0].call({"type": "subscribe", "markets": ["x"]})
    clients[1].call({"type": "subscribe_all"})
    clients[2].call({"type": "subscribe", "channels": ["binance_prices"]})
    clients[3].call({"type": "subscribe", "markets": ["y"]})
    clients[3].call({"type": "unsubscribe_all"})
    status, hdrs, body = post(s, "/ws/test", json.dumps({"message": "Hello"}))
    assert status == 200, body
    assert hdrs["content-type"].startswith("application/json")
    resp = json.loads(body)
    assert set(resp) == {"type", "message", "timestamp"}
    assert resp["type"] == "test_response" and resp["message"] == "Broadcast to all connected clients"
    assert isinstance(resp["timestamp"], str) and ISO.fullmatch(resp["timestamp"]), resp
    for c in clients:
        got = c.recv_json()
        assert set(got) == {"type", "message", "timestamp"}, got
        assert got["type"] == "test" and got["message"] == "Hello"
        assert ISO.fullmatch(got["timestamp"]), got
    # Each call is one message, in order; odd text survives JSON escaping.
    msgs = ["second", 'quote " back \\ slash', "caf\u00e9 \u2603", ""]
    for m in msgs:
        assert post(s, "/ws/test", json.dumps({"message": m}))[0] == 200
    for c in clients:
        assert [c.recv_json()["message"] for _ in msgs] == msgs
        c.assert_open()


def test_ws_test_rejects_bad_bodies(start_server):
    s = start_server(*SHARDS)
    c = Client(s)
    for body in ["{", "[1]", '{"message":5}', '"Hello"']:
        status, _, resp = post(s, "/ws/test", body)
        assert status == 400, body
        assert json.loads(resp)["status"] == 400
    assert post(s, "/ws/test", '{"message":"after"}')[0] == 200
    assert c.recv_json()["message"] == "after"


# ---------------------------------------------------------------- /metrics


COUNTERS = ["connections_accepted_total", "ws_upgrades_total", "http_requests_total", "messages_published_total",
            "frames_built_total", "deliveries_total", "delivery_bytes_total", "frames_conflated_total",
            "messages_conflated_total", "slow_consumer_closes_total", "idle_closes_total", "client_messages_total",
            "client_errors_total", "bytes_sent_total", "sends_total"]
GAUGES = ["connections", "ws_connections", "subscriptions", "queued_bytes"]


def test_metrics_is_prometheus_text(start_server):
    s = start_server(*SHARDS)
    status, hdrs, body = get(s, "/metrics", port=s.admin_port)
    assert status == 200
    assert hdrs["content-type"].startswith("text/plain")
    text = body.decode()
    assert text.endswith("\n")
    lines = text.splitlines()
    seen = {}
    i = 0
    while i < len(lines):
        m = re.fullmatch(r"# HELP (ringcast_[a-z_]+) (\S.*)", lines[i])
        assert m, f"expected a HELP line at {i}: {lines[i]!r}"
        name = m.group(1)
        t = re.fullmatch(r"# TYPE (ringcast_[a-z_]+) (counter|gauge)", lines[i + 1])
        assert t and t.group(1) == name, lines[i + 1]
        v = re.fullmatch(r"(ringcast_[a-z_]+) (\d+)", lines[i + 2])
        assert v and v.group(1) == name, lines[i + 2]
        assert name not in seen, f"{name} twice"
        seen[name] = (t.group(2), int(v.group(2)))
        i += 3
    for n in COUNTERS:
        assert seen.get("ringcast_" + n, (None,))[0] == "counter", n
        assert n.endswith("_total")
    for n in GAUGES:
        assert seen.get("ringcast_" + n, (None,))[0] == "gauge", n
    assert seen["ringcast_shards"] == ("gauge", 2)


def test_metrics_counters_move(start_server):
    s = start_server(*SHARDS)
    subs = [Client(s) for _ in range(5)]
    for c in subs:
        c.call({"type": "subscribe", "markets": ["m1", "m2"]})
    fire = Client(s)
    fire.call({"type": "subscribe_all"})
    fire.call({"type": "subscribe", "markets": ["m1"]})  # still one delivery per message
    idle = Client(s)
    before = metrics(s)
    assert before["ringcast_ws_connections"] == 7
    assert before["ringcast_subscriptions"] == 5 * 2 + 2
    items = [{"topic": "m1", "data": i} for i in range(30)] + [{"topic": "m2", "data": i} for i in range(20)] + \
            [{"topic": "nobody", "data": 0}] + [{"broadcast": True, "data": "b"}]
    assert publish(s, items)[::2] == (200, {"published": 52})
    for c in subs:
        for _ in range(51):
            c.recv()
    for _ in range(52):
        fire.recv()
    assert idle.recv() == b'"b"'
    idle.call({"type": "ping"})
    idle.send("junk")
    error_reply(idle.recv_json())
    after = metrics(s)
    d = {k: after[k] - before.get(k, 0) for k in after}
    assert d["ringcast_messages_published_total"] == 52
    # 5 subscribers get 50 topic messages + 1 broadcast; the firehose 52; the idle client 1.
    assert d["ringcast_deliveries_total"] == 5 * 51 + 52 + 1
    # One HTTP request: one frame per topic (m1, m2, nobody, the broadcast).
    assert d["ringcast_frames_built_total"] == 4
    assert d["ringcast_delivery_bytes_total"] > 5 * 51 * 3
    assert d["ringcast_client_messages_total"] == 2
    assert d["ringcast_client_errors_total"] == 1
    assert d["ringcast_bytes_sent_total"] >= d["ringcast_delivery_bytes_total"]
    assert d["ringcast_sends_total"] > 0
    assert d["ringcast_http_requests_total"] == 2  # the publish and this /metrics (the first counted itself)
    for c in subs:
        c.call({"type": "unsubscribe", "markets": ["m2"]})
    assert metrics(s)["ringcast_subscriptions"] == 5 + 2
    for c in subs[:2]:
        c.ws.send_frame(OP_CLOSE, b"\x03\xe8")
        c.ws.expect_eof()
    deadline = time.time() + 5
    while metrics(s)["ringcast_ws_connections"] != 5 and time.time() < deadline:
        time.sleep(0.02)
    m = metrics(s)
    assert m["ringcast_ws_connections"] == 5
    assert m["ringcast_subscriptions"] == 3 + 2
