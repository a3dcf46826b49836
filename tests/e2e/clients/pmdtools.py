"""Helpers shared by tests/e2e/test_deflate.py and test_deflate_conformance.py:
raw permessage-deflate payloads, a strict window check, /metrics, publishing,
and the two foreign clients (Node's `ws`, headless Chromium).
"""
import base64
import http.client
import json
import os
import pathlib
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
import zlib

HERE = pathlib.Path(__file__).resolve().parent
TAIL = b"\x00\x00\xff\xff"

PMD_RESPONSE = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


# ---------------------------------------------------------------- DEFLATE payloads


def deflate_payload(data, wbits=15, level=6, final=False):
    """One permessage-deflate message payload as a zlib-based sender makes it:
    raw DEFLATE, sync-flushed, 00 00 FF FF removed (RFC 7692 §7.2.1); with
    final=True, a BFINAL-terminated stream instead (§7.2.3.4)."""
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    if final:
        return c.compress(data) + c.flush(zlib.Z_FINISH)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def inflate_payload(payload, wbits=15):
    """What any permessage-deflate receiver does: append the tail, inflate."""
    d = zlib.decompressobj(wbits=-wbits)
    return d.decompress(payload + TAIL) + d.flush()


def strict_inflate(payload, wbits):
    """Inflates with a 2^wbits window and ONE BYTE OF OUTPUT PER CALL.

    zlib lets a back-reference reach into what the current call already
    wrote to the caller's buffer, whatever the window: with a large output
    buffer a stream that refers further back than 2^wbits still inflates.
    With one byte of output per call, every reference longer than one byte
    must come from the window, so "invalid distance too far back"
    (zlib.error) is raised for anything that needs a bigger one."""
    d = zlib.decompressobj(wbits=-wbits)
    buf = payload + TAIL
    out = bytearray()
    while True:
        chunk = d.decompress(buf, 1)
        out += chunk
        buf = d.unconsumed_tail
        if d.eof or (not chunk and not buf):
            return bytes(out)


# ---------------------------------------------------------------- HTTP side


def metrics(server):
    """The ringcast_* counters and gauges of /metrics (on the admin listener) as {name: int}."""
    c = http.client.HTTPConnection(server.host, server.admin_port, timeout=5)
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        body = r.read().decode()
        assert r.status == 200, (r.status, body)
    finally:
        c.close()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = int(float(value))
    return out


def publish_raw(server, body):
    """POST /api/v1/publish with body (str or bytes) verbatim; returns (status, parsed JSON)."""
    if isinstance(body, str):
        body = body.encode()
    c = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        c.request("POST", "/api/v1/publish", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


def publish(server, topic, data_text):
    """Publishes data_text (JSON text, kept byte for byte) to topic."""
    status, reply = publish_raw(server, '{"topic":%s,"data":%s}' % (json.dumps(topic), data_text))
    assert (status, reply) == (200, {"published": 1}), (status, reply)


def wait_for(pred, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


# ---------------------------------------------------------------- Node's ws


def node_available():
    return shutil.which("node") is not None and pathlib.Path("/usr/share/nodejs/ws").is_dir()


class NodeSub:
    """tests/e2e/clients/ws_sub.js in a child process; its JSON lines land in .events."""

    def __init__(self, server, topics, mode="deflate"):
        env = {**os.environ, "NODE_PATH": "/usr/share/nodejs"}
        self.proc = subprocess.Popen(["node", str(HERE / "ws_sub.js"), f"ws://127.0.0.1:{server.port}/ws",
                                      ",".join(topics), mode],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.events = queue.Queue()
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            self.lines.append(ev)
            self.events.put(ev)
        self.events.put({"event": "eof"})

    def next(self, timeout=10):
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"node client: nothing within {timeout}s; events so far {self.lines[-3:]}")

    def messages(self, n, timeout=15):
        """The next n data messages as (binary, bytes)."""
        got = []
        deadline = time.time() + timeout
        while len(got) < n:
            ev = self.next(max(0.1, deadline - time.time()))
            assert ev["event"] == "message", (ev, self.proc.stderr.read1(4096) if ev["event"] == "eof" else "")
            got.append((ev["binary"], base64.b64decode(ev["b64"])))
        return got

    def close(self, timeout=10):
        """Ends stdin (the script then closes 1000); returns the close event."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("node client did not exit after closing")
        self._reader.join(5)
        closes = [e for e in self.lines if e["event"] == "close"]
        return closes[-1] if closes else None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- headless Chromium over the DevTools protocol


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class Chromium:
    """One headless Chromium; pages are opened and read through CDP (a
    WebSocket itself, spoken with the websockets sync client)."""

    def __init__(self):
        from websockets.sync.client import connect

        self._connect = connect
        self.dir = tempfile.mkdtemp(prefix="ringcast-chromium-")
        self.log = open(os.path.join(self.dir, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            [chromium_binary(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--remote-debugging-port=0",
             f"--user-data-dir={self.dir}", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT)
        portfile = pathlib.Path(self.dir) / "DevToolsActivePort"
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("chromium exited at start: " + pathlib.Path(self.log.name).read_text(errors="replace"))
            if portfile.exists():
                lines = portfile.read_text().split()
                if len(lines) >= 2:
                    self.port = int(lines[0])
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError("chromium did not start its DevTools endpoint")

    def _http(self, method, path):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def open_page(self, url):
        target = self._http("PUT", "/json/new?" + urllib.request.quote(url, safe=":/"))
        return ChromiumPage(self, target)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class ChromiumPage:
    def __init__(self, browser, target):
        self.browser = browser
        self.id = target["id"]
        self.ws = browser._connect(target["webSocketDebuggerUrl"], max_size=None, proxy=None, legacy=True,
                                   compression=None, open_timeout=10, ping_interval=None)
        self.seq = 0

    def evaluate(self, expr, timeout=10):
        """Runtime.evaluate, returning the value (by value: JSON-able)."""
        self.seq += 1
        my = self.seq
        self.ws.send(json.dumps({"id": my, "method": "Runtime.evaluate",
                                 "params": {"expression": expr, "returnByValue": True}}))
        deadline = time.time() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.time())))
            if msg.get("id") == my:
                res = msg["result"]
                if "exceptionDetails" in res:
                    raise AssertionError(f"page exception: {res['exceptionDetails']}")
                return res["result"].get("value")

    def wait(self, expr, timeout=15, what=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = self.evaluate(expr)
            if v:
                return v
            time.sleep(0.05)
        raise AssertionError(f"page: timed out waiting for {what or expr}; state {self.evaluate('JSON.stringify(window.rc)')}")

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        try:
            self.browser._http("GET", f"/json/close/{self.id}")
        except Exception:
            pass


# ---------------------------------------------------------------- topic owners


def topic_hash(name):
    """ringcast's rc_topic_hash (src/pubsub/topics.c): FNV-1a 64, then an avalanche."""
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 33
    return h


def topic_owner(name, nshards=2):
    return (topic_hash(name) >> 32) % nshards


def spread(topics, nshards=2):
    """topics plus, when they all have one owner shard, a partner topic owned
    by another: a subscriber of the result has a topic owned by a shard other
    than its own, whichever shard accepted it, so the cross-shard path (the
    owner learning of compressing subscribers through its inbox) always runs."""
    topics = list(topics)
    owners = {topic_owner(t, nshards) for t in topics}
    if len(owners) == 1 and nshards > 1:
        i = 0
        while topic_owner(f"{topics[0]}~{i}", nshards) in owners:
            i += 1
        topics.append(f"{topics[0]}~{i}")
    return topics
