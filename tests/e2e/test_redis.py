"""Redis pub/sub end to end (issue 5): real redis-server processes (and a
real 3-master Redis Cluster), several ringcast nodes started with --redis on
loopback ports, real WebSocket clients.

  * subscriptions: a node SUBSCRIBEs ringcast:<topic> exactly while it has a
    local subscriber of <topic> and PSUBSCRIBEs ringcast:* only while it has
    a firehose client, as `PUBSUB NUMSUB` / `NUMPAT` / `CHANNELS` and
    CLIENT LIST show, also for 900 topics at once and under churn;
  * delivery: what `redis-cli PUBLISH ringcast:T` sends arrives byte for
    byte, exactly once (a node holding both the channel and the pattern
    still delivers once, also while either is being added or dropped);
    `ringcast:` reaches every /ws client; invalid UTF-8 and bad channels
    are dropped and counted; an HTTP publish right after the subscribed
    ack reaches the client on the same node;
  * AUTH (requirepass and ACL users), SELECT, bad URLs, REDIS_URL, a Redis
    that is down at start or rejects the node (and the retry backoff);
  * 3 nodes sharing one Redis: ~60 clients, HTTP and redis-cli publishers,
    every client gets its topics exactly once in order;
  * faults: redis-server killed with -9 and restarted on the same port
    (delivery resumes within 2 s, subscriptions restored), connections
    dropped by CLIENT KILL, a node killed with -9;
  * --redis-sharded against a 3-master cluster (SSUBSCRIBE/SPUBLISH on the
    owning master, firehose refused).

Every node runs with --shards 2. Messages carry topic, source and sequence
number, so a loss, a duplicate or a reordering fails the check that follows.
Readiness is polled (PUBSUB counts, /readyz), never slept for.
"""
import asyncio
import http.client as httpc
import json
import signal
import subprocess
import threading
import time

import pytest
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as sync_connect

from conftest import ringcast_bin
from redis_util import Resp, free_port, redis_procs, wait_for  # noqa: F401  (redis_procs is a fixture)

SHARDS = ("--shards", "2")
pytestmark = pytest.mark.timeout(60)  # a hung test fails instead of stalling the run (pytest-timeout)

UNAVAILABLE = {"error": "redis unavailable: nothing was published", "status": 503}
NOT_READY = {"ready": False, "reason": "redis unavailable"}


# ---------------------------------------------------------------- helpers


OPEN_CLIENTS = []


@pytest.fixture(autouse=True)
def close_clients_first(redis_procs, start_server):
    """Set-up order redis_procs, start_server, this: so at teardown the
    clients close first, then the nodes stop, then Redis goes away."""
    yield
    while OPEN_CLIENTS:
        OPEN_CLIENTS.pop().close()


class WS:
    """One /ws connection (websockets' sync client); messages as bytes."""

    def __init__(self, node, timeout=10.0):
        self.ws = sync_connect(node.url + "/ws", compression=None, proxy=None, ping_interval=None, max_size=None,
                               max_queue=None, open_timeout=timeout, close_timeout=2).__enter__()
        self.timeout = timeout
        OPEN_CLIENTS.append(self)

    def send(self, obj):
        self.ws.send(obj if isinstance(obj, str) else json.dumps(obj))

    def recv(self, timeout=None):
        return self.ws.recv(timeout=timeout or self.timeout, decode=False)

    def recv_json(self, timeout=None):
        return json.loads(self.recv(timeout))

    def call(self, obj):
        self.send(obj)
        return self.recv_json()

    def subscribe(self, *topics):
        ack = self.call({"type": "subscribe", "markets": list(topics)})
        assert ack["type"] == "subscribed" and set(topics) <= set(ack["markets"]), ack
        return ack["markets"]

    def firehose(self):
        ack = self.call({"type": "subscribe_all"})
        assert ack["type"] == "subscribed" and "*" in ack["markets"], ack

    def barrier(self):
        """Every message that arrives before the pong of a ping sent now."""
        self.send({"type": "ping"})
        before = []
        while True:
            m = self.recv()
            if m == b'{"type":"pong"}':
                return before
            before.append(m)

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


def http(node, method, path, body=None, timeout=10, raw=False, port=None):
    """(status, the JSON body parsed, or its bytes when raw or not JSON); to
    the client port, or to port (node.admin_port for /metrics and /readyz)."""
    c = httpc.HTTPConnection(node.host, port or node.port, timeout=timeout)
    try:
        if body is not None and not isinstance(body, (str, bytes)):
            body = json.dumps(body, separators=(",", ":"))
        c.request(method, path, body, {"Content-Type": "application/json"} if body is not None else {})
        resp = c.getresponse()
        data = resp.read()
        if raw:
            return resp.status, data
        try:
            return resp.status, json.loads(data)
        except ValueError:
            return resp.status, data
    finally:
        c.close()


def publish(node, body):
    status, resp = http(node, "POST", "/api/v1/publish", body)
    assert status == 200, (status, resp)
    return resp["published"]


def metrics(node):
    """{name without the ringcast_ prefix: value} of /metrics (admin listener)."""
    status, text = http(node, "GET", "/metrics", raw=True, port=node.admin_port)
    assert status == 200
    out = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(None, 1)
            v = float(value)
            out[name.removeprefix("ringcast_")] = int(v) if v.is_integer() else v
    return out


def redis_metrics(m):
    """The ringcast_redis_* part of a metrics dict (for assertion messages)."""
    return {k: v for k, v in m.items() if k.startswith("redis_")}


def ready(node):
    return http(node, "GET", "/readyz", port=node.admin_port)


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def msg(topic, src, i):
    """The exact bytes delivered for message i of topic from source src."""
    return dumps({"t": topic, "s": src, "i": i}).encode()


def start_nodes(start_server, redis, n, *extra, url=None):
    """n ringcast nodes on one Redis, returned once each one is connected
    (/readyz 200) and subscribed to the broadcast channel."""
    nodes = [start_server(*SHARDS, "--redis", url or redis.url(), *extra) for _ in range(n)]
    for node in nodes:
        wait_for(lambda: ready(node) == (200, {"ready": True}), 10, f"node {node.port} /readyz 200")
    wait_for(lambda: redis.numsub("ringcast:") == n, 10, f"NUMSUB ringcast: == {n}")
    return nodes


def wait_numsub(redis, topic, n, timeout=10):
    wait_for(lambda: redis.numsub("ringcast:" + topic) == n, timeout, f"NUMSUB ringcast:{topic} == {n}")


def pattern_clients(redis):
    """Connections holding a pattern subscription (PUBSUB NUMPAT counts
    unique patterns, not subscribers: 1 however many nodes hold ringcast:*)."""
    return sum(1 for c in client_list(redis) if int(c.get("psub", 0)) > 0)


def wait_numpat(redis, n, timeout=10):
    """n nodes hold the ringcast:* pattern (NUMPAT is 1 when n > 0)."""
    wait_for(lambda: redis.numpat() == min(n, 1) and pattern_clients(redis) == n, timeout,
             f"NUMPAT == {min(n, 1)} and {n} connections with a pattern")


def sync_node(node, redis, probe):
    """Subscribes a throw-away client of node to `probe` and waits until
    Redis shows it: the node's earlier SUBSCRIBE/UNSUBSCRIBE commands, sent
    on the same connection before it, have then been processed too."""
    c = WS(node)
    c.subscribe(probe)
    wait_numsub(redis, probe, 1)
    c.close()


def split(msgs):
    """{(topic, src): [i, ...]} of msg() messages, and the others."""
    by, other = {}, []
    for m in msgs:
        if m.startswith(b'{"t":'):
            d = json.loads(m)
            by.setdefault((d["t"], d["s"]), []).append(d["i"])
        else:
            other.append(m)
    return by, other


def client_list(r):
    """CLIENT LIST entries other than the connection asking, as dicts."""
    out = []
    for line in r.cli("CLIENT", "LIST").splitlines():
        kv = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if kv.get("cmd") != "client|list":
            out.append(kv)
    return out


def end(topic, src):
    """End marker of a source's messages on topic (sent by that source, on
    that topic, after them: only per-topic, per-publisher order is kept)."""
    return {"end": f"{topic}/{src}"}


def read_until_ends(c, want_ends):
    """(messages, probes) received until every end marker in want_ends
    (a set of "topic/src") came; {"probe":k} messages are set apart."""
    msgs, probes, ends = [], [], []
    while set(ends) != set(want_ends):
        m = c.recv()
        if m.startswith(b'{"end":'):
            e = json.loads(m)["end"]
            assert e in want_ends and e not in ends, (e, ends, want_ends)
            ends.append(e)
        elif m.startswith(b'{"probe":'):
            probes.append(json.loads(m)["probe"])
        else:
            msgs.append(m)
    return msgs, probes


def cmdstat_calls(redis, cmd):
    for line in redis.cli("INFO", "commandstats").splitlines():
        if line.startswith(f"cmdstat_{cmd}:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


# ---------------------------------------------------------------- subscriptions follow local subscribers


def test_subscribe_unsubscribe_follow_local_subscribers(redis_procs, start_server):
    r = redis_procs.start_redis()
    a, b = start_nodes(start_server, r, 2)
    assert r.channels("ringcast:*") == ["ringcast:"]
    assert r.numsub("ringcast:life") == 0 and r.numpat() == 0
    wait_for(lambda: metrics(a)["redis_channels"] == 1, 5, "redis_channels == 1 (the broadcast channel)")

    a1 = WS(a)
    a1.subscribe("life")
    wait_numsub(r, "life", 1)
    assert r.channels("ringcast:*") == ["ringcast:", "ringcast:life"]
    a2 = WS(a)
    a2.subscribe("life", "other")
    wait_numsub(r, "other", 1)
    assert r.numsub("ringcast:life") == 1  # one node: one subscription, however many local clients
    wait_for(lambda: metrics(a)["redis_channels"] == 3, 5, "redis_channels == 3 (ringcast:, life, other)")
    b1 = WS(b)
    b1.subscribe("life")
    wait_numsub(r, "life", 2)

    # a1 leaves; a2 still holds "life" on node a, so a must stay subscribed.
    assert a1.call({"type": "unsubscribe", "markets": ["life"]}) == {"type": "subscribed", "markets": []}
    sync_node(a, r, "probe-a1")
    assert r.numsub("ringcast:life") == 2
    assert r.cli("PUBLISH", "ringcast:life", '{"n":1}').strip() == "2"
    assert a2.recv() == b'{"n":1}' and b1.recv() == b'{"n":1}'
    assert a1.barrier() == [] and a2.barrier() == [] and b1.barrier() == []

    # Closing the connection unsubscribes too.
    a2.close()
    wait_numsub(r, "life", 1)
    wait_numsub(r, "other", 0)
    wait_numsub(r, "probe-a1", 0)
    assert b1.call({"type": "unsubscribe_all"}) == {"type": "subscribed", "markets": []}
    wait_numsub(r, "life", 0)
    assert r.channels("ringcast:*") == ["ringcast:"]
    wait_for(lambda: metrics(a)["redis_channels"] == 1, 5, "redis_channels back to 1")
    assert r.cli("PUBLISH", "ringcast:life", '{"n":2}').strip() == "0"

    # The pattern: only while a firehose client exists (subscribe_all or "*").
    assert r.numpat() == 0
    f = WS(a)
    f.firehose()
    wait_numpat(r, 1)
    wait_for(lambda: metrics(a)["redis_channels"] == 2, 5, "redis_channels == 2 (ringcast:, ringcast:*)")
    g = WS(b)
    assert g.subscribe("*") == ["*"]
    wait_numpat(r, 2)
    # The pattern is ringcast:*, nothing wider.
    assert r.cli("PUBLISH", "ringcast:anything", '{"n":3}').strip() == "2"
    assert r.cli("PUBLISH", "elsewhere:anything", '{"n":4}').strip() == "0"
    assert f.recv() == b'{"n":3}' and g.recv() == b'{"n":3}'
    f2 = WS(a)
    f2.firehose()
    f.close()
    sync_node(a, r, "probe-f")
    assert r.numpat() == 1 and pattern_clients(r) == 2  # f2 still is a firehose client of node a
    assert f2.call({"type": "unsubscribe_all"}) == {"type": "subscribed", "markets": []}
    wait_numpat(r, 1)
    g.close()
    wait_numpat(r, 0)
    assert r.channels("ringcast:*") == ["ringcast:"]


def test_bulk_subscribe_and_unsubscribe(redis_procs, start_server):
    """Hundreds of topics in one subscribe message: every channel appears in
    Redis, and goes once its last local subscriber is gone."""
    r = redis_procs.start_redis()
    (s,) = start_nodes(start_server, r, 1)
    first = [f"bulk{k}" for k in range(0, 600)]
    second = [f"bulk{k}" for k in range(300, 900)]
    c1, c2 = WS(s), WS(s)
    assert c1.subscribe(*first) == first
    assert c2.subscribe(*second) == second
    want = sorted(["ringcast:"] + ["ringcast:" + t for t in set(first) | set(second)])
    wait_for(lambda: r.channels("ringcast:*") == want, 10, "900 channels subscribed")
    wait_for(lambda: metrics(s)["redis_channels"] == 901, 5, "redis_channels == 901")
    c1.close()
    want = sorted(["ringcast:"] + ["ringcast:" + t for t in second])
    wait_for(lambda: r.channels("ringcast:*") == want, 10, "c1's own 300 channels unsubscribed")
    assert c2.call({"type": "unsubscribe_all"}) == {"type": "subscribed", "markets": []}
    wait_for(lambda: r.channels("ringcast:*") == ["ringcast:"], 10, "everything unsubscribed")
    wait_for(lambda: metrics(s)["redis_channels"] == 1, 5, "redis_channels == 1")


def test_subscription_churn_settles_to_the_right_state(redis_procs, start_server):
    """20 clients on both shards of a node subscribe and unsubscribe the same
    topic (and the firehose) as fast as the acks come back; whatever the
    interleaving, Redis ends up subscribed exactly when a client still holds
    the topic, and a publish then reaches exactly those clients."""
    r = redis_procs.start_redis()
    (s,) = start_nodes(start_server, r, 1)
    clients = [WS(s) for _ in range(20)]

    errors = []

    def churn(k, c):
        try:
            churn_steps(k, c)
        except BaseException as e:  # a failed thread must fail the test
            errors.append((k, repr(e)))

    def churn_steps(k, c):
        for j in range(30):
            c.subscribe("flap")
            if k % 4 == 0:
                c.firehose()
            c.call({"type": "unsubscribe_all"} if j % 2 else {"type": "unsubscribe", "markets": ["flap"]})
        if k % 2 == 0:  # half of them end subscribed
            c.subscribe("flap")
        if k % 8 == 0:  # and 3 of those with the firehose too
            c.firehose()

    threads = [threading.Thread(target=churn, args=(k, c)) for k, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    wait_numsub(r, "flap", 1)
    wait_numpat(r, 1)
    r.cli("PUBLISH", "ringcast:flap", '"flap-1"')
    r.cli("PUBLISH", "ringcast:", '"end"')
    for k, c in enumerate(clients):
        got = []
        while (m := c.recv()) != b'"end"':
            got.append(m)
        assert got == ([b'"flap-1"'] if k % 2 == 0 else []), (k, got)
    for c in clients:
        c.call({"type": "unsubscribe_all"})
    wait_numsub(r, "flap", 0)
    wait_numpat(r, 0)


def test_pattern_and_channel_transitions_keep_exactly_once(redis_procs, start_server):
    """A node holding both ringcast:T and the ringcast:* pattern gets each
    message twice from Redis and must deliver it once. While messages
    stream in, one client toggles the firehose (PSUBSCRIBE / PUNSUBSCRIBE
    under a steady topic subscriber), another toggles a topic (SUBSCRIBE /
    UNSUBSCRIBE under a steady firehose client): the steady clients get
    every message exactly once in order, the togglers never a duplicate."""
    r = redis_procs.start_redis()
    (s,) = start_nodes(start_server, r, 1)
    n = 1500

    def stream(topic, done):
        c = Resp(r.port)
        for k in range(0, n, 25):
            c.pipeline([("PUBLISH", "ringcast:" + topic, dumps({"t": topic, "i": i})) for i in range(k, k + 25)])
            time.sleep(0.004)
        c.command("PUBLISH", "ringcast:" + topic, '"end"')
        c.close()
        done.set()

    def toggle(c, on, off, topic, done):
        """Toggles until done; returns the sequence numbers of topic it saw."""
        seen, toggles = [], 0

        def until_ack():
            while True:
                m = c.recv()
                if m.startswith(b'{"type":'):
                    reply = json.loads(m)
                    assert reply["type"] == "subscribed", reply
                    return
                if m != b'"end"':
                    seen.append(json.loads(m)["i"])

        while not done.is_set() or toggles < 10:
            c.send(on)
            until_ack()
            c.send(off)
            until_ack()
            toggles += 1
        return seen, toggles

    def read_until_end(c):
        got = []
        while (m := c.recv()) != b'"end"':
            got.append(json.loads(m)["i"])
        return got

    # 1: a steady subscriber of "st1" while another client flips the firehose.
    steady, flipper = WS(s), WS(s)
    steady.subscribe("st1")
    wait_numsub(r, "st1", 1)
    done = threading.Event()
    pub = threading.Thread(target=stream, args=("st1", done))
    pub.start()
    seen, toggles = toggle(flipper, {"type": "subscribe_all"}, {"type": "unsubscribe_all"}, "st1", done)
    pub.join(30)
    assert read_until_end(steady) == list(range(n))
    assert seen == sorted(set(seen)), "the flipping firehose client got a duplicate or a reordering"

    # 2: a steady firehose client while another client flips a topic.
    fire, flipper2 = WS(s), WS(s)
    fire.firehose()
    wait_numpat(r, 1)
    done = threading.Event()
    pub = threading.Thread(target=stream, args=("st2", done))
    pub.start()
    sub, unsub = {"type": "subscribe", "markets": ["st2"]}, {"type": "unsubscribe", "markets": ["st2"]}
    seen2, toggles2 = toggle(flipper2, sub, unsub, "st2", done)
    pub.join(30)
    assert read_until_end(fire) == list(range(n))
    assert seen2 == sorted(set(seen2)), "the flipping topic client got a duplicate or a reordering"
    print(f"toggles: firehose {toggles}, topic {toggles2}; the togglers saw {len(seen)} and {len(seen2)} messages")


def test_same_node_publish_right_after_the_ack_is_delivered(redis_procs, start_server):
    """Once a client has its subscribed ack, a publish through the same
    node's HTTP API reaches it, even for a topic (or the firehose) the node
    had to SUBSCRIBE (PSUBSCRIBE) in Redis for that very ack."""
    r = redis_procs.start_redis()
    (s,) = start_nodes(start_server, r, 1)
    for k in range(15):
        c = WS(s)
        c.subscribe(f"fresh{k}")
        assert publish(s, {"topic": f"fresh{k}", "data": {"k": k}}) == 1
        assert c.recv(timeout=5) == dumps({"k": k}).encode(), k
        f = WS(s)
        f.firehose()
        assert publish(s, {"topic": f"fire{k}", "data": {"f": k}}) == 1
        assert f.recv(timeout=5) == dumps({"f": k}).encode(), k
        assert c.barrier() == [] and f.barrier() == []
        c.close()
        f.close()


# ---------------------------------------------------------------- delivery from redis-cli


EXACT_VALUES = [
    '{"a" : 12345678901234567890 ,"b":[ 1.10 , -0.0, 1e400, 2E-3, -1E+2 ], "c" :{ } }',
    "123456789012345678901234567890",
    "-0",
    "0.1000000000000000055511151231257827",
    r'"\u00e9\n\"q\" \\ \/ \ud83d\ude00 \u0000"',
    '"raw caf\u00e9 \u2603 \U0001f600"',
    "[[1,[2,[3,[]]]],{},[[]]]",
    '[ 1 ,\t2 ,\n 3\r\n]',
    '{"nested":{"deep":[{"x":{"y":[1,2,{"z":null}]}}]},"k\\u0041":"v"}',
    "true",
    "null",
    '""',
    "{}",
    '"' + "m" * 125 + '"',  # 127 bytes: a 16-bit WebSocket length
    '"' + "L" * 70000 + '"',  # a 64-bit WebSocket length
    '{"dup":1,"dup":2}',
]


def test_redis_cli_publish_arrives_byte_for_byte_exactly_once(redis_procs, start_server):
    r = redis_procs.start_redis()
    (s,) = start_nodes(start_server, r, 1)
    topic_only, fire, fire_and_topic, other, silent = WS(s), WS(s), WS(s), WS(s), WS(s)
    topic_only.subscribe("other", "exact")
    fire.firehose()
    fire_and_topic.firehose()
    assert fire_and_topic.subscribe("exact") == ["*", "exact"]
    other.subscribe("other")
    wait_numsub(r, "exact", 1)
    wait_numpat(r, 1)
    before = metrics(s)
    for v in EXACT_VALUES:
        # The node holds the channel and the pattern: Redis sends it twice, ringcast delivers once.
        assert r.cli("PUBLISH", "ringcast:exact", v).strip() == "2"
    expected = [v.encode() for v in EXACT_VALUES]
    for c in (topic_only, fire, fire_and_topic):
        assert [c.recv() for _ in expected] == expected
        assert c.barrier() == []
    assert other.barrier() == [] and silent.barrier() == []

    # The broadcast channel reaches every /ws connection, once.
    bc = '{"broadcast" : [1, "\u00e9"], "n": 18446744073709551616}'
    r.cli("PUBLISH", "ringcast:", bc)
    for c in (topic_only, fire, fire_and_topic, other, silent):
        assert c.recv() == bc.encode()
        assert c.barrier() == []
    after = metrics(s)
    assert after["redis_dropped_total"] == before["redis_dropped_total"]
    assert after["redis_messages_total"] - before["redis_messages_total"] >= len(EXACT_VALUES) + 1


INVALID_UTF8 = [
    b'"\xff"',  # never valid
    b'"\xc0\xaf"',  # overlong "/"
    b'"\xed\xa0\x80"',  # a UTF-16 surrogate
    b'"\xe2\x82"',  # truncated 3-byte sequence
    b'"\xf4\x90\x80\x80"',  # above U+10FFFF
]


def test_invalid_utf8_from_redis_is_dropped_and_counted(redis_procs, start_server):
    r = redis_procs.start_redis()
    (s,) = start_nodes(start_server, r, 1)
    t, silent = WS(s), WS(s)
    t.subscribe("bin")
    wait_numsub(r, "bin", 1)
    before = metrics(s)
    pub = Resp(r.port)
    # Channel subscription only (no pattern): each bad message arrives once and is counted once.
    for bad in INVALID_UTF8:
        assert pub.command("PUBLISH", "ringcast:bin", bad) == 1
    assert pub.command("PUBLISH", "ringcast:", b'"\xfe bad broadcast"') == 1
    assert pub.command("PUBLISH", "ringcast:bin", '"after"') == 1
    assert t.recv() == b'"after"'
    wait_for(lambda: metrics(s)["redis_dropped_total"] - before["redis_dropped_total"] == len(INVALID_UTF8) + 1, 5,
             "redis_dropped_total to count every invalid message")
    m = metrics(s)
    assert m["redis_messages_total"] - before["redis_messages_total"] == 1, (redis_metrics(before), redis_metrics(m))
    # The connections are fine.
    assert t.barrier() == [] and silent.barrier() == []
    assert t.subscribe("bin2") == ["bin", "bin2"]

    # With a firehose client (the pattern too): invalid UTF-8 and bad channel
    # names (a '"' in the topic, a topic over 200 bytes) reach nobody.
    fire = WS(s)
    fire.firehose()
    wait_numpat(r, 1)
    before = metrics(s)
    pub.command("PUBLISH", "ringcast:bin", b'"\x80"')
    pub.command("PUBLISH", 'ringcast:bad"quote', '"q"')
    pub.command("PUBLISH", "ringcast:" + "x" * 201, '"long"')
    pub.command("PUBLISH", "ringcast:bin", '"after2"')
    assert t.recv() == b'"after2"' and fire.recv() == b'"after2"'
    assert t.barrier() == [] and fire.barrier() == [] and silent.barrier() == []
    wait_for(lambda: metrics(s)["redis_dropped_total"] - before["redis_dropped_total"] >= 3, 5,
             "redis_dropped_total to count the bad payload and both bad channels")
    pub.close()


# ---------------------------------------------------------------- URL: AUTH, SELECT, bad URLs, REDIS_URL


@pytest.mark.parametrize("user", [None, "rc"], ids=["requirepass", "acl-user"])
def test_auth_and_select(redis_procs, start_server, user):
    r = redis_procs.start_redis(password="s3cret")
    if user:
        r.cli("ACL", "SETUSER", user, "on", ">rc-pass", "~*", "&*", "+@all")
        url = r.url(db=3, user=user, password="rc-pass")  # redis://rc:rc-pass@127.0.0.1:P/3
    else:
        url = r.url(db=3)  # redis://:s3cret@127.0.0.1:P/3
    (s,) = start_nodes(start_server, r, 1, url=url)
    c = WS(s)
    c.subscribe("auth")
    wait_numsub(r, "auth", 1)
    r.cli("PUBLISH", "ringcast:auth", '{"via":"redis-cli"}')
    assert c.recv() == b'{"via":"redis-cli"}'
    calls = cmdstat_calls(r, "publish")
    assert publish(s, {"topic": "auth", "data": {"via": "http"}}) == 1
    assert c.recv() == b'{"via":"http"}'
    assert cmdstat_calls(r, "publish") == calls + 1  # it went through Redis
    assert c.barrier() == []
    # Every connection ringcast holds is authenticated as that user and on db 3.
    node_conns = client_list(r)
    assert node_conns, "ringcast has no connection to Redis"
    for conn in node_conns:
        assert conn["user"] == (user or "default") and conn["db"] == "3", node_conns


def link_attempts(m):
    """Attempts to establish the Redis link so far, whatever their outcome."""
    return m["redis_connect_failures_total"] + m["redis_connects_total"]


@pytest.mark.parametrize("password", ["wrong", None], ids=["wrong-password", "no-password"])
def test_rejected_credentials_keep_the_node_up_but_not_ready(redis_procs, start_server, password):
    """A Redis that refuses the node (WRONGPASS, or NOAUTH on a password
    it was not given): the node serves clients, is not ready, refuses HTTP
    publishes with 503, and retries with the 100 ms .. 1 s backoff."""
    r = redis_procs.start_redis(password="s3cret")
    url = f"redis://:{password}@127.0.0.1:{r.port}" if password else f"redis://127.0.0.1:{r.port}"
    s = start_server(*SHARDS, "--redis", url)
    t_start = time.monotonic()
    wait_for(lambda: link_attempts(metrics(s)) >= 2, 10, "repeated attempts (retrying)")
    m = metrics(s)
    assert m["redis_up"] == 0, redis_metrics(m)
    assert m["redis_connects_total"] == m["redis_disconnects_total"], redis_metrics(m)  # no link stays up
    assert ready(s) == (503, NOT_READY)
    assert http(s, "GET", "/healthz") == (200, {"status": "ok"})
    c = WS(s)
    c.subscribe("x")
    assert c.call({"type": "ping"}) == {"type": "pong"}
    items = [{"topic": "x", "data": i} for i in range(3)]
    assert http(s, "POST", "/api/v1/publish", items) == (503, UNAVAILABLE)
    status, _ = http(s, "POST", "/ws/test", {"message": "hi"})
    assert status == 503
    assert c.barrier() == []
    assert r.numsub("ringcast:x") == 0 and r.numsub("ringcast:") == 0
    assert s.proc.poll() is None
    # Backoff: once past 0.1 + 0.2 + 0.4 + 0.8 s the retries are ~1 s apart;
    # with any jitter, no more than 5 attempts fit in 2 s.
    time.sleep(max(0.0, 1.6 - (time.monotonic() - t_start)))
    a0 = link_attempts(metrics(s))
    time.sleep(2.0)
    a1 = link_attempts(metrics(s))
    assert 1 <= a1 - a0 <= 5, f"{a1 - a0} attempts to reach Redis in 2 s: {redis_metrics(metrics(s))}"
    # Counted per item refused (3 items; the /ws/test publish may count as 1 more).
    assert metrics(s)["redis_publish_rejected_total"] in (3, 4), redis_metrics(metrics(s))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:6379",
    "redis://127.0.0.1:notaport",
    "redis://127.0.0.1:99999",
    "redis://127.0.0.1:6379/notadb",
    "redis://",
])
def test_bad_redis_url_exits_2_at_start(url):
    r = subprocess.run([ringcast_bin(), "--listen", f"127.0.0.1:{free_port()}", "--shards", "1", "--redis", url],
                       capture_output=True, timeout=10)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert (r.stdout + r.stderr).strip(), "no message says what is wrong"


def test_redis_url_from_environment_and_flag_wins(redis_procs, start_server):
    r = redis_procs.start_redis()
    start_server(*SHARDS, env={"REDIS_URL": r.url()})
    wait_for(lambda: r.numsub("ringcast:") == 1, 10, "REDIS_URL honoured")
    start_server(*SHARDS, env={"RINGCAST_REDIS": r.url()})
    wait_for(lambda: r.numsub("ringcast:") == 2, 10, "RINGCAST_REDIS honoured")
    dead = f"redis://127.0.0.1:{free_port()}"  # nothing listens there
    s = start_server(*SHARDS, "--redis", r.url(), env={"REDIS_URL": dead, "RINGCAST_REDIS": dead})
    wait_for(lambda: r.numsub("ringcast:") == 3, 10, "--redis wins over the environment")
    assert ready(s) == (200, {"ready": True})


def test_redis_down_at_start_then_up(redis_procs, start_server):
    r = redis_procs.start_redis()
    r.kill9()
    s = start_server(*SHARDS, "--redis", r.url())
    c = WS(s)
    c.subscribe("late")
    f = WS(s)
    f.firehose()
    wait_for(lambda: metrics(s)["redis_connect_failures_total"] >= 1, 10, "connect failures while down")
    assert ready(s) == (503, NOT_READY)
    r.start()
    wait_for(lambda: ready(s) == (200, {"ready": True}), 5, "/readyz 200 after Redis came up")
    wait_numsub(r, "late", 1, timeout=5)
    wait_numpat(r, 1, timeout=5)
    assert r.numsub("ringcast:") == 1
    r.cli("PUBLISH", "ringcast:late", '"hello"')
    assert c.recv() == b'"hello"' and f.recv() == b'"hello"'
    assert c.barrier() == [] and f.barrier() == []
    assert metrics(s)["redis_up"] == 1


# ---------------------------------------------------------------- 3 nodes, one Redis


TOPICS = [f"mt{k}" for k in range(10)]
PER_NODE, N_MSGS, N_BC = 20, 100, 10


def client_topics(i):
    return [TOPICS[(i + d) % len(TOPICS)] for d in (0, 3, 7)]


def test_three_nodes_every_client_gets_its_topics_exactly_once_in_order(redis_procs, start_server):
    """3 nodes x (20 clients on 3 of 10 topics + 1 firehose). 100 messages per
    topic from a pipelined Redis client and, concurrently, 100 per topic
    (plus 10 broadcasts) from node 0's HTTP API in array requests; then
    POST /ws/test on node 1."""
    r = redis_procs.start_redis()
    nodes = start_nodes(start_server, r, 3)
    n_clients = PER_NODE * len(nodes)
    got = {}
    test_msg = "hello from node 1"

    async def open_client(i):
        node = nodes[i % len(nodes)]
        ws = await aconnect(node.url + "/ws", compression=None, proxy=None, ping_interval=None, max_size=None,
                            max_queue=None, open_timeout=20, close_timeout=2)
        if i < n_clients:
            want = client_topics(i)
            await ws.send(json.dumps({"type": "subscribe", "markets": want}))
            assert json.loads(await ws.recv()) == {"type": "subscribed", "markets": want}
        else:
            await ws.send('{"type":"subscribe_all"}')
            assert json.loads(await ws.recv()) == {"type": "subscribed", "markets": ["*"]}
        return ws

    def expected_count(i):
        topics = TOPICS if i >= n_clients else client_topics(i)
        return len(topics) * 2 * N_MSGS + N_BC + 1

    async def read(i, ws):
        got[i] = []
        for _ in range(expected_count(i)):
            got[i].append(await ws.recv(decode=False))

    def publish_redis():
        c = Resp(r.port)
        cmds = [("PUBLISH", "ringcast:" + t, msg(t, "r", i)) for i in range(N_MSGS) for t in TOPICS]
        replies = c.pipeline(cmds, chunk=100)
        c.close()
        return replies

    def publish_http():
        per_req = N_MSGS // 4
        for q in range(4):
            items = [{"topic": t, "data": {"t": t, "s": "h", "i": i}}
                     for i in range(q * per_req, (q + 1) * per_req) for t in TOPICS]
            items += [{"broadcast": True, "data": {"b": b}} for b in range(q * N_BC // 4, (q + 1) * N_BC // 4)]
            assert publish(nodes[0], items) == len(items)

    async def main():
        conns = [await open_client(i) for i in range(n_clients + len(nodes))]
        try:
            # Wait until Redis shows every node on every topic and the pattern.
            holders = {t: {i % len(nodes) for i in range(n_clients) if t in client_topics(i)} for t in TOPICS}
            for t in TOPICS:
                await asyncio.to_thread(wait_numsub, r, t, len(holders[t]))
            await asyncio.to_thread(wait_numpat, r, len(nodes))
            readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(conns)]
            before = metrics(nodes[0])["redis_published_total"]
            replies, _ = await asyncio.gather(asyncio.to_thread(publish_redis), asyncio.to_thread(publish_http))
            assert metrics(nodes[0])["redis_published_total"] - before == len(TOPICS) * N_MSGS + N_BC
            # Each PUBLISH reaches every node holding the topic, by channel and by pattern.
            assert replies[: len(TOPICS)] == [len(holders[t]) + len(nodes) for t in TOPICS]
            status, resp = await asyncio.to_thread(http, nodes[1], "POST", "/ws/test", {"message": test_msg})
            assert status == 200 and resp["type"] == "test_response", resp
            done, pending = await asyncio.wait(readers, timeout=30)
            for t in pending:
                t.cancel()
            short = {i: (len(got[i]), expected_count(i)) for i in range(len(conns)) if len(got[i]) < expected_count(i)}
            assert not short, f"clients short of messages (got, want): {short}"
            for t in done:
                t.result()
            # Nothing more: a final broadcast is the next message everywhere.
            await asyncio.to_thread(r.cli, "PUBLISH", "ringcast:", '{"final":1}')
            for i, ws in enumerate(conns):
                nxt = await asyncio.wait_for(ws.recv(decode=False), 10)
                assert nxt == b'{"final":1}', f"client {i}: extra message {nxt[:100]!r}"
        finally:
            for ws in conns:
                await ws.close()

    asyncio.run(main())

    bcs = [dumps({"b": b}).encode() for b in range(N_BC)]
    for i, msgs in got.items():
        topics = TOPICS if i >= n_clients else client_topics(i)
        by, other = split(msgs)
        assert set(by) == {(t, src) for t in topics for src in "rh"}, (i, sorted(by))
        for key, seqs in by.items():
            assert seqs == list(range(N_MSGS)), (i, key, seqs)
        tests = [json.loads(m) for m in other if m.startswith(b'{"type":"test"')]
        assert len(tests) == 1 and tests[0]["message"] == test_msg, (i, tests)
        assert [m for m in other if not m.startswith(b'{"type":"test"')] == bcs, i


# ---------------------------------------------------------------- faults


def test_redis_killed_and_restarted(redis_procs, start_server):
    r = redis_procs.start_redis()
    a, b = start_nodes(start_server, r, 2)
    demo = start_server(*SHARDS, "--redis", r.url(), "--demo", "--demo-rate", "100", "--demo-topics", "2")
    wait_for(lambda: r.numsub("ringcast:") == 3, 10, "demo node subscribed")
    at, bt, bf = WS(a), WS(b), WS(b)
    at.subscribe("fault")
    bt.subscribe("fault")
    bf.firehose()
    demo_local, demo_remote = WS(demo), WS(a)
    demo_local.subscribe("demo:BTC")
    demo_remote.subscribe("demo:BTC")
    wait_numsub(r, "fault", 2)
    wait_numsub(r, "demo:BTC", 2)
    wait_numpat(r, 1)
    r.cli("PUBLISH", "ringcast:fault", '"before"')
    for c in (at, bt, bf):
        assert c.recv() == b'"before"'
    base = {n.port: metrics(n) for n in (a, b)}

    r.kill9()
    t_down = time.monotonic()
    for n in (a, b):
        wait_for(lambda: ready(n) == (503, NOT_READY), 5, f"node {n.port} /readyz 503")
        wait_for(lambda: metrics(n)["redis_up"] == 0, 5, "redis_up 0")
        m = metrics(n)
        assert m["redis_disconnects_total"] - base[n.port]["redis_disconnects_total"] >= 1, redis_metrics(m)
        assert http(n, "GET", "/healthz") == (200, {"status": "ok"})
    items = [{"topic": "fault", "data": i} for i in range(3)]
    assert http(a, "POST", "/api/v1/publish", items) == (503, UNAVAILABLE)
    assert http(a, "POST", "/api/v1/publish", {"broadcast": True, "data": 1}) == (503, UNAVAILABLE)
    assert http(b, "POST", "/ws/test", {"message": "down"})[0] == 503
    for n in (a, b):  # the outage is logged, at WARN
        assert any("WARN" in line and "redis" in line.lower() for line in n.logs().splitlines()), n.logs()
    # Clients stay connected; the node-local demo feed keeps flowing.
    for c in (at, bt, bf, demo_remote):
        assert c.barrier() == []
    demo_msgs = [demo_local.recv(timeout=5) for _ in range(5)]
    assert all(json.loads(m)["topic"] == "demo:BTC" for m in demo_msgs), demo_msgs
    # Stay down long enough for the reconnect backoff to sit at its 1 s cap
    # (0.1 + 0.2 + 0.4 + 0.8 + 1 + ...), so a slower cap shows up below.
    time.sleep(max(0.0, 3.0 - (time.monotonic() - t_down)))

    results = {}
    stop = threading.Event()

    def prober():
        k = 0
        while not stop.is_set():
            try:
                c = Resp(r.port)
                while not stop.is_set():
                    c.command("PUBLISH", "ringcast:fault", dumps({"probe": k}))
                    k += 1
                    time.sleep(0.02)
            except OSError:
                time.sleep(0.02)

    def first_probe(name, c):
        while True:
            m = c.recv(timeout=10)
            if m.startswith(b'{"probe":'):
                results[name] = time.monotonic()
                return

    t_restart = time.monotonic()
    r.start()
    t_up = time.monotonic()
    threading.Thread(target=prober, daemon=True).start()
    waiters = [threading.Thread(target=first_probe, args=(name, c), daemon=True)
               for name, c in (("a", at), ("b", bt), ("firehose", bf))]
    for w in waiters:
        w.start()
    for w in waiters:
        w.join(15)
    stop.set()
    assert set(results) == {"a", "b", "firehose"}, f"no delivery after the restart to {set('ab') - set(results)}"
    delays = {k: round(v - t_restart, 3) for k, v in results.items()}
    print(f"delivery resumed {delays} s after the restart (redis-server answered PING after "
          f"{t_up - t_restart:.3f} s)")
    assert all(d < 2.0 for d in delays.values()), f"delivery resumed after {delays} s (redis ready after " \
                                                  f"{t_up - t_restart:.3f} s)"

    # Subscriptions restored, ready again, counted.
    wait_numsub(r, "fault", 2, timeout=5)
    wait_numsub(r, "demo:BTC", 2, timeout=5)
    wait_numpat(r, 1, timeout=5)
    assert r.numsub("ringcast:") == 3
    for n in (a, b):
        wait_for(lambda: ready(n) == (200, {"ready": True}), 5, "/readyz 200 again")
        m = metrics(n)
        assert m["redis_up"] == 1 and m["redis_connects_total"] > base[n.port]["redis_connects_total"], redis_metrics(m)

    # Exactly once, in order, after the recovery (probes still in flight are skipped).
    c = Resp(r.port)
    c.pipeline([("PUBLISH", "ringcast:fault", msg("fault", "r", i)) for i in range(20)]
               + [("PUBLISH", "ringcast:fault", dumps(end("fault", "r")))])
    c.close()
    items = [{"topic": "fault", "data": {"t": "fault", "s": "h", "i": i}} for i in range(20)]
    assert publish(a, items + [{"topic": "fault", "data": end("fault", "h")}]) == 21
    for name, cl in (("a", at), ("b", bt), ("firehose", bf)):
        msgs, probes = read_until_ends(cl, {"fault/r", "fault/h"})
        assert probes == sorted(set(probes)), f"{name}: probes duplicated or reordered {probes}"
        by, other = split(msgs)
        assert other == [] and by == {("fault", "r"): list(range(20)), ("fault", "h"): list(range(20))}, (name, by)
        assert cl.barrier() == []
    # The demo feed never went through Redis: node a's demo:BTC client got only what Redis sent.
    r.cli("PUBLISH", "ringcast:demo:BTC", '"marker"')
    assert demo_remote.recv() == b'"marker"'
    # The outage's refused HTTP publishes were counted per item (3 + 1 on node a).
    m = metrics(a)
    assert m["redis_publish_rejected_total"] - base[a.port]["redis_publish_rejected_total"] == 4, redis_metrics(m)


def test_connections_killed_by_redis_are_reestablished(redis_procs, start_server):
    """Redis stays up but drops the node's connections (CLIENT KILL): the
    node reconnects, resubscribes its channels and the pattern, and
    publishing through it works again, quickly (no 1 s backoff after a link
    that was up), with nothing delivered twice."""
    r = redis_procs.start_redis()
    (s,) = start_nodes(start_server, r, 1)
    t, f = WS(s), WS(s)
    t.subscribe("ck")
    f.firehose()
    wait_numsub(r, "ck", 1)
    wait_numpat(r, 1)
    base = metrics(s)
    killed = int(r.cli("CLIENT", "KILL", "TYPE", "pubsub").strip())
    assert killed >= 1
    t0 = time.monotonic()
    wait_for(lambda: metrics(s)["redis_disconnects_total"] > base["redis_disconnects_total"], 5, "the loss noticed")
    wait_numsub(r, "ck", 1, timeout=5)
    wait_numpat(r, 1, timeout=5)
    wait_for(lambda: r.numsub("ringcast:") == 1, 5, "broadcast channel resubscribed")
    resubscribed = time.monotonic() - t0
    assert resubscribed < 2.0, resubscribed

    # Now every connection, publishing ones included (redis-cli's own is spared).
    r.cli("CLIENT", "KILL", "TYPE", "normal")
    r.cli("CLIENT", "KILL", "TYPE", "pubsub")
    ok, refused = [], 0
    deadline = time.monotonic() + 5
    i = 0
    while len(ok) < 10 and time.monotonic() < deadline:
        status, resp = http(s, "POST", "/api/v1/publish", {"topic": "ck", "data": {"t": "ck", "s": "h", "i": i}})
        if status == 200:
            assert resp == {"published": 1}
            ok.append(i)
        else:
            assert (status, resp) == (503, UNAVAILABLE)
            refused += 1
            time.sleep(0.02)
        i += 1
    assert len(ok) == 10, f"only {len(ok)} publishes accepted in 5 s ({refused} refused)"
    # Once resubscribed, every publish arrives.
    wait_numsub(r, "ck", 1, timeout=5)
    wait_numpat(r, 1, timeout=5)
    for i in range(i, i + 10):
        assert publish(s, {"topic": "ck", "data": {"t": "ck", "s": "h", "i": i}}) == 1
        ok.append(i)
    assert publish(s, {"topic": "ck", "data": end("ck", "h")}) == 1
    for name, c in (("topic", t), ("firehose", f)):
        msgs, _ = read_until_ends(c, {"ck/h"})
        got = [json.loads(m)["i"] for m in msgs]
        # Accepted while the loss was not yet noticed, a publish may be lost;
        # none may arrive twice, out of order, or without a 200.
        assert got == sorted(set(got)) and set(got) <= set(ok), (name, got, ok)
        assert set(ok[-10:]) <= set(got), (name, got, ok)
        assert c.barrier() == []
    assert ready(s) == (200, {"ready": True})


def test_node_killed_others_unaffected(redis_procs, start_server):
    r = redis_procs.start_redis()
    nodes = start_nodes(start_server, r, 3)
    clients = {}
    for k, n in enumerate(nodes):
        one, two, fire = WS(n), WS(n), WS(n)
        one.subscribe("k0")
        two.subscribe("k0", "k1")
        fire.firehose()
        clients[k] = {"one": one, "two": two, "fire": fire}
    wait_numsub(r, "k0", 3)
    wait_numsub(r, "k1", 3)
    wait_numpat(r, 3)

    nodes[2].proc.send_signal(signal.SIGKILL)
    nodes[2].proc.wait(5)
    wait_numsub(r, "k0", 2)
    wait_numsub(r, "k1", 2)
    wait_numsub(r, "", 2)
    wait_numpat(r, 2)
    for c in clients[2].values():
        with pytest.raises((ConnectionClosed, TimeoutError)):
            c.recv(timeout=5)

    pub = Resp(r.port)
    pub.pipeline([("PUBLISH", "ringcast:" + t, msg(t, "r", i)) for i in range(30) for t in ("k0", "k1")]
                 + [("PUBLISH", "ringcast:" + t, dumps(end(t, "r"))) for t in ("k0", "k1")])
    pub.close()
    assert publish(nodes[0], [{"topic": t, "data": {"t": t, "s": "h", "i": i}} for i in range(30) for t in ("k0", "k1")]
                   + [{"topic": t, "data": end(t, "h")} for t in ("k0", "k1")]) == 62
    for k in (0, 1):
        assert ready(nodes[k]) == (200, {"ready": True})
        for name, c in clients[k].items():
            ends = {"k0/r", "k0/h"} | ({"k1/r", "k1/h"} if name != "one" else set())
            msgs, _ = read_until_ends(c, ends)
            by, other = split(msgs)
            want = {("k0", "r"), ("k0", "h")} | ({("k1", "r"), ("k1", "h")} if name != "one" else set())
            assert other == [] and set(by) == want, (k, name, sorted(by), other[:3])
            assert all(seqs == list(range(30)) for seqs in by.values()), (k, name, by)
            assert c.barrier() == []


# ---------------------------------------------------------------- Redis Cluster, sharded pub/sub


def test_sharded_pubsub_on_a_cluster(redis_procs, start_server):
    cl = redis_procs.start_cluster()
    # One topic per master.
    topics, owners = [], {}
    for k in range(200):
        t = f"sh{k}"
        o = cl.owner("ringcast:" + t)
        if o.port not in owners:
            owners[o.port] = t
            topics.append(t)
        if len(topics) == len(cl.nodes):
            break
    assert len(topics) == 3, topics
    owner = {t: cl.owner("ringcast:" + t) for t in topics}
    assert len({o.port for o in owner.values()}) == 3
    bc_owner = cl.owner("ringcast:")

    nodes = [start_server(*SHARDS, "--redis-sharded", "--redis", f"redis://127.0.0.1:{cl.nodes[k].port}")
             for k in range(2)]
    for n in nodes:
        wait_for(lambda: ready(n) == (200, {"ready": True}), 10, f"node {n.port} ready")
    wait_for(lambda: bc_owner.shardnumsub("ringcast:") == 2, 10, "both nodes on the broadcast channel")

    per_node = []
    for n in nodes:
        cs = {t: WS(n) for t in topics}
        for t, c in cs.items():
            c.subscribe(t)
        every, silent, fire = WS(n), WS(n), WS(n)
        every.subscribe(*topics)
        reply = fire.call({"type": "subscribe_all"})
        assert reply["type"] == "error" and reply["message"].startswith(
            "subscribe_all is not available with --redis-sharded"), reply
        reply = fire.call({"type": "subscribe", "markets": ["*"]})
        assert reply["type"] == "error" and "--redis-sharded" in reply["message"], reply
        assert fire.call({"type": "subscribe", "markets": []}) == {"type": "subscribed", "markets": []}
        per_node.append({"topics": cs, "every": every, "silent": silent, "fire": fire})
    for t in topics:
        wait_for(lambda: owner[t].shardnumsub("ringcast:" + t) == 2, 10, f"SHARDNUMSUB ringcast:{t} == 2 on its owner")
        for other in cl.nodes:
            if other is not owner[t]:
                assert other.shardnumsub("ringcast:" + t) == 0, (t, other.port)
    for node in cl.nodes:
        assert node.numpat() == 0 and node.channels() == []  # no plain SUBSCRIBE / PSUBSCRIBE in sharded mode

    # redis-cli -c follows MOVED: publish through a master that does not own the slot.
    n_msgs = 8
    for i in range(n_msgs):
        for t in topics:
            via = next(x for x in cl.nodes if x is not owner[t])
            out = via.cli("SPUBLISH", "ringcast:" + t, msg(t, "r", i).decode(), cluster=True)
            assert out.strip() == "2", out
    items = [{"topic": t, "data": {"t": t, "s": "h", "i": i}} for i in range(n_msgs) for t in topics]
    assert publish(nodes[0], items) == len(items)
    assert publish(nodes[1], {"broadcast": True, "data": "bc-http"}) == 1
    bc_owner.cli("SPUBLISH", "ringcast:", '"bc-cli"', cluster=True)
    status, resp = http(nodes[0], "POST", "/ws/test", {"message": "sharded"})
    assert status == 200 and resp["type"] == "test_response", resp

    def check(c, want_topics, name):
        msgs = []
        for _ in range(len(want_topics) * 2 * n_msgs + 3):
            msgs.append(c.recv())
        by, other = split(msgs)
        assert set(by) == {(t, s) for t in want_topics for s in "rh"}, (name, sorted(by))
        assert all(seqs == list(range(n_msgs)) for seqs in by.values()), (name, by)
        tests = [json.loads(m) for m in other if m.startswith(b'{"type":"test"')]
        assert len(tests) == 1 and tests[0]["message"] == "sharded", (name, other)
        assert sorted(m for m in other if not m.startswith(b'{"type":"test"')) == [b'"bc-cli"', b'"bc-http"'], \
            (name, other)
        assert c.barrier() == [], name

    for k, pn in enumerate(per_node):
        for t, c in pn["topics"].items():
            check(c, [t], f"node{k}/{t}")
        check(pn["every"], topics, f"node{k}/every")
        check(pn["silent"], [], f"node{k}/silent")
        check(pn["fire"], [], f"node{k}/refused-firehose")

    # The last local subscriber leaving SUNSUBSCRIBEs.
    t0 = topics[0]
    per_node[0]["topics"][t0].close()
    assert per_node[0]["every"].call({"type": "unsubscribe", "markets": [t0]})["type"] == "subscribed"
    wait_for(lambda: owner[t0].shardnumsub("ringcast:" + t0) == 1, 10, f"SHARDNUMSUB ringcast:{t0} == 1")
