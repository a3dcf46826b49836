#!/usr/bin/env python3
"""perf/peers/python/server.py — a minimal broadcast server on Python `websockets`
(the asyncio implementation, websockets >= 13), a peer for perf/run.

What a user of the library would write: one asyncio loop, `serve()` on /ws,
a dict topic → set of connections, and `broadcast()` from an internal timer
that publishes a synthetic feed shaped like `ringcast --demo`
(perf/peers/README.md). Subscribe protocol as ringcast's /ws:

    {"type":"subscribe","channels"|"markets"|"topics":["demo:BTC",…]}
        → {"type":"subscribed","<same key>":[…the full current set…]}
    {"type":"unsubscribe",…}, {"type":"ping"} → {"type":"pong"}

    .venv/bin/python perf/peers/python/server.py --port 9002 --demo-rate 100 --demo-topics 1
"""
import argparse
import asyncio
import json
import math
import os
import random
import signal
import time

from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from http import HTTPStatus

# ringcast's demo symbols and start prices, in its order (src/ingest/demo.c)
KNOWN = [
    ("BTC", 64000.0), ("ETH", 3200.0), ("SOL", 150.0), ("XRP", 0.52), ("ADA", 0.45), ("DOGE", 0.15),
    ("AVAX", 35.0), ("DOT", 7.2), ("LINK", 14.5), ("MATIC", 0.70), ("LTC", 82.0), ("BCH", 460.0),
    ("ATOM", 8.5), ("UNI", 9.8), ("XLM", 0.11), ("ETC", 27.0), ("FIL", 5.6), ("APT", 8.9), ("ARB", 1.05),
    ("OP", 2.4), ("NEAR", 6.8), ("ICP", 12.3), ("HBAR", 0.085), ("VET", 0.035), ("ALGO", 0.18),
    ("BNB", 580.0), ("TRX", 0.12), ("SHIB", 0.000024), ("AAVE", 95.0), ("AAPL", 190.0), ("MSFT", 420.0),
    ("NVDA", 120.0), ("AMZN", 185.0), ("GOOGL", 175.0), ("META", 500.0), ("TSLA", 180.0), ("JPM", 200.0),
    ("V", 275.0), ("SPY", 540.0), ("QQQ", 470.0), ("EURUSD", 1.085), ("GBPUSD", 1.27), ("USDJPY", 155.0),
    ("XAUUSD", 2350.0), ("NFLX", 640.0), ("AMD", 160.0), ("INTC", 31.0), ("ORCL", 125.0), ("CRM", 260.0),
    ("ADBE", 520.0), ("AVGO", 1400.0), ("COST", 850.0), ("WMT", 68.0), ("KO", 62.0), ("PEP", 170.0),
    ("DIS", 100.0), ("BAC", 39.0), ("XOM", 115.0), ("JNJ", 150.0), ("UNH", 510.0), ("IWM", 205.0),
    ("AUDUSD", 0.665), ("USDCHF", 0.90), ("XAGUSD", 29.5),
]


class DemoTopic:
    def __init__(self, i):
        if i < len(KNOWN):
            self.symbol, self.mid = KNOWN[i]
        else:
            self.symbol, self.mid = f"SYM{i}", (1 + (i * 7919 % 900) / 100) * 10 ** (i % 5 - 1)
        self.name = "demo:" + self.symbol
        self.tick = self.mid * 1e-4
        self.dec = 2
        while self.dec < 12 and self.tick * 10 ** self.dec < 1:
            self.dec += 1
        self.seq = 0


def fixed(units, dec):
    s = 10 ** dec
    return f"{units // s}.{units % s:0{dec}d}"


def demo_message(t, ts_us, size, rng):
    """One message: the keys, order and size rules of ringcast's demo feed."""
    t.seq += 1
    step = rng.randint(-2, 2)
    t.mid = max(t.mid + step * t.tick, 100 * t.tick)
    scale = 10 ** t.dec
    mid_u = int(t.mid * scale + 0.5)
    spread_u = max(1, int(t.tick * scale + 0.5))
    bid = mid_u - spread_u // 2
    ask = bid + spread_u
    last = bid + rng.randint(0, spread_u)
    head = (f'{{"topic":"{t.name}","seq":{t.seq},"ts":{ts_us},"type":"quote","symbol":"{t.symbol}",'
            f'"bid":{fixed(bid, t.dec)},"ask":{fixed(ask, t.dec)},"last":{fixed(last, t.dec)},"bids":[')
    qty = [rng.randint(1, 9999) for _ in range(10)]
    for levels in range(5, -1, -1):
        bids = ",".join(f"[{fixed(bid - j * spread_u, t.dec)},{fixed(qty[j], 3)}]" for j in range(levels))
        asks = ",".join(f"[{fixed(ask + j * spread_u, t.dec)},{fixed(qty[5 + j], 3)}]" for j in range(levels))
        body = f'{head}{bids}],"asks":[{asks}]'
        if size == 0 or len(body) + 1 <= size:
            break
    gap = max(0, size - len(body) - 1)
    if gap >= 9:
        return body + ',"pad":"' + "x" * (gap - 9) + '"}'
    return body + " " * gap + "}"


class Server:
    def __init__(self, a):
        self.a = a
        self.subs = {}  # topic → set of connections
        self.topics = [DemoTopic(i) for i in range(a.demo_topics)]
        self.rng = random.Random(20261121)

    async def handler(self, ws):
        mine = set()
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                    kind = msg.get("type")
                except (ValueError, AttributeError):
                    await ws.send('{"type":"error","message":"Invalid JSON"}')
                    continue
                if kind in ("subscribe", "unsubscribe"):
                    key = next((k for k in ("channels", "markets", "topics") if k in msg), "topics")
                    names = [n for n in msg.get(key) or [] if isinstance(n, str)]
                    for n in names:
                        if kind == "subscribe":
                            self.subs.setdefault(n, set()).add(ws)
                            mine.add(n)
                        elif n in mine:
                            mine.discard(n)
                            self.subs[n].discard(ws)
                    await ws.send(json.dumps({"type": "subscribed", key: sorted(mine)}, separators=(",", ":")))
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
                else:
                    await ws.send(json.dumps({"type": "error", "message": f"Unknown message type: {kind}"}))
        except ConnectionClosed:
            pass
        finally:
            for n in mine:
                s = self.subs.get(n)
                if s is not None:
                    s.discard(ws)

    async def publisher(self):
        """rate messages/s over all topics, round robin: each tick publishes what came
        due since the last one, but never more than two ticks' worth (a server too
        busy to keep up publishes less, and its deliveries/s say so, instead of
        spending whole seconds catching up while handshakes wait)."""
        a = self.a
        period = min(0.1, max(0.001, 1.0 / a.demo_rate))
        start = time.monotonic()
        made = nxt = 0
        most = max(1, math.ceil(2 * a.demo_rate * period))
        while True:
            await asyncio.sleep(period)
            target = int((time.monotonic() - start) * a.demo_rate)
            if target > made + most:
                made = target - most
            ts_us = time.time_ns() // 1000
            while made < target:
                t = self.topics[nxt]
                nxt = (nxt + 1) % len(self.topics)
                made += 1
                msg = demo_message(t, ts_us, a.demo_size, self.rng)
                conns = self.subs.get(t.name)
                if conns:
                    broadcast(conns, msg)


def process_request(connection, request):
    if request.path != "/ws":
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
    return None


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9002)
    ap.add_argument("--demo-rate", type=float, default=1000, help="messages/s over all topics (0: no feed)")
    ap.add_argument("--demo-size", type=int, default=256)
    ap.add_argument("--demo-topics", type=int, default=32)
    ap.add_argument("--deflate", action="store_true", help="negotiate permessage-deflate (no context takeover)")
    ap.add_argument("--feed-on-signal", action="store_true",
                    help="start the feed on SIGUSR2 (perf/run sends it once every connection is up)")
    ap.add_argument("--reuse-port", action="store_true", help="SO_REUSEPORT: several processes on one port")
    a = ap.parse_args()
    srv = Server(a)
    ext = None
    if a.deflate:
        ext = [ServerPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True,
                                              compress_settings={"level": 1})]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # a benchmark peer: no graceful close of 10K connections
        loop.add_signal_handler(sig, os._exit, 0)
    async with serve(srv.handler, a.host, a.port, process_request=process_request, compression=None,
                     extensions=ext, ping_interval=None, max_queue=None, backlog=4096,
                     reuse_port=a.reuse_port) as server:
        print(f"python-websockets peer pid {os.getpid()} on {a.host}:{a.port}", flush=True)
        if a.demo_rate > 0:
            if a.feed_on_signal:
                go = asyncio.Event()
                loop.add_signal_handler(signal.SIGUSR2, go.set)
                await go.wait()
            await srv.publisher()
        else:
            await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
