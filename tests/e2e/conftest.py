"""Fixtures that start the real ringcast binary on a free loopback port.

The binary is zig-out/bin/ringcast (built by ./dev.sh test before pytest
runs), or $RINGCAST_BIN when set (e.g. the ASan build for leak checks).
"""
import os
import pathlib
import resource
import signal
import socket
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def ringcast_bin():
    return os.environ.get("RINGCAST_BIN", str(ROOT / "zig-out" / "bin" / "ringcast"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running ringcast process; .stop() sends SIGTERM and returns the exit code."""

    def __init__(self, args, binary=None, env=None):
        self.port = free_port()
        self.host = "127.0.0.1"
        self.args = ["--listen", f"127.0.0.1:{self.port}"] + list(args)
        # Every server gets its own admin listener (the default 127.0.0.1:9090
        # would collide between servers, and a taken address fails the start).
        self.admin_port = None
        if "--admin-listen" not in self.args:
            self.admin_port = free_port()
            self.args += ["--admin-listen", f"127.0.0.1:{self.admin_port}"]
        self.log_path = ROOT / "build-test-logs" / f"ringcast-{self.port}.log"
        self.log_path.parent.mkdir(exist_ok=True)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([binary or ringcast_bin()] + self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ringcast exited at start ({self.proc.returncode}): {self.logs()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("ringcast did not start listening")

    @property
    def url(self):
        return f"ws://{self.host}:{self.port}"

    def logs(self):
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("ringcast did not exit after SIGTERM")
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def enough_fds():
    """Raises the soft descriptor limit to the hard one for the test, in this
    process and in the servers it starts (which inherit it): for tests with
    thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def start_server():
    started = []

    def start(*args, **kw):
        s = Server(args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.stop()
        assert "ERROR" not in s.logs() or getattr(s, "errors_expected", False), s.logs()


@pytest.fixture(scope="module")
def echo_server():
    s = Server(["--echo", "--shards", "2"])
    yield s
    code = s.stop()
    assert code == 0, s.logs()
