"""With --redis a 2xx means Redis took the message (issue 13, point 4 and the
Redis half of point 5): real redis-server processes, real ringcast nodes
(two sharing one Redis where the point is cross-node delivery), WebSocket
subscribers on both nodes.

  a. normal: N publishes through node A, all 200, each delivered exactly
     once, in order, to the subscribers of both nodes;
  b. `ACL SETUSER default -publish`: 503 carrying Redis' NOPERM, nothing
     delivered, /readyz 503 "redis refusing publishes" within 2 s with no
     publish traffic at all (the idle probe), one WARN line per episode (not
     one per publish), ready and delivering within 2 s of +publish;
  c. `CLIENT PAUSE 6000 ALL` under a steady publisher: /readyz 503 within
     2 s, no 200 while Redis is paused, every publish answered within
     --redis-timeout-ms (+ a tick), every 200 delivered on both nodes,
     recovery within seconds of the pause's end;
  d. redis-server killed -9 under a publish load (paused for 0.3 s first, so
     publishes are in flight when it dies) and restarted on the same port:
     no 200 for anything sent while it was paused or down (the ones waiting
     at the kill get 503), every 200 answered before the pause and after
     both nodes are back reaches every subscriber of both nodes;
  e. --redis-timeout-ms 500: a pause gives 504 within ~0.7 s;
  f. 50 publishes pipelined on one keep-alive connection in one write:
     50 answers in order, all 200, delivered in order.

/readyz and /metrics are read on each node's admin port (server.admin_port);
every publish says Content-Type: application/json. Every node runs with
--shards 2.
"""
import http.client as httpc
import json
import socket
import threading
import time
import types

import pytest

from redis_util import Resp, redis_procs, wait_for  # noqa: F401  (redis_procs is a fixture)
from test_redis import WS, close_clients_first, dumps, http  # noqa: F401  (close_clients_first: an autouse fixture)

SHARDS = ("--shards", "2")
TOPIC = "ack"
pytestmark = pytest.mark.timeout(60)

READY = (200, {"ready": True})


# ---------------------------------------------------------------- helpers


def admin(node):
    """node's admin listener, in the shape test_redis.http() takes."""
    return types.SimpleNamespace(host=node.host, port=node.admin_port)


def readyz(node, timeout=2):
    try:
        return http(admin(node), "GET", "/readyz", timeout=timeout)
    except OSError as e:
        return None, repr(e)


def metrics(node):
    status, text = http(admin(node), "GET", "/metrics", raw=True)
    assert status == 200, (status, text)
    out = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(None, 1)
            out[name.removeprefix("ringcast_")] = float(value)
    return out


def wait_ready(nodes, timeout):
    deadline = time.monotonic() + timeout
    for n in nodes:
        while (last := readyz(n)) != READY:
            if time.monotonic() > deadline:
                tail = "\n".join(n.logs().splitlines()[-15:])
                raise AssertionError(f"node {n.port}: /readyz {last} after {timeout} s; log ends:\n{tail}")
            time.sleep(0.05)


def start_nodes(start_server, redis, n, *extra):
    """n nodes on one Redis, returned once each is ready and subscribed to
    the broadcast channel."""
    nodes = [start_server(*SHARDS, "--redis", redis.url(), *extra) for _ in range(n)]
    wait_ready(nodes, 10)
    wait_for(lambda: redis.numsub("ringcast:") == n, 10, f"NUMSUB ringcast: == {n}")
    return nodes


def wait_numsub(redis, topic, n, timeout=10):
    wait_for(lambda: redis.numsub("ringcast:" + topic) == n, timeout, f"NUMSUB ringcast:{topic} == {n}")


def item(pid):
    """The request body publishing {"id":pid} on TOPIC, and the exact bytes
    delivered for it."""
    data = {"id": pid}
    return dumps({"topic": TOPIC, "data": data}), dumps(data).encode()


class Publisher:
    """POST /api/v1/publish on one keep-alive connection. post() never
    retries (a retried publish could be delivered twice): a transport error
    is returned as status "err" and the next post() reconnects."""

    def __init__(self, node, timeout=10):
        self.node, self.timeout, self.c = node, timeout, None

    def post(self, body):
        try:
            if self.c is None:
                self.c = httpc.HTTPConnection(self.node.host, self.node.port, timeout=self.timeout)
            self.c.request("POST", "/api/v1/publish", body, {"Content-Type": "application/json"})
            r = self.c.getresponse()
            data = r.read()
            if r.will_close:
                self.close()
            try:
                return r.status, json.loads(data)
            except ValueError:
                return r.status, data
        except (OSError, httpc.HTTPException) as e:
            self.close()
            return "err", repr(e)

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


class Sub:
    """A /ws subscriber of TOPIC whose messages a thread collects."""

    def __init__(self, node, name):
        self.name = name
        self.ws = WS(node)
        self.ws.subscribe(TOPIC)
        self.msgs, self.pongs, self.closed = [], 0, False
        self.cv = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                m = self.ws.ws.recv(decode=False)
            except Exception:
                break
            with self.cv:
                if m == b'{"type":"pong"}':
                    self.pongs += 1
                else:
                    self.msgs.append(m)
                self.cv.notify_all()
        with self.cv:
            self.closed = True
            self.cv.notify_all()

    def ids(self):
        with self.cv:
            msgs = list(self.msgs)
        return [json.loads(m)["id"] for m in msgs]

    def wait_ids(self, want, timeout):
        """Waits until every id in want has arrived (False on timeout)."""
        want = set(want)
        deadline = time.monotonic() + timeout
        while True:
            if want <= set(self.ids()):
                return True
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return False
            with self.cv:
                self.cv.wait(min(left, 0.1))

    def barrier(self, timeout=10):
        """Returns once every message the node sent before the pong of a ping
        sent now has been collected."""
        with self.cv:
            n = self.pongs
        self.ws.send({"type": "ping"})
        with self.cv:
            assert self.cv.wait_for(lambda: self.pongs > n or self.closed, timeout), f"{self.name}: no pong"
            assert not self.closed, f"{self.name}: connection closed"


def subscribers(redis, nodes, per_node=2):
    """per_node subscribers of TOPIC on each node (with --shards 2 they
    usually land on both shards), once Redis shows every node subscribed."""
    subs = [Sub(n, f"node{k}/sub{j}") for k, n in enumerate(nodes) for j in range(per_node)]
    wait_numsub(redis, TOPIC, len(nodes))
    return subs


def warn_lines(node, text):
    return [l for l in node.logs().splitlines() if " WARN " in l and text in l]


def publish_loop(pub, prefix, stop, log, pause=0.0, idle_after_fail=0.01):
    """Publishes {"id": prefix-k} until stop is set, appending (id, status,
    body, sent, answered) to log (monotonic times)."""
    k = 0
    while not stop.is_set():
        pid = f"{prefix}-{k}"
        body, _ = item(pid)
        t0 = time.monotonic()
        status, resp = pub.post(body)
        log.append((pid, status, resp, t0, time.monotonic()))
        k += 1
        if status != 200:
            time.sleep(idle_after_fail)  # a 503 is immediate: do not spin
        elif pause:
            time.sleep(pause)
    pub.close()


def statuses(log):
    out = {}
    for rec in log:
        out[rec[1]] = out.get(rec[1], 0) + 1
    return out


def check_delivered(subs, want, what, grace=3.0):
    """Every id in want (in that order) reached every subscriber exactly once
    and in order among themselves."""
    for s in subs:
        ok = s.wait_ids(want, grace)
        got = s.ids()
        assert len(got) == len(set(got)), f"{s.name}: duplicates {sorted(x for x in set(got) if got.count(x) > 1)[:10]}"
        if not ok:
            missing = [x for x in want if x not in set(got)]
            raise AssertionError(f"{s.name}: {len(missing)} of {len(want)} {what} never delivered: {missing[:20]}")
        pos = {x: i for i, x in enumerate(got)}
        order = [x for x in sorted(want, key=pos.__getitem__)]
        assert order == list(want), f"{s.name}: {what} reordered"


# ---------------------------------------------------------------- a. normal


def test_normal_publishes_are_200_and_delivered_once_in_order_on_both_nodes(redis_procs, start_server):
    r = redis_procs.start_redis()
    a, b = start_nodes(start_server, r, 2)
    subs = subscribers(r, (a, b))
    pub = Publisher(a)
    want = []
    for k in range(200):
        body, _ = item(f"n-{k}")
        assert pub.post(body) == (200, {"published": 1}), k
        want.append(f"n-{k}")
    pub.close()
    for s in subs:
        assert s.wait_ids(want, 5), f"{s.name}: got {len(s.ids())} of {len(want)}"
        s.barrier()
        with s.cv:
            got = list(s.msgs)
        # The exact JSON text of each "data", once each, in publish order, nothing else.
        assert got == [item(x)[1] for x in want], s.name


# ---------------------------------------------------------------- b. Redis refuses PUBLISH (ACL)


def test_acl_without_publish_gives_503_not_ready_one_log_line(redis_procs, start_server):
    r = redis_procs.start_redis()
    a, b = start_nodes(start_server, r, 2)
    subs = subscribers(r, (a, b))
    pub = Publisher(a)
    try:
        # No publish traffic at all: the idle probe must find it out.
        time.sleep(0.6)
        assert r.command("ACL", "SETUSER", "default", "-publish") == "OK"
        t0 = time.monotonic()
        refusing = (503, {"ready": False, "reason": "redis refusing publishes"})
        for n in (a, b):
            wait_for(lambda: readyz(n) == refusing, 2.0 - (time.monotonic() - t0), f"node {n.port} refusing",
                     interval=0.05)
        detect = time.monotonic() - t0
        assert metrics(a)["redis_up"] == 1  # the link is up; Redis refuses what we send on it

        answers = [pub.post(item(f"x-{k}")[0]) for k in range(200)]
        bad = [(k, a_) for k, a_ in enumerate(answers) if a_[0] != 503 or "NOPERM" not in a_[1].get("error", "")]
        assert not bad, bad[:5]
        assert answers[0][1]["status"] == 503 and answers[0][1]["error"].startswith("redis refused the publish"), \
            answers[0]
        assert readyz(a) == refusing and readyz(b) == refusing
        # Once per state change, whatever the publish count: node a had 200 refusals, node b none.
        for n in (a, b):
            lines = warn_lines(n, "refuses publishes")
            assert len(lines) == 1, (n.port, lines[:5], len(lines))
            assert "NOPERM" in lines[0]
    finally:
        r.command("ACL", "SETUSER", "default", "+publish")
    t1 = time.monotonic()
    for n in (a, b):
        wait_for(lambda: readyz(n) == READY, 2.0 - (time.monotonic() - t1), f"node {n.port} ready again",
                 interval=0.05)
    recover = time.monotonic() - t1
    want = []
    for k in range(20):
        assert pub.post(item(f"y-{k}")[0]) == (200, {"published": 1}), k
        want.append(f"y-{k}")
    pub.close()
    for s in subs:
        assert s.wait_ids(want, 5), s.name
        s.barrier()
        assert s.ids() == want, f"{s.name}: a refused publish was delivered: {s.ids()[:5]}"
    for n in (a, b):
        # The log follows readiness within a loop pass of shard 0.
        wait_for(lambda: warn_lines(n, "answers publishes again"), 1.0, f"node {n.port} logs the recovery")
        assert len(warn_lines(n, "refuses publishes")) == 1, n.logs()
        assert len(warn_lines(n, "answers publishes again")) == 1, n.logs()
    print(f"refusal seen by both nodes after {detect:.2f} s, recovery after {recover:.2f} s")


# ---------------------------------------------------------------- c. CLIENT PAUSE


def test_client_pause_never_200_while_paused_and_every_200_delivered(redis_procs, start_server):
    r = redis_procs.start_redis()
    a, b = start_nodes(start_server, r, 2)
    subs = subscribers(r, (a, b), per_node=1)
    log, stop = [], threading.Event()
    worker = threading.Thread(target=publish_loop, args=(Publisher(a, timeout=15), "c", stop, log),
                              kwargs={"pause": 0.002}, daemon=True)
    worker.start()
    try:
        wait_for(lambda: sum(1 for x in log if x[1] == 200) >= 50, 5, "50 publishes answered 200 before the pause")
        ctl = Resp(r.port)
        t_send = time.monotonic()
        assert ctl.command("CLIENT", "PAUSE", "6000", "ALL") == "OK"
        t_paused = time.monotonic()  # Redis runs nothing from here on
        t_unpause = t_send + 6.0  # it runs commands again from about here
        ctl.close()
        not_ready = [(503, {"ready": False, "reason": "redis stalled"}),
                     (503, {"ready": False, "reason": "redis unavailable"})]
        for n in (a, b):
            got = wait_for(lambda: (lambda x: x in not_ready and x)(readyz(n)), 2.0 - (time.monotonic() - t_send),
                           f"node {n.port} /readyz 503 during the pause", interval=0.05)
        detect = time.monotonic() - t_send
        # Past the pause: ready again within a few seconds, and 200s again.
        time.sleep(max(0.0, t_unpause - time.monotonic()))
        wait_ready((a, b), 3)
        t_ready = time.monotonic()
        wait_for(lambda: sum(1 for x in log if x[1] == 200 and x[3] > t_ready) >= 50, 5, "200s after the recovery")
    finally:
        stop.set()
        worker.join(20)
    counts = statuses(log)
    print(f"pause: /readyz 503 after {detect:.2f} s ({got}); ready {t_ready - t_unpause:.2f} s after the pause "
          f"ended; answers {counts}")

    # Sent while Redis ran nothing, answered before it ran anything again: never 200.
    during = [x for x in log if x[3] > t_paused and x[4] < t_unpause - 0.05]
    assert during and not [x for x in during if x[1] == 200], [x for x in during if x[1] == 200][:5]
    assert {x[1] for x in during} <= {503, 504}, statuses(during)
    assert all(x[2].get("status") == x[1] for x in during), during[:3]
    # Answered inside the pause (a publish Redis took just before it may still
    # be answered 200 a moment after): no 200, and the publish(es) waiting when
    # the link was given up got 504.
    answered = [x for x in log if t_paused + 0.1 < x[4] < t_unpause - 0.05]
    assert not [x for x in answered if x[1] == 200], [x for x in answered if x[1] == 200][:5]
    assert any(x[1] == 504 for x in answered), statuses(answered)
    # Every publish is answered within --redis-timeout-ms (2000) + a tick, the one
    # in flight when the pause began included.
    slow = [(x[0], x[1], round(x[4] - x[3], 3)) for x in log if x[4] > t_send and x[4] - x[3] > 2.5]
    assert not slow, slow
    assert "err" not in counts, [x for x in log if x[1] == "err"][:5]

    acked = [x[0] for x in log if x[1] == 200]
    check_delivered(subs, acked, "200-answered publishes")
    for s in subs:
        got = set(s.ids())
        assert not (got - {x[0] for x in log}), s.name
    warn_stall = warn_lines(a, "stalled")
    assert len(warn_stall) == 1, warn_stall


# ---------------------------------------------------------------- d. kill -9 under load


def test_redis_killed_under_load_no_200_while_down_every_200_delivered(redis_procs, start_server):
    r = redis_procs.start_redis()
    a, b = start_nodes(start_server, r, 2)
    subs = subscribers(r, (a, b), per_node=1)
    log, stop = [], threading.Event()
    workers = [threading.Thread(target=publish_loop, args=(Publisher(n), f"{name}{k}", stop, log), daemon=True)
               for name, n in (("a", a), ("b", b)) for k in range(2)]
    for w in workers:
        w.start()
    try:
        wait_for(lambda: sum(1 for x in log if x[1] == 200) >= 200, 5, "200 publishes answered 200 before the kill")
        # Redis runs nothing for a moment before it dies, so the kill finds
        # publishes in flight (sent, not yet answered by Redis) on both nodes.
        ctl = Resp(r.port)
        assert ctl.command("CLIENT", "PAUSE", "1000", "ALL") == "OK"
        t_paused = time.monotonic()
        ctl.close()
        time.sleep(0.3)
        t_kill = time.monotonic()
        r.kill9()
        t_dead = time.monotonic()  # redis-server has exited and its port is free
        time.sleep(1.0)
        t_start = time.monotonic()
        r.start()
        wait_ready((a, b), 10)
        wait_numsub(r, TOPIC, 2, timeout=5)
        t_up = time.monotonic()  # both nodes are subscribed again
        wait_for(lambda: sum(1 for x in log if x[1] == 200 and x[3] > t_up) >= 200, 5, "200s after the restart")
    finally:
        stop.set()
        for w in workers:
            w.join(15)
    counts = statuses(log)
    print(f"kill -9 under load: answers {counts}; both nodes back {t_up - t_start:.2f} s after the restart")

    while_down = [x for x in log if x[3] > t_dead and x[4] < t_start]
    assert while_down, "no publish while Redis was down"
    assert not [x for x in while_down if x[1] == 200], [x for x in while_down if x[1] == 200][:5]
    assert {x[1] for x in while_down} == {503}, statuses(while_down)
    # Sent while Redis was paused or dead: Redis never took them.
    never = [x for x in log if t_paused < x[3] < t_start]
    assert never and not [x for x in never if x[1] == 200], [x for x in never if x[1] == 200][:5]
    held = [x for x in never if x[4] > t_kill]  # waiting at the kill: answered 503 when the link broke
    assert held and {x[1] for x in held} == {503}, statuses(held)
    assert "err" not in counts, [x for x in log if x[1] == "err"][:5]

    # Per publisher: what it got 200 for before the kill, and after both nodes were back.
    for prefix in sorted({x[0].rsplit("-", 1)[0] for x in log}):
        mine = [x for x in log if x[0].rsplit("-", 1)[0] == prefix]
        before = [x[0] for x in mine if x[1] == 200 and x[4] < t_kill]
        after = [x[0] for x in mine if x[1] == 200 and x[3] > t_up]
        assert before and after, prefix
        check_delivered(subs, before, f"{prefix}'s 200s before the kill")
        check_delivered(subs, after, f"{prefix}'s 200s after both nodes were back")
    # The 200s in between are not checked: answered as Redis died (Redis
    # writes the publisher's reply before the subscribers' copies, and a
    # node closing its link may drop a copy it had already received), or
    # published after the restart before the other node had re-subscribed
    # (the history issue's to recover). Counted for the log.
    between = [x[0] for x in log if x[1] == 200 and x[4] >= t_kill and x[3] <= t_up]
    seen = [set(s.ids()) for s in subs]
    print(f"{len(between)} 200s between the kill and both nodes back; not delivered: "
          f"{[(s.name, [x for x in between if x not in got]) for s, got in zip(subs, seen)]}")


# ---------------------------------------------------------------- e. --redis-timeout-ms


def test_redis_timeout_flag_gives_504_quickly(redis_procs, start_server):
    r = redis_procs.start_redis()
    (a,) = start_nodes(start_server, r, 1, "--redis-timeout-ms", "500")
    subs = subscribers(r, (a,), per_node=1)
    pub = Publisher(a)
    assert pub.post(item("e-0")[0]) == (200, {"published": 1})
    ctl = Resp(r.port)
    assert ctl.command("CLIENT", "PAUSE", "2500", "ALL") == "OK"
    t_pause = time.monotonic()
    ctl.close()
    t0 = time.monotonic()
    status, resp = pub.post(item("e-1")[0])
    took = time.monotonic() - t0
    print(f"--redis-timeout-ms 500: {status} after {took:.3f} s: {resp}")
    assert status == 504 and resp["status"] == 504, (status, resp)
    assert took <= 0.75, took
    assert "500 ms" in resp["error"], resp
    # The link was dropped as stalled: at once 503 until it is back.
    t0 = time.monotonic()
    status, resp = pub.post(item("e-2")[0])
    assert status == 503 and time.monotonic() - t0 < 0.5, (status, resp)
    time.sleep(max(0.0, t_pause + 2.5 - time.monotonic()))
    wait_ready((a,), 6)
    assert pub.post(item("e-3")[0]) == (200, {"published": 1})
    pub.close()
    assert subs[0].wait_ids(["e-0", "e-3"], 3)
    assert "e-2" not in subs[0].ids()


# ---------------------------------------------------------------- f. pipelining on one connection


def read_response(sock, buf):
    """(status, headers dict, body, rest of buf) of one HTTP/1.1 response."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed with {buf!r} unread")
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a body")
        buf += chunk
    return status, headers, buf[:n], buf[n:]


def test_pipelined_publishes_on_one_connection_answered_in_order(redis_procs, start_server):
    r = redis_procs.start_redis()
    a, b = start_nodes(start_server, r, 2)
    subs = subscribers(r, (a, b), per_node=1)
    want = [f"p-{k}" for k in range(50)]
    reqs = []
    for pid in want:
        body = item(pid)[0].encode()
        reqs.append(b"POST /api/v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    with socket.create_connection((a.host, a.port), timeout=10) as sock:
        sock.sendall(b"".join(reqs))
        buf, answers = b"", []
        for _ in want:
            status, headers, body, buf = read_response(sock, buf)
            answers.append((status, json.loads(body)))
            assert headers.get("connection", "").lower() != "close", headers
        assert buf == b""
    assert answers == [(200, {"published": 1})] * 50, answers
    for s in subs:
        assert s.wait_ids(want, 5), s.name
        s.barrier()
        assert s.ids() == want, s.name
