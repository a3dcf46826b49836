"""Real redis-server processes for the Redis end-to-end tests.

RedisServer runs /usr/bin/redis-server on a free 127.0.0.1 port with no
persistence (--save '' --appendonly no), optionally with --requirepass, its
log in build-test-logs/redis-PORT.log. It can be killed with SIGKILL and
restarted on the same port. Cluster runs three masters (no replicas) and
creates the cluster with `redis-cli --cluster create`. Resp is a minimal
RESP2 client over a raw socket (pipelining, exact bytes) for publishing many
messages fast.

The `redis_procs` fixture hands out start_redis() / start_cluster() and
always stops (SIGKILL as a last resort) every process it started; request it
before start_server so the Redis processes outlive the ringcast nodes.
"""
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / "build-test-logs"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def _bindable(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_cluster_port(taken=()):
    """A port below 55535 whose cluster bus port (port + 10000) is free too."""
    rng = random.Random()
    for _ in range(1000):
        p = rng.randrange(20000, 45000)
        if p in taken or p + 10000 in taken:
            continue
        if _bindable(p) and _bindable(p + 10000):
            return p
    raise RuntimeError("no free cluster port pair")


def wait_for(pred, timeout, what, interval=0.02):
    """Polls pred() until it returns something truthy (returned); fails with
    the last value after timeout seconds."""
    deadline = time.time() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


class RespError(Exception):
    pass


class Resp:
    """A RESP2 client on one TCP connection. command() returns the decoded
    reply (bytes for bulk strings, int, list, str for +OK) and raises
    RespError on an error reply; pipeline() sends many commands in one write
    and returns their replies (errors as RespError objects)."""

    def __init__(self, port, password=None, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0
        if password is not None:
            self.command("AUTH", password)

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, int):
                a = str(a)
            if isinstance(a, str):
                a = a.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _fill(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("redis closed the connection")
        if self.pos > (1 << 16):
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = bytes(self.buf[self.pos : i])
                self.pos = i + 2
                return line
            self._fill()

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) - self.pos < n + 2:
                self._fill()
            data = bytes(self.buf[self.pos : self.pos + n])
            self.pos += n + 2
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ValueError(f"bad RESP line {line!r}")

    def command(self, *args):
        self.sock.sendall(self.encode(*args))
        r = self._reply()
        if isinstance(r, RespError):
            raise r
        return r

    def pipeline(self, commands, chunk=500):
        replies = []
        for k in range(0, len(commands), chunk):
            part = commands[k : k + chunk]
            self.sock.sendall(b"".join(self.encode(*c) for c in part))
            replies.extend(self._reply() for _ in part)
        return replies

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class RedisServer:
    """One redis-server process on 127.0.0.1:port."""

    def __init__(self, port=None, password=None, extra=(), workdir=None):
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.password = password
        self.extra = list(extra)
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix=f"redis-{self.port}-")
        LOG_DIR.mkdir(exist_ok=True)
        self.log_path = LOG_DIR / f"redis-{self.port}.log"
        self.log_path.write_bytes(b"")
        self.proc = None
        self.start()

    def argv(self):
        a = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.workdir, "--daemonize", "no", "--protected-mode", "no"]
        if self.password is not None:
            a += ["--requirepass", self.password]
        return a + self.extra

    def start(self, timeout=10.0):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.wait_ready(timeout)
        return self

    def url(self, db=None, password=None, user=None):
        pw = self.password if password is None else password
        auth = ""
        if pw is not None or user is not None:
            auth = f"{user or ''}:{pw or ''}@"
        return f"redis://{auth}{self.host}:{self.port}" + (f"/{db}" if db is not None else "")

    def cli_argv(self, *args, cluster=False):
        a = [REDIS_CLI, "-h", self.host, "-p", str(self.port)]
        if self.password is not None:
            a += ["-a", self.password, "--no-auth-warning"]
        if cluster:
            a.append("-c")
        return a + [x if isinstance(x, bytes) else str(x) for x in args]

    def cli(self, *args, cluster=False, timeout=10.0, check=True):
        """redis-cli's stdout (raw format: one value per line) as str."""
        r = subprocess.run(self.cli_argv(*args, cluster=cluster), capture_output=True, timeout=timeout)
        out = r.stdout.decode(errors="replace")
        if check:
            assert r.returncode == 0, f"redis-cli {args!r} exited {r.returncode}: {out} {r.stderr!r}"
            assert not out.startswith(("ERR", "NOAUTH", "WRONGPASS", "MOVED")), f"redis-cli {args!r}: {out}"
        return out

    def resp(self):
        return Resp(self.port, password=self.password)

    def ping(self):
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            r = subprocess.run(self.cli_argv("PING"), capture_output=True, timeout=2)
        except subprocess.TimeoutExpired:
            return False
        return r.stdout.strip() == b"PONG"

    def wait_ready(self, timeout=10.0):
        deadline = time.time() + timeout
        while not self.ping():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited ({self.proc.returncode}): {self.log_path.read_text()}")
            if time.time() > deadline:
                raise RuntimeError(f"redis-server on {self.port} not ready: {self.log_path.read_text()}")
            time.sleep(0.01)

    def command(self, *args):
        """One command on a fresh RESP connection (exact bytes, parsed reply)."""
        c = self.resp()
        try:
            return c.command(*args)
        finally:
            c.close()

    def numsub(self, channel):
        out = self.cli("PUBSUB", "NUMSUB", channel).split("\n")
        return int(out[1])

    def shardnumsub(self, channel):
        out = self.cli("PUBSUB", "SHARDNUMSUB", channel).split("\n")
        return int(out[1])

    def numpat(self):
        return int(self.cli("PUBSUB", "NUMPAT").strip())

    def channels(self, pattern="*"):
        return sorted(l for l in self.cli("PUBSUB", "CHANNELS", pattern).split("\n") if l)

    def shardchannels(self, pattern="*"):
        return sorted(l for l in self.cli("PUBSUB", "SHARDCHANNELS", pattern).split("\n") if l)

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        # The port must be free again before a restart.
        wait_for(lambda: _bindable(self.port), 5, f"port {self.port} to be free")

    def restart(self, timeout=10.0):
        self.kill9()
        return self.start(timeout)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


class Cluster:
    """Three redis-server masters with cluster mode on, the 16384 slots
    split between them by `redis-cli --cluster create`."""

    def __init__(self, n=3, node_timeout_ms=2000):
        self.workdir = tempfile.mkdtemp(prefix="redis-cluster-")
        self.nodes = []
        taken = set()
        try:
            for _ in range(n):
                p = free_cluster_port(taken)
                taken |= {p, p + 10000}
                self.nodes.append(RedisServer(p, workdir=self.workdir, extra=[
                    "--cluster-enabled", "yes", "--cluster-config-file", f"{self.workdir}/nodes-{p}.conf",
                    "--cluster-node-timeout", str(node_timeout_ms)]))
            addrs = [f"127.0.0.1:{r.port}" for r in self.nodes]
            r = subprocess.run([REDIS_CLI, "--cluster", "create", *addrs, "--cluster-replicas", "0", "--cluster-yes"],
                               capture_output=True, timeout=60)
            assert r.returncode == 0, (r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"))
            wait_for(self.all_ok, 30, "cluster_state:ok on every node", interval=0.1)
        except BaseException:
            self.stop()
            raise

    def all_ok(self):
        for node in self.nodes:
            info = node.cli("CLUSTER", "INFO", check=False)
            if "cluster_state:ok" not in info:
                return False
            # Every node must know every other one, or a redirect may point nowhere.
            if f"cluster_known_nodes:{len(self.nodes)}" not in info:
                return False
        return True

    def by_port(self, port):
        return next(n for n in self.nodes if n.port == port)

    def keyslot(self, name):
        return int(self.nodes[0].cli("CLUSTER", "KEYSLOT", name).strip())

    def slot_ranges(self):
        """[(first, last, master port)] from CLUSTER SLOTS."""
        out = []
        for entry in self.nodes[0].command("CLUSTER", "SLOTS"):
            first, last, master = entry[0], entry[1], entry[2]
            out.append((first, last, int(master[1])))
        return out

    def owner(self, channel):
        """The RedisServer owning channel's slot."""
        slot = self.keyslot(channel)
        for first, last, port in self.slot_ranges():
            if first <= slot <= last:
                return self.by_port(port)
        raise AssertionError(f"no master owns slot {slot}")

    def stop(self):
        for n in self.nodes:
            n.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
def redis_procs():
    """start_redis(**kw) -> RedisServer and start_cluster() -> Cluster; every
    process is stopped at teardown, whatever the test did to it."""
    started = []

    class Factory:
        @staticmethod
        def start_redis(**kw):
            r = RedisServer(**kw)
            started.append(r)
            return r

        @staticmethod
        def start_cluster(**kw):
            c = Cluster(**kw)
            started.append(c)
            return c

    yield Factory
    for p in reversed(started):
        try:
            p.stop()
        except Exception:
            if isinstance(p, RedisServer) and p.proc is not None and p.proc.poll() is None:
                p.proc.kill()
            raise
