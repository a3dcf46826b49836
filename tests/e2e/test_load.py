"""Load: many concurrent WebSocket clients against `--echo --shards 2`.

Every client checks every echo byte for byte, so a message delivered to the
wrong connection, reordered, truncated or dropped fails the test. The whole
file stays well under a minute.
"""
import asyncio
import os
import resource
import socket
import time

import pytest
from websockets.asyncio.client import connect

N_CLIENTS = 1000
N_MESSAGES = 5


@pytest.fixture(autouse=True)
def enough_fds():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < N_CLIENTS + 200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low for {N_CLIENTS} clients")
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def healthz(server):
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data


def run_clients(server, n, body, open_timeout=30, total_timeout=45):
    """Connects n clients, waits until every one is connected (so they are
    all open at once), then runs body(i, ws) in each. Returns the list of
    results or exceptions."""

    async def client(i, connected, go):
        async with connect(server.url + "/echo", compression=None, proxy=None, ping_interval=None,
                           open_timeout=open_timeout, max_size=None, close_timeout=10) as ws:
            connected.release()
            await go.wait()
            result = await body(i, ws)
        assert ws.close_code == 1000, ws.close_code
        return result

    async def main():
        connected = asyncio.Semaphore(0)
        go = asyncio.Event()
        tasks = [asyncio.create_task(client(i, connected, go)) for i in range(n)]

        async def all_connected():
            for _ in range(n):
                await connected.acquire()

        waiter = asyncio.ensure_future(all_connected())
        done, _ = await asyncio.wait([waiter, *tasks], timeout=open_timeout, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            failed = [t.exception() for t in tasks if t.done() and t.exception()]
            waiter.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise AssertionError(f"only some of {n} clients connected; first errors: {failed[:3]!r}")
        go.set()
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), total_timeout)

    return asyncio.run(main())


def test_1000_concurrent_clients_5_messages_each(start_server):
    s = start_server("--echo", "--shards", "2")

    async def body(i, ws):
        for j in range(N_MESSAGES):
            if j % 2:
                msg = f"client {i} message {j} ".encode() + os.urandom(16 + (i * 7 + j) % 500)
            else:
                msg = f"client {i} message {j} ✓ " + "x" * ((i + j * 13) % 300)
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), 20)
            if got != msg:
                raise AssertionError(f"client {i} message {j}: sent {msg[:60]!r} got {got[:60]!r}")
        return True

    t0 = time.time()
    results = run_clients(s, N_CLIENTS, body)
    elapsed = time.time() - t0
    failures = [r for r in results if r is not True]
    assert not failures, f"{len(failures)} of {N_CLIENTS} clients failed; first: {failures[:3]!r}"
    assert len(results) == N_CLIENTS
    assert elapsed < 50, elapsed
    assert healthz(s).startswith(b"HTTP/1.1 200 ")
    assert s.stop() == 0, s.logs()
    # The one expected warning is the start-up notice that publishing is loopback-only.
    warnings = [l for l in s.logs().splitlines() if " WARN " in l and "no --publish-token" not in l]
    assert not warnings, s.logs()


def test_burst_of_large_messages_from_200_clients(start_server):
    """Each client sends all its messages before reading any echo: big
    payloads cross many receive buffers on both shards at once."""
    s = start_server("--echo", "--shards", "2")

    async def body(i, ws):
        msgs = [os.urandom(40_000 + 1000 * j + i) for j in range(N_MESSAGES)]
        for m in msgs:
            await ws.send(m)
        for j, m in enumerate(msgs):
            got = await asyncio.wait_for(ws.recv(), 20)
            if got != m:
                raise AssertionError(f"client {i} message {j}: {len(m)} bytes sent, {len(got)} received, differ")
        return True

    results = run_clients(s, 200, body)
    failures = [r for r in results if r is not True]
    assert not failures, f"{len(failures)} of 200 clients failed; first: {failures[:3]!r}"
    assert s.stop() == 0, s.logs()


def test_receive_buffer_starvation(start_server):
    """Few, small provided receive buffers (16 x 1 KiB per shard) and 200
    clients pushing 60 KB messages: the shards run out of buffers (ENOBUFS
    ends the multishot receives, which must be re-armed) and every byte must
    still arrive."""
    s = start_server("--echo", "--shards", "2", "--recv-bufs", "16", "--recv-buf-size", "1024")

    async def body(i, ws):
        msgs = [os.urandom(60_000 + 17 * j + i) for j in range(N_MESSAGES)]
        for m in msgs:
            await ws.send(m)
        for j, m in enumerate(msgs):
            got = await asyncio.wait_for(ws.recv(), 20)
            if got != m:
                raise AssertionError(f"client {i} message {j} differs ({len(m)} sent, {len(got)} received)")
        return True

    results = run_clients(s, 200, body)
    failures = [r for r in results if r is not True]
    assert not failures, f"{len(failures)} of 200 clients failed; first: {failures[:3]!r}"
    assert s.stop() == 0, s.logs()


def test_connection_churn_while_clients_stay(start_server):
    """Short-lived connections come and go while long-lived ones keep echoing."""
    s = start_server("--echo", "--shards", "2")

    async def main():
        url = s.url + "/echo"
        stayers = [await connect(url, compression=None, proxy=None, ping_interval=None).__aenter__()
                   for _ in range(50)]

        async def churn(k):
            for r in range(10):
                async with connect(url, compression=None, proxy=None, ping_interval=None) as ws:
                    await ws.send(f"churn {k}.{r}")
                    assert await ws.recv() == f"churn {k}.{r}"

        async def stay(i, ws):
            for r in range(20):
                await ws.send(bytes([i, r]) * 100)
                assert await ws.recv() == bytes([i, r]) * 100
                await asyncio.sleep(0.01)

        await asyncio.wait_for(asyncio.gather(*(churn(k) for k in range(50)),
                                              *(stay(i, ws) for i, ws in enumerate(stayers))), 40)
        for ws in stayers:
            await ws.close()
            assert ws.close_code == 1000

    asyncio.run(main())
    assert s.stop() == 0, s.logs()
