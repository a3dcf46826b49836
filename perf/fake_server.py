#!/usr/bin/env python3
"""perf/fake_server.py — a stand-in for `ringcast --demo`, for checking the load generator.

Speaks the part of ringcast's protocol that perf/loadgen.c uses: WebSocket on
/ws, {"type":"subscribe","topics"|"markets"|"channels":[...]} answered with
{"type":"subscribed","topics":[...]}, then messages in the exact demo format
(include/ringcast/demo.h):

    {"topic":"demo:BTC","seq":42,"ts":1763750000123456,"type":"quote",...}

published at --rate messages/s in total, round-robin over --topics topics,
each one sent to every subscriber of its topic. Frames are encoded once per
message and written straight to each subscriber's transport (the way a
broadcast server does it); websockets itself only handles the handshake,
the client's messages, keepalive pings and closing.

Deliberate faults, to check loadgen's counting (per topic, by seq, with
P = --fault-period):
  --inject-faults      seq % P == P/2: never sent (every subscriber loses 1);
                       seq % P == 0: sent twice (1 duplicate);
                       seq % P == 3P/4: ts 100 ms in the past (latency outlier).
  --fragment-every N   every Nth seq goes out as 3 frames (text + 2 continuations)
                       with a ping between the first two, all in one write.
  --rsv1-every N       every Nth seq has RSV1 set (uncompressed payload: loadgen
                       must count it as an error and skip the message).
  --count N            publish N messages per topic, then go quiet.
  --start-delay S      start publishing S seconds after listening.

Development tool only: it is Python-bound (a few hundred thousand
deliveries/s at best), so it measures the load generator's correctness,
never ringcast's speed.
"""
import argparse
import asyncio
import json
import os
import signal
import struct
import sys
import time

from websockets.asyncio.server import serve

# The server's demo symbols, in its order (src/ingest/demo.c); topic i past
# the end of the list is demo:SYM<i>.
DEMO_SYMBOLS = (
    "BTC ETH SOL XRP ADA DOGE AVAX DOT LINK MATIC LTC BCH ATOM UNI XLM ETC FIL APT ARB OP NEAR ICP "
    "HBAR VET ALGO BNB TRX SHIB AAVE AAPL MSFT NVDA AMZN GOOGL META TSLA JPM V SPY QQQ EURUSD GBPUSD "
    "USDJPY XAUUSD NFLX AMD INTC ORCL CRM ADBE AVGO COST WMT KO PEP DIS BAC XOM JNJ UNH IWM AUDUSD "
    "USDCHF XAGUSD"
).split()


def topic_name(i):
    return f"demo:{DEMO_SYMBOLS[i]}" if i < len(DEMO_SYMBOLS) else f"demo:SYM{i}"


def ws_header(length, opcode=0x1, fin=True, rsv1=False):
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if length < 126:
        return struct.pack("!BB", b0, length)
    if length <= 0xFFFF:
        return struct.pack("!BBH", b0, 126, length)
    return struct.pack("!BBQ", b0, 127, length)


def ws_frame(payload, opcode=0x1, fin=True, rsv1=False):
    return ws_header(len(payload), opcode, fin, rsv1) + payload


def demo_message(topic, seq, ts, size):
    symbol = topic.split(":", 1)[-1]
    body = (
        f'{{"topic":"{topic}","seq":{seq},"ts":{ts},"type":"quote","symbol":"{symbol}",'
        f'"bid":100.00,"ask":100.02,"last":100.01,'
        f'"bids":[[100.00,1.000],[99.98,2.000]],"asks":[[100.02,1.000],[100.04,2.000]]'
    )
    natural = len(body) + 1
    gap = size - natural
    if gap >= 9:
        body += ',"pad":"' + "x" * (gap - 9) + '"'
    elif gap > 0:
        body += " " * gap
    return (body + "}").encode()


class Feed:
    def __init__(self, args):
        self.args = args
        self.topics = [topic_name(i) for i in range(args.topics)]
        self.index = {t: i for i, t in enumerate(self.topics)}
        self.subscribers = [set() for _ in self.topics]  # transports
        self.seq = [0] * len(self.topics)
        self.sent_frames = 0
        self.messages = 0

    def publish(self, i):
        a = self.args
        self.seq[i] += 1
        seq = self.seq[i]
        ts = time.time_ns() // 1000
        copies = 1
        if a.inject_faults:
            p = a.fault_period
            if seq % p == p // 2:
                return  # the gap
            if seq % p == 0:
                copies = 2  # the duplicate
            if seq % p == (3 * p) // 4:
                ts -= 100_000  # 100 ms late
        payload = demo_message(self.topics[i], seq, ts, a.size)
        rsv1 = bool(a.rsv1_every and seq % a.rsv1_every == 0)
        if a.fragment_every and seq % a.fragment_every == 0 and len(payload) >= 3:
            third = len(payload) // 3
            data = (
                ws_frame(payload[:third], 0x1, fin=False, rsv1=rsv1)
                + ws_frame(b"mid-message", 0x9)  # a ping between fragments
                + ws_frame(payload[third : 2 * third], 0x0, fin=False)
                + ws_frame(payload[2 * third :], 0x0, fin=True)
            )
        else:
            data = ws_frame(payload, rsv1=rsv1)
        data = data * copies
        self.messages += 1
        for tr in self.subscribers[i]:
            if not tr.is_closing():
                tr.write(data)
                self.sent_frames += copies

    async def run(self):
        a = self.args
        await asyncio.sleep(a.start_delay)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        n = 0
        ntopics = len(self.topics)
        total = a.count * ntopics if a.count else None
        while total is None or n < total:
            due = int((loop.time() - t0) * a.rate)
            if total is not None:
                due = min(due, total)
            # Bounded bursts so the event loop still reads the clients.
            burst_end = min(due, n + max(1, int(a.rate // 100)))
            while n < burst_end:
                self.publish(n % ntopics)
                n += 1
            await asyncio.sleep(0.001 if n >= due else 0)
        print(f"fake_server: published {n} messages, done", file=sys.stderr, flush=True)

    async def handler(self, ws):
        if ws.request.path.split("?")[0] != "/ws":
            await ws.close(1008, "unknown path")
            return
        tr = ws.transport
        mine = set()
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    await ws.send('{"type":"error","error":"invalid JSON"}')
                    continue
                kind = msg.get("type") if isinstance(msg, dict) else None
                if kind in ("subscribe", "unsubscribe"):
                    names = msg.get("topics") or msg.get("markets") or msg.get("channels") or []
                    idx = [self.index[t] for t in names if isinstance(t, str) and t in self.index]
                    if kind == "subscribe":
                        mine.update(idx)
                    else:
                        mine.difference_update(idx)
                        for i in idx:
                            self.subscribers[i].discard(tr)
                    # Ack first, then start publishing to it.
                    ack = {"type": kind + "d", "topics": sorted(self.topics[i] for i in mine)}
                    await ws.send(json.dumps(ack, separators=(",", ":")))
                    if kind == "subscribe":
                        for i in idx:
                            self.subscribers[i].add(tr)
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
                else:
                    await ws.send('{"type":"error","error":"unknown message type"}')
        except Exception:
            pass
        finally:
            for i in mine:
                self.subscribers[i].discard(tr)


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--topics", type=int, default=1, help="number of demo topics (default 1: demo:BTC)")
    ap.add_argument("--rate", type=float, default=100, help="messages/s in total across topics (default 100)")
    ap.add_argument("--size", type=int, default=0, help="pad each message to this many bytes")
    ap.add_argument("--inject-faults", action="store_true")
    ap.add_argument("--fault-period", type=int, default=100)
    ap.add_argument("--fragment-every", type=int, default=0)
    ap.add_argument("--rsv1-every", type=int, default=0)
    ap.add_argument("--count", type=int, default=0, help="messages per topic, then stop (0 = forever)")
    ap.add_argument("--start-delay", type=float, default=0)
    ap.add_argument("--ping-interval", type=float, default=1.0, help="keepalive pings (default every 1 s)")
    a = ap.parse_args()
    if a.fault_period < 4:
        ap.error("--fault-period must be at least 4")

    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    feed = Feed(a)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(feed.handler, a.host, a.port, ping_interval=a.ping_interval or None, ping_timeout=10,
                     max_size=1 << 20, backlog=4096, compression=None):
        print(f"fake_server: listening on {a.host}:{a.port} pid {os.getpid()}", file=sys.stderr, flush=True)
        pub = asyncio.create_task(feed.run())
        await stop
        pub.cancel()
    print(f"fake_server: {feed.messages} messages, {feed.sent_frames} frames written", file=sys.stderr, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
