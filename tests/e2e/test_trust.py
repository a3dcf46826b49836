"""Who may publish, read operator data and subscribe (issue 13, points 1-3).

  * publish authentication: with no token only loopback peers may publish
    (a WARN line at start says so), --publish-open lets anyone; with
    --publish-token (repeatable, RINGCAST_PUBLISH_TOKEN, or a file re-read
    on SIGHUP) every publish path on both ports needs one of the tokens as
    "Authorization: Bearer" or "X-API-Key", else 401 with WWW-Authenticate
    and a JSON body; the body must be Content-Type application/json (415),
    and an Origin that --allowed-origins does not allow is 403, so no
    browser page can publish cross-site;
  * ports: the client port serves WebSocket paths, publish and
    /healthz,/health only; the admin port serves /metrics, /readyz, the
    dashboard (guarded by --admin-token) and answers while the client port
    is full;
  * subscription policy: --allowed-origins on upgrades, --firehose
    deny|token, --private-topics opened by HS256 client tokens (?token=).

Every refusal is checked for what it must NOT do as well: a refused publish
is never delivered to a real subscriber, a refused subscribe subscribes
nothing. The proof of non-delivery is a sentinel: the subscriber also
listens on a topic that a later, allowed publish reaches; the sentinel must
be the very next message, and a ping round trip after a pause shows nothing
else is queued. Servers run with --shards 1 where the order matters.

A non-loopback peer on this one machine: the client socket is bound to a
local IPv4 address outside 127/8 (an existing one, or one added with `ip`
and removed afterwards) and the server listens on 0.0.0.0.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

import conftest
from conftest import free_port, ringcast_bin
from wsraw import OP_TEXT, RawWS, http_request

pytestmark = pytest.mark.timeout(120)

ONE = ("--shards", "1")
JSON_CT = ("Content-Type", "application/json")
SECRET = "s3cret-for-tests"
WWW_AUTH = 'Bearer realm="ringcast"'


@pytest.fixture(autouse=True)
def _fds(enough_fds):
    """--max-conns test holds a few dozen sockets (conftest's enough_fds)."""


OPEN = []


@pytest.fixture(autouse=True)
def close_clients_first(start_server):
    """Closes the test's WebSocket clients before start_server stops the
    server, so its drain never waits for clients nobody reads."""
    yield
    while OPEN:
        OPEN.pop().close()


# ---------------------------------------------------------------- HTTP helpers


def request(server, method, path, headers=(), body=b"", port=None, source=None, host=None):
    """One request on a fresh connection (Connection: close) to the client
    port, or to `port`; `source` binds the client socket to that local
    address first. Returns (status, {lower-case header: value}, body)."""
    if isinstance(body, str):
        body = body.encode()
    dst = (host or server.host, port or server.port)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {dst[0]}:{dst[1]}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return http_request(dst[0], dst[1], ("\r\n".join(lines) + "\r\n\r\n").encode() + body, source=source)


def publish(server, topic, data, headers=(JSON_CT,), **kw):
    """POST /api/v1/publish of one item; returns (status, headers, body)."""
    body = json.dumps({"topic": topic, "data": data}, separators=(",", ":"))
    return request(server, "POST", "/api/v1/publish", headers, body, **kw)


def ws_test(server, message, headers=(JSON_CT,), **kw):
    """POST /ws/test (a broadcast to every /ws connection)."""
    return request(server, "POST", "/ws/test", headers, json.dumps({"message": message}), **kw)


def bearer(tok):
    return ("Authorization", f"Bearer {tok}")


def assert_json_error(resp, status, contains=None):
    """resp is a JSON error of `status`: {"error": "<words>", "status": status}."""
    got, hdrs, body = resp
    assert got == status, (got, body)
    assert hdrs.get("content-type", "").startswith("application/json"), hdrs
    j = json.loads(body)
    assert set(j) >= {"error", "status"} and j["status"] == status, j
    assert isinstance(j["error"], str) and j["error"], j
    if contains:
        assert re.search(contains, j["error"], re.I), j
    return j


def assert_published(resp, n=1):
    status, _, body = resp
    assert status == 200, (status, body)
    assert json.loads(body) == {"published": n}, body


def assert_401(resp):
    assert_json_error(resp, 401)
    assert resp[1].get("www-authenticate") == WWW_AUTH, resp[1]


def log_lines(server, level, pattern):
    return [l for l in server.logs().splitlines() if f" {level} " in l and re.search(pattern, l)]


def wait_until(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# ---------------------------------------------------------------- WebSocket helpers


class WS(RawWS):
    """A raw WebSocket client of /ws. .status is the handshake's status;
    when it is not 101, .body is the JSON of the answer."""

    def __init__(self, server, path="/ws", headers=None, port=None):
        super().__init__(server.host, port or server.port, path=path, headers=headers)
        OPEN.append(self)
        self.body = None
        if self.status != 101:
            n = int(self.response_headers.get("content-length", "0"))
            self._need(n)
            self.body, self.buf = json.loads(self.buf[:n]), self.buf[n:]

    def send_json(self, obj):
        self.send_frame(OP_TEXT, json.dumps(obj))

    def recv_json(self):
        op, payload = self.recv_message()
        assert op == OP_TEXT, op
        return json.loads(payload)

    def call(self, obj):
        self.send_json(obj)
        return self.recv_json()

    def subscribe(self, *topics):
        """Subscribes; asserts the ack. Returns the current set."""
        ack = self.call({"type": "subscribe", "markets": list(topics)})
        assert ack.get("type") == "subscribed" and set(topics) <= set(ack["markets"]), ack
        return ack["markets"]

    def refused(self, obj, contains=None):
        """Sends obj; the answer must be an error message. Returns its text."""
        reply = self.call(obj)
        assert reply.get("type") == "error" and isinstance(reply.get("message"), str), reply
        if contains:
            assert re.search(contains, reply["message"], re.I), reply
        return reply["message"]

    def current_set(self):
        """The current subscriptions (an unsubscribe of nothing answers the full set)."""
        ack = self.call({"type": "unsubscribe", "markets": ["never-subscribed-topic"]})
        assert ack.get("type") == "subscribed", ack
        return ack["markets"]

    def nothing_more(self, pause=0.3):
        """Asserts that nothing else arrives: after a pause, a ping's pong is
        the next message."""
        time.sleep(pause)
        self.send_json({"type": "ping"})
        extra = []
        while True:
            m = self.recv_json()
            if m == {"type": "pong"}:
                break
            extra.append(m)
        assert extra == [], f"unexpected messages: {extra}"


def expect_upgraded(ws):
    assert ws.status == 101, (ws.status, ws.body)
    assert ws.call({"type": "ping"}) == {"type": "pong"}


def expect_refused_upgrade(ws, status, contains=None):
    assert ws.status == status, (ws.status, ws.body)
    assert isinstance(ws.body, dict) and ws.body.get("status") == status and ws.body.get("error"), ws.body
    if contains:
        assert re.search(contains, ws.body["error"], re.I), ws.body
    # no upgrade: the server closes the connection after the answer
    ws.expect_eof()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims, secret=SECRET, alg="HS256", header=None):
    """A compact JWS: HS256 (or HS512 / none, to be refused) over the claims."""
    h = b64u(json.dumps(header or {"alg": alg, "typ": "JWT"}).encode())
    p = b64u(json.dumps(claims).encode())
    signing = f"{h}.{p}".encode()
    if alg == "none":
        sig = b""
    else:
        sig = hmac.new(secret.encode(), signing, hashlib.sha512 if alg == "HS512" else hashlib.sha256).digest()
    return f"{h}.{p}.{b64u(sig)}"


# ---------------------------------------------------------------- a non-loopback peer


def _usable(addr):
    """Whether a socket bound to addr can connect to a listener on addr."""
    try:
        with socket.socket() as l, socket.socket() as c:
            l.bind((addr, 0))
            l.listen(1)
            c.settimeout(2)
            c.bind((addr, 0))
            c.connect(l.getsockname())
            return True
    except OSError:
        return False


def _ip(*args):
    return subprocess.run(["ip", *args], capture_output=True, text=True)


@pytest.fixture
def foreign_addr(request):
    """A local IPv4 address outside 127.0.0.0/8: an existing one (no change
    to the machine), else one added to a dummy interface (or, without the
    dummy driver, as a /32 on lo) and removed when the test ends."""
    try:
        out = _ip("-4", "-o", "addr", "show", "scope", "global").stdout
    except FileNotFoundError:
        pytest.skip("no `ip` command: cannot find or add a local address outside 127/8")
    for addr in re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out):
        if not addr.startswith("127.") and _usable(addr):
            return addr
    pid = os.getpid()
    addr = f"10.254.{(pid >> 8) & 255}.{pid % 250 + 2}"
    dev = f"rcd{pid % 100000}"
    errors = []
    r = _ip("link", "add", dev, "type", "dummy")
    if r.returncode == 0:
        request.addfinalizer(lambda: _ip("link", "del", dev))
        for cmd in (("addr", "add", f"{addr}/32", "dev", dev), ("link", "set", dev, "up")):
            r = _ip(*cmd)
            if r.returncode:
                pytest.skip(f"`ip {' '.join(cmd)}` failed: {r.stderr.strip()}")
    else:
        errors.append(f"ip link add {dev} type dummy: {r.stderr.strip()}")
        r = _ip("addr", "add", f"{addr}/32", "dev", "lo")
        if r.returncode:
            errors.append(f"ip addr add {addr}/32 dev lo: {r.stderr.strip()}")
            pytest.skip("cannot add a local address outside 127/8 (needs CAP_NET_ADMIN): " + "; ".join(errors))
        request.addfinalizer(lambda: _ip("addr", "del", f"{addr}/32", "dev", "lo"))
    if not _usable(addr):
        pytest.skip(f"added {addr} but cannot connect from it to itself")
    return addr


def start_everywhere(start_server, monkeypatch, *args, **kw):
    """A server whose client port listens on 0.0.0.0 (reachable from the
    foreign address too); conftest's Server always adds --listen
    127.0.0.1:<port>, a later --listen replaces it, on the same port."""
    port = free_port()
    real = conftest.free_port
    ports = iter([port])
    monkeypatch.setattr(conftest, "free_port", lambda: next(ports, None) or real())
    try:
        return start_server("--listen", f"0.0.0.0:{port}", *args, **kw)
    finally:
        monkeypatch.setattr(conftest, "free_port", real)


def run_expecting_exit(args, env=None, timeout=10):
    """Runs ringcast (ports of its own, admin listener off); returns
    (exit code, output). A server that starts is killed: None."""
    port = free_port()
    p = subprocess.Popen([ringcast_bin(), "--shards", "1", "--listen", f"127.0.0.1:{port}", "--admin-listen", "off",
                          *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, **(env or {})})
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        return None, out


# ================================================================ 1. publish authentication


def test_no_token_loopback_publishes_and_start_log_warns(start_server):
    s = start_server(*ONE)
    sub = WS(s)
    sub.subscribe("t")
    assert_published(publish(s, "t", {"n": 1}))
    assert sub.recv_json() == {"n": 1}
    ws_status, _, body = ws_test(s, "hello")
    assert ws_status == 200, body
    m = sub.recv_json()
    assert m["type"] == "test" and m["message"] == "hello", m
    warn = log_lines(s, "WARN", r"no --publish-token: publishing is accepted only from loopback")
    assert len(warn) == 1, s.logs()


def test_no_token_non_loopback_peer_is_refused_403(start_server, foreign_addr, monkeypatch):
    s = start_everywhere(start_server, monkeypatch, *ONE)
    sub = WS(s)
    sub.subscribe("t", "sentinel")
    for path in ("/api/v1/publish", "/ws/test"):
        body = json.dumps({"topic": "t", "data": {"from": "foreign"}} if path != "/ws/test" else {"message": "foreign"})
        resp = request(s, "POST", path, [JSON_CT], body, host=foreign_addr, source=foreign_addr)
        assert_json_error(resp, 403, "loopback")
    # the same request from loopback goes through; nothing of the refused ones arrived before it
    assert_published(publish(s, "sentinel", "ok"))
    assert sub.recv_json() == "ok"
    sub.nothing_more()


def test_publish_open_lets_a_non_loopback_peer_publish_and_warns(start_server, foreign_addr, monkeypatch):
    s = start_everywhere(start_server, monkeypatch, *ONE, "--publish-open")
    sub = WS(s)
    sub.subscribe("t")
    assert_published(publish(s, "t", {"from": "foreign"}, host=foreign_addr, source=foreign_addr))
    assert sub.recv_json() == {"from": "foreign"}
    assert log_lines(s, "WARN", r"--publish-open: anyone who reaches a listener may publish"), s.logs()
    assert not log_lines(s, "WARN", r"accepted only from loopback"), s.logs()


def test_with_tokens_a_non_loopback_peer_needs_a_token(start_server, foreign_addr, monkeypatch):
    s = start_everywhere(start_server, monkeypatch, *ONE, "--publish-token", "a")
    sub = WS(s)
    sub.subscribe("t")
    assert_401(publish(s, "t", "no", host=foreign_addr, source=foreign_addr))
    assert_published(publish(s, "t", "yes", headers=[JSON_CT, bearer("a")], host=foreign_addr, source=foreign_addr))
    assert sub.recv_json() == "yes"
    sub.nothing_more()
    # the loopback exemption is gone once tokens are configured
    assert_401(publish(s, "t", "loopback without a token"))
    assert not log_lines(s, "WARN", r"accepted only from loopback"), s.logs()


PATHS = [("client", "/api/v1/publish"), ("client", "/ws/test"), ("admin", "/api/v1/publish"), ("admin", "/ws/test")]


@pytest.mark.parametrize("port_kind,path", PATHS, ids=[f"{p}{q}" for p, q in PATHS])
def test_publish_tokens_on_every_publish_path(start_server, port_kind, path):
    """--publish-token a --publish-token b: no token or a wrong one is 401
    (WWW-Authenticate, JSON) and is not delivered; Bearer a, X-API-Key b,
    any case of "bearer" are 200 and delivered."""
    s = start_server(*ONE, "--publish-token", "a", "--publish-token", "b")
    port = s.admin_port if port_kind == "admin" else s.port
    sub = WS(s)
    sub.subscribe("t")

    def post(tag, *headers):
        if path == "/ws/test":
            return ws_test(s, tag, headers=[JSON_CT, *headers], port=port)
        return publish(s, "t", {"tag": tag}, headers=[JSON_CT, *headers], port=port)

    def received():
        m = sub.recv_json()
        return m["message"] if path == "/ws/test" else m["tag"]

    refused = [
        ("none",),
        ("wrong-bearer", bearer("c")),
        ("prefix-of-a-token", bearer("ab")),
        ("empty-bearer", ("Authorization", "Bearer ")),
        ("wrong-key", ("X-API-Key", "A")),
        ("basic-scheme", ("Authorization", "Basic YTph")),
        ("token-without-scheme", ("Authorization", "a")),
    ]
    accepted = [
        ("bearer-a", bearer("a")),
        ("bearer-b", bearer("b")),
        ("key-b", ("X-API-Key", "b")),
        ("key-a", ("X-API-Key", "a")),
        ("lower-bearer", ("Authorization", "bearer a")),
        ("upper-bearer", ("Authorization", "BEARER b")),
    ]
    for tag, *headers in refused:
        resp = post(tag, *headers)
        assert_401(resp)
    for tag, *headers in accepted:
        status, _, body = post(tag, *headers)
        assert status == 200, (tag, status, body)
        if path == "/ws/test":
            assert json.loads(body)["type"] == "test_response", body
        else:
            assert json.loads(body) == {"published": 1}, body
        assert received() == tag  # the next message: none of the refused ones came before
    sub.nothing_more()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_token_file_is_reloaded_on_sighup(start_server, tmp_path):
    f = tmp_path / "tokens"
    write(f, "# publish tokens\n\n   t1   \n")
    s = start_server(*ONE, "--publish-token-file", str(f))
    s.errors_expected = True  # the failed reloads below log ERROR
    sub = WS(s)
    sub.subscribe("t")
    assert_published(publish(s, "t", "t1", headers=[JSON_CT, bearer("t1")]))
    assert sub.recv_json() == "t1"

    write(f, "t2\n")
    s.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: publish(s, "t", "probe", headers=[JSON_CT, bearer("t2")])[0] == 200, 3, "t2 accepted")
    assert sub.recv_json() == "probe"
    assert_401(publish(s, "t", "old", headers=[JSON_CT, bearer("t1")]))
    assert_published(publish(s, "t", "t2", headers=[JSON_CT, ("X-API-Key", "t2")]))
    assert sub.recv_json() == "t2"
    assert log_lines(s, "INFO", r"SIGHUP: reloaded .*tokens: publishing needs one of 1 token"), s.logs()

    # a file without tokens, then no file at all: the current token stays, ERROR each time
    for i, breakage in enumerate([lambda: write(f, "# rotated out\n\n"), lambda: os.unlink(f)]):
        breakage()
        s.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: len(log_lines(s, "ERROR", r"SIGHUP: publish tokens not reloaded")) == i + 1, 3,
                   f"ERROR line of failed reload {i + 1}")
        assert_published(publish(s, "t", f"still-{i}", headers=[JSON_CT, bearer("t2")]))
        assert sub.recv_json() == f"still-{i}"
        assert_401(publish(s, "t", "nothing", headers=[JSON_CT]))
        assert_401(publish(s, "t", "old", headers=[JSON_CT, bearer("t1")]))
    sub.nothing_more()
    assert s.proc.poll() is None, "SIGHUP ended the server"


def test_token_file_and_flag_tokens_are_all_valid(start_server, tmp_path):
    f = tmp_path / "tokens"
    write(f, "from-file\n")
    s = start_server(*ONE, "--publish-token-file", str(f), "--publish-token", "from-flag")
    assert_published(publish(s, "t", 1, headers=[JSON_CT, bearer("from-file")]))
    assert_published(publish(s, "t", 2, headers=[JSON_CT, bearer("from-flag")]))
    assert_401(publish(s, "t", 3))


@pytest.mark.parametrize("content", [None, "", "# only a comment\n\n"], ids=["missing", "empty", "no-token"])
def test_token_file_missing_or_without_tokens_at_start_exits_2(tmp_path, content):
    f = tmp_path / "tokens"
    if content is not None:
        write(f, content)
    code, out = run_expecting_exit(["--publish-token-file", str(f)])
    assert code == 2, (code, out)
    assert str(f) in out, out


def test_publish_tokens_from_environment(start_server):
    s = start_server(*ONE, env={"RINGCAST_PUBLISH_TOKEN": "x,y"})
    sub = WS(s)
    sub.subscribe("t")
    assert_401(publish(s, "t", "none"))
    assert_401(publish(s, "t", "both", headers=[JSON_CT, bearer("x,y")]))
    assert_published(publish(s, "t", "x", headers=[JSON_CT, bearer("x")]))
    assert_published(publish(s, "t", "y", headers=[JSON_CT, ("X-API-Key", "y")]))
    assert [sub.recv_json(), sub.recv_json()] == ["x", "y"]
    sub.nothing_more()


def test_content_type_must_be_application_json(start_server):
    s = start_server(*ONE, "--publish-token", "a")
    sub = WS(s)
    sub.subscribe("t")
    auth = bearer("a")
    refused = [
        ("text/plain", "text/plain"),
        ("text/plain-charset", "text/plain; charset=utf-8"),
        ("form", "application/x-www-form-urlencoded"),
        ("multipart", "multipart/form-data; boundary=x"),
        ("jsonx", "application/jsonx"),
        ("ld", "application/ld+json"),
        ("none", None),
    ]
    for tag, ct in refused:
        headers = [auth] + ([("Content-Type", ct)] if ct else [])
        assert_json_error(publish(s, "t", tag, headers=headers), 415, "application/json")
        assert_json_error(ws_test(s, tag, headers=headers), 415, "application/json")
    for tag, ct in [("plain", "application/json"), ("charset", "application/json; charset=utf-8"),
                    ("upper", "Application/JSON"), ("charset-nospace", "application/json;charset=UTF-8")]:
        assert_published(publish(s, "t", tag, headers=[auth, ("Content-Type", ct)]))
        assert sub.recv_json() == tag  # none of the 415s came before it
    # /ws/test with an empty body needs no Content-Type
    status, _, body = request(s, "POST", "/ws/test", [auth])
    assert status == 200, body
    assert sub.recv_json()["type"] == "test"
    sub.nothing_more()


@pytest.mark.parametrize("tokens", [False, True], ids=["loopback-no-token", "with-token"])
def test_cross_site_form_post_is_refused_and_never_delivered(start_server, tokens):
    """What a page on https://evil.example can make a browser send: a
    form post (urlencoded or text/plain, JSON-shaped body), with the
    user's loopback address or even with a token it guessed."""
    s = start_server(*ONE, *(("--publish-token", "a") if tokens else ()))
    auth = [bearer("a")] if tokens else []
    sub = WS(s)
    sub.subscribe("t", "sentinel")
    evil = ("Origin", "https://evil.example")
    body = json.dumps({"topic": "t", "data": "pwned"})
    for ct in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        for path in ("/api/v1/publish", "/ws/test"):
            status, _, rb = request(s, "POST", path, [evil, ("Content-Type", ct), *auth], body)
            assert status in (403, 415), (path, ct, status, rb)
    # a plain text/plain post without Origin (a non-browser sending the wrong type) is 415
    assert_json_error(request(s, "POST", "/api/v1/publish", [("Content-Type", "text/plain"), *auth], body), 415)
    # any Origin on publish without --allowed-origins is 403, even with application/json and a token
    for origin in ("https://evil.example", f"http://127.0.0.1:{s.port}", "null"):
        assert_json_error(publish(s, "t", "pwned", headers=[("Origin", origin), JSON_CT, *auth]), 403)
        assert_json_error(ws_test(s, "pwned", headers=[("Origin", origin), JSON_CT, *auth]), 403)
    if tokens:  # the Origin is checked first: no token and a foreign Origin is 403, not 401
        assert_json_error(publish(s, "t", "pwned", headers=[evil, JSON_CT]), 403)
    assert_published(publish(s, "sentinel", "ok", headers=[JSON_CT, *auth]))
    assert sub.recv_json() == "ok"
    sub.nothing_more()


def test_allowed_origins_may_publish(start_server):
    s = start_server(*ONE, "--publish-token", "a", "--allowed-origins", "https://app.example.com")
    sub = WS(s)
    sub.subscribe("t")
    auth = bearer("a")
    assert_json_error(publish(s, "t", "evil", headers=[("Origin", "https://evil.example"), JSON_CT, auth]), 403)
    assert_json_error(publish(s, "t", "sub", headers=[("Origin", "https://x.app.example.com"), JSON_CT, auth]), 403)
    assert_published(publish(s, "t", "app", headers=[("Origin", "https://app.example.com"), JSON_CT, auth]))
    assert sub.recv_json() == "app"
    # an allowed Origin does not replace the token
    assert_401(publish(s, "t", "no-token", headers=[("Origin", "https://app.example.com"), JSON_CT]))
    sub.nothing_more()


# ================================================================ 2. ports


def test_client_port_serves_only_what_clients_need(start_server):
    s = start_server(*ONE)
    for path in ("/metrics", "/readyz", "/", "/index.html", "/dashboard"):
        assert_json_error(request(s, "GET", path), 404)
    for path in ("/healthz", "/health"):
        status, hdrs, body = request(s, "GET", path)
        assert status == 200 and json.loads(body) == {"status": "ok"}, (path, status, body)
    expect_upgraded(WS(s))


def test_admin_port_serves_operator_endpoints(start_server):
    s = start_server(*ONE)
    a = s.admin_port
    status, hdrs, body = request(s, "GET", "/metrics", port=a)
    assert status == 200 and b"ringcast_" in body, (status, body[:200])
    status, _, body = request(s, "GET", "/readyz", port=a)
    assert status == 200 and json.loads(body) == {"ready": True}, body
    for path in ("/healthz", "/health"):
        status, _, body = request(s, "GET", path, port=a)
        assert status == 200 and json.loads(body) == {"status": "ok"}, (path, body)
    status, hdrs, body = request(s, "GET", "/", port=a)
    assert status == 200 and hdrs["content-type"].startswith("text/html") and b"<html" in body.lower(), hdrs


def test_admin_port_ws_refuses_a_foreign_origin(start_server):
    s = start_server(*ONE, "--echo")
    a = s.admin_port
    expect_refused_upgrade(WS(s, port=a, headers={"Origin": "https://evil.example"}), 403)
    expect_refused_upgrade(WS(s, port=a, headers={"Origin": f"http://localhost:{a}"}), 403)
    # its own dashboard (same origin) is let in; /echo is not an admin path
    expect_upgraded(WS(s, port=a, headers={"Origin": f"http://127.0.0.1:{a}"}))
    assert_json_error(request(s, "GET", "/echo", port=a), 404)


def test_admin_token_guards_metrics_and_dashboard(start_server):
    s = start_server(*ONE, "--admin-token", "T")
    a = s.admin_port
    for path in ("/metrics", "/"):
        for headers, query in [((), ""), ((bearer("wrong"),), ""), ((("X-API-Key", "t"),), ""), ((), "?token=wrong"),
                               ((), "?token="), ((), "?token=TT")]:
            resp = request(s, "GET", path + query, headers, port=a)
            assert_json_error(resp, 401)
        for headers, query in [((bearer("T"),), ""), ((("X-API-Key", "T"),), ""), ((), "?token=T"),
                               ((), "?a=1&token=T")]:
            status, _, body = request(s, "GET", path + query, headers, port=a)
            assert status == 200, (path, headers, query, status, body[:200])
    for path in ("/healthz", "/health", "/readyz"):
        assert request(s, "GET", path, port=a)[0] == 200, path
    # the dashboard's live view: /ws on the admin port needs the token too
    origin = {"Origin": f"http://127.0.0.1:{a}"}
    expect_refused_upgrade(WS(s, port=a, headers=origin), 401)
    expect_upgraded(WS(s, path="/ws?token=T", port=a, headers=origin))
    # the client port is unaffected: clients need no admin token
    expect_upgraded(WS(s))
    assert request(s, "GET", "/healthz")[0] == 200


def test_admin_listener_answers_while_the_client_port_is_full(start_server):
    s = start_server(*ONE, "--max-conns", "20")
    time.sleep(0.3)  # the fixture's readiness probe is gone
    held = [WS(s) for _ in range(20)]
    for w in held:
        assert w.status == 101, (w.status, w.body)
    # a 21st client: 503 (or refused outright)
    try:
        c = socket.create_connection((s.host, s.port), timeout=3)
        c.settimeout(3)
        data = b""
        try:
            while chunk := c.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        c.close()
        if data:
            assert data.startswith(b"HTTP/1.1 503 "), data[:200]
    except ConnectionRefusedError:
        pass
    # several admin connections at once, each answering /metrics and /readyz
    admin = [socket.create_connection((s.host, s.admin_port), timeout=5) for _ in range(6)]
    try:
        for c in admin:
            c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        for c in admin:
            buf = b""
            while buf.count(b"HTTP/1.1 ") < 2 or not buf.rstrip().endswith(b"}"):
                chunk = c.recv(65536)
                assert chunk, buf[:300]
                buf += chunk
            statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", buf)
            assert statuses == [b"200", b"200"], buf[:300]
            assert b'{"ready":true}' in buf
    finally:
        for c in admin:
            c.close()
    # the held clients are all still served
    for w in held:
        assert w.call({"type": "ping"}) == {"type": "pong"}


# ================================================================ 3. subscription policy


ORIGINS = "https://app.example.com,https://*.example.org"


@pytest.mark.parametrize("origin,allowed", [
    ("https://evil.com", False),
    ("https://app.example.com", True),
    ("HTTPS://APP.EXAMPLE.COM", True),
    ("https://a.b.example.org", True),
    ("https://x.example.org", True),
    ("https://example.org", False),
    ("http://app.example.com", False),
    ("https://app.example.com.evil.com", False),
    ("https://evilexample.org", False),
    ("null", False),
    (None, True),
])
def test_allowed_origins_on_upgrade(start_server, origin, allowed):
    s = start_server(*ONE, "--allowed-origins", ORIGINS)
    ws = WS(s, headers={"Origin": origin} if origin is not None else None)
    if allowed:
        expect_upgraded(ws)
    else:
        expect_refused_upgrade(ws, 403, "origin not allowed")


def test_any_origin_upgrades_without_allowed_origins(start_server):
    s = start_server(*ONE)
    for origin in ("https://evil.com", "null", "http://localhost:3000"):
        expect_upgraded(WS(s, headers={"Origin": origin}))


def test_firehose_deny_keeps_the_connection(start_server):
    s = start_server(*ONE, "--firehose", "deny")
    c = WS(s)
    c.refused({"type": "subscribe_all"}, "firehose")
    c.refused({"type": "subscribe", "markets": ["*"]}, "firehose")
    c.refused({"type": "subscribe", "markets": ["x", "*"]}, "firehose")
    assert c.current_set() == []
    c.subscribe("t")
    assert_published(publish(s, "other", "not for t"))
    assert_published(publish(s, "t", "for t"))
    assert c.recv_json() == "for t"
    c.nothing_more()


def test_firehose_token(start_server):
    s = start_server(*ONE, "--firehose", "token", "--jwt-secret", SECRET)
    anon = WS(s)
    anon.refused({"type": "subscribe_all"}, "firehose")
    anon.refused({"type": "subscribe", "markets": ["*"]}, "firehose")
    anon.subscribe("t")  # a plain topic needs no token
    narrow = WS(s, path="/ws?token=" + jwt({"topics": ["t", "u:*"]}))
    expect_upgraded(narrow)
    narrow.refused({"type": "subscribe_all"}, "firehose")
    fire = WS(s, path="/ws?token=" + jwt({"topics": ["*"]}))
    expect_upgraded(fire)
    assert "*" in fire.subscribe("*")
    fire2 = WS(s, headers={"Authorization": "Bearer " + jwt({"topics": ["*"]})})
    expect_upgraded(fire2)
    ack = fire2.call({"type": "subscribe_all"})
    assert ack.get("type") == "subscribed", ack
    assert_published(publish(s, "anything", {"k": 1}))
    assert_published(publish(s, "t", {"k": 2}))
    for c in (fire, fire2):
        assert [c.recv_json(), c.recv_json()] == [{"k": 1}, {"k": 2}]
        c.nothing_more()
    assert anon.recv_json() == {"k": 2}
    anon.nothing_more()


PRIVATE = ("--private-topics", "orders:*", "--jwt-secret", SECRET)


def test_private_topic_refused_without_a_token(start_server):
    s = start_server(*ONE, *PRIVATE)
    c = WS(s)
    c.refused({"type": "subscribe", "markets": ["orders:alice"]}, "orders:alice")
    # a message mixing a public and a private topic subscribes neither
    c.refused({"type": "subscribe", "markets": ["public", "orders:alice"]}, "orders:alice")
    c.refused({"type": "subscribe", "markets": ["orders:bob", "public"]}, "orders:bob")
    assert c.current_set() == []
    c.subscribe("sentinel")
    assert c.current_set() == ["sentinel"]
    assert_published(publish(s, "orders:alice", "secret"))
    assert_published(publish(s, "public", "public but not subscribed"))
    assert_published(publish(s, "sentinel", "ok"))
    assert c.recv_json() == "ok"
    c.nothing_more()
    # public topics stay open to anonymous clients
    c.subscribe("public")
    assert_published(publish(s, "public", "p"))
    assert c.recv_json() == "p"


def test_private_topic_with_a_token_covering_it(start_server):
    s = start_server(*ONE, *PRIVATE)
    alice = WS(s, path="/ws?token=" + jwt({"sub": "alice", "topics": ["orders:alice"],
                                            "exp": int(time.time()) + 600}))
    expect_upgraded(alice)
    alice.subscribe("orders:alice")
    alice.refused({"type": "subscribe", "markets": ["orders:bob"]}, "orders:bob")
    alice.refused({"type": "subscribe", "markets": ["orders:bob", "public"]}, "orders:bob")
    assert alice.current_set() == ["orders:alice"]
    assert_published(publish(s, "orders:bob", "bob's"))
    assert_published(publish(s, "public", "public"))
    assert_published(publish(s, "orders:alice", "alice's"))
    assert alice.recv_json() == "alice's"
    alice.nothing_more()
    # a glob claim: orders:carol:* covers orders:carol:1 but not orders:carol
    carol = WS(s, headers={"Authorization": "Bearer " + jwt({"topics": ["orders:carol:*"]})})
    expect_upgraded(carol)
    carol.subscribe("orders:carol:1", "orders:carol:2")
    carol.refused({"type": "subscribe", "markets": ["orders:carol"]}, "orders:carol")


@pytest.mark.parametrize("kind", ["expired", "bad-signature", "wrong-secret", "alg-none", "alg-hs512",
                                  "future-nbf", "malformed", "two-parts"])
def test_invalid_client_token_is_401_at_the_handshake(start_server, kind):
    s = start_server(*ONE, *PRIVATE)
    good = jwt({"topics": ["orders:alice"]})
    tok = {
        "expired": jwt({"topics": ["orders:alice"], "exp": int(time.time()) - 60}),
        "bad-signature": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "wrong-secret": jwt({"topics": ["orders:alice"]}, secret="not-the-secret"),
        "alg-none": jwt({"topics": ["*"]}, alg="none"),
        "alg-hs512": jwt({"topics": ["*"]}, alg="HS512"),
        "future-nbf": jwt({"topics": ["orders:alice"], "nbf": int(time.time()) + 600}),
        "malformed": "not-a-jwt",
        "two-parts": ".".join(good.split(".")[:2]),
    }[kind]
    expect_refused_upgrade(WS(s, path="/ws?token=" + tok), 401)
    expect_refused_upgrade(WS(s, headers={"Authorization": "Bearer " + tok}), 401)
    # the same server takes the good token
    ok = WS(s, path="/ws?token=" + good)
    expect_upgraded(ok)
    ok.subscribe("orders:alice")


def test_private_topics_make_the_firehose_need_a_star_token(start_server):
    s = start_server(*ONE, *PRIVATE, "--firehose", "allow")
    anon = WS(s)
    anon.refused({"type": "subscribe_all"}, "firehose")
    anon.refused({"type": "subscribe", "markets": ["*"]}, "firehose")
    orders = WS(s, path="/ws?token=" + jwt({"topics": ["orders:*"]}))
    expect_upgraded(orders)
    orders.refused({"type": "subscribe_all"}, "firehose")
    assert orders.current_set() == []
    fire = WS(s, path="/ws?token=" + jwt({"topics": ["*"]}))
    expect_upgraded(fire)
    ack = fire.call({"type": "subscribe_all"})
    assert ack.get("type") == "subscribed", ack
    anon.subscribe("sentinel")
    assert_published(publish(s, "orders:bob", "b"))
    assert_published(publish(s, "sentinel", "s"))
    assert [fire.recv_json(), fire.recv_json()] == ["b", "s"]
    assert anon.recv_json() == "s"
    anon.nothing_more()
    orders.nothing_more()


@pytest.mark.parametrize("args", [("--private-topics", "x"), ("--firehose", "token")], ids=["private", "firehose"])
def test_policy_without_a_jwt_secret_exits_2(args):
    env = {"JWT_SECRET": "", "RINGCAST_JWT_SECRET": ""}
    code, out = run_expecting_exit(list(args), env=env)
    assert code == 2, (code, out)
    assert "--jwt-secret" in out, out


def test_jwt_secret_from_environment(start_server):
    s = start_server(*ONE, "--private-topics", "orders:*", env={"JWT_SECRET": SECRET})
    ok = WS(s, path="/ws?token=" + jwt({"topics": ["orders:alice"]}))
    expect_upgraded(ok)
    ok.subscribe("orders:alice")
    assert_published(publish(s, "orders:alice", "a"))
    assert ok.recv_json() == "a"
    expect_refused_upgrade(WS(s, path="/ws?token=" + jwt({"topics": ["orders:alice"]}, secret="other")), 401)
