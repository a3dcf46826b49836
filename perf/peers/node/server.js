'use strict';
/*
 * perf/peers/node/server.js — a minimal broadcast server on Node's `ws`
 * (Debian node-ws; NODE_PATH=/usr/share/nodejs), a peer for perf/run.
 *
 * What a user of the library would write: an http server, a
 * WebSocketServer on /ws, a Map topic → Set of sockets, and a timer that
 * publishes a synthetic feed shaped like `ringcast --demo`
 * (perf/peers/README.md) with ws.send() to every subscriber. The message is
 * turned into a Buffer once per publish; ws frames (and, with --deflate,
 * compresses) it per socket, as it always does. Subscribe protocol as
 * ringcast's /ws: {"type":"subscribe","channels"|"markets"|"topics":[…]}
 * → {"type":"subscribed","<same key>":[…]}; unsubscribe; ping → pong.
 *
 *   NODE_PATH=/usr/share/nodejs node perf/peers/node/server.js --port 9001 --demo-rate 100 --demo-topics 1
 *
 * --workers K: Node's cluster module, K worker processes behind one port
 * (each accepts from the shared listening socket: SCHED_NONE): for more
 * connections than one process's RLIMIT_NOFILE allows. Each worker runs its
 * own feed (same seqs), which is only right for idle runs.
 *
 * --feed-on-signal: start the feed on SIGUSR2 instead of at once (perf/run
 * sends it once every connection is up, so that a server the feed saturates
 * still gets its subscribers connected).
 */
const http = require('http');
const cluster = require('cluster');
const { WebSocketServer, WebSocket } = require('ws');

function parseArgs(argv) {
  const a = { host: '127.0.0.1', port: 9001, demoRate: 1000, demoSize: 256, demoTopics: 32, deflate: false,
              deflateMinBytes: 256, workers: 0, feedOnSignal: false };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i], v = () => argv[++i];
    if (k === '--host') a.host = v();
    else if (k === '--port') a.port = Number(v());
    else if (k === '--demo-rate') a.demoRate = Number(v());
    else if (k === '--demo-size') a.demoSize = Number(v());
    else if (k === '--demo-topics') a.demoTopics = Number(v());
    else if (k === '--deflate') a.deflate = true;
    else if (k === '--deflate-min-bytes') a.deflateMinBytes = Number(v());
    else if (k === '--workers') a.workers = Number(v());
    else if (k === '--feed-on-signal') a.feedOnSignal = true;
    else { console.error(`unknown option ${k}`); process.exit(2); }
  }
  return a;
}

// ringcast's demo symbols and start prices, in its order (src/ingest/demo.c)
const KNOWN = [
  ['BTC', 64000.0], ['ETH', 3200.0], ['SOL', 150.0], ['XRP', 0.52], ['ADA', 0.45], ['DOGE', 0.15],
  ['AVAX', 35.0], ['DOT', 7.2], ['LINK', 14.5], ['MATIC', 0.70], ['LTC', 82.0], ['BCH', 460.0],
  ['ATOM', 8.5], ['UNI', 9.8], ['XLM', 0.11], ['ETC', 27.0], ['FIL', 5.6], ['APT', 8.9], ['ARB', 1.05],
  ['OP', 2.4], ['NEAR', 6.8], ['ICP', 12.3], ['HBAR', 0.085], ['VET', 0.035], ['ALGO', 0.18],
  ['BNB', 580.0], ['TRX', 0.12], ['SHIB', 0.000024], ['AAVE', 95.0], ['AAPL', 190.0], ['MSFT', 420.0],
  ['NVDA', 120.0], ['AMZN', 185.0], ['GOOGL', 175.0], ['META', 500.0], ['TSLA', 180.0], ['JPM', 200.0],
  ['V', 275.0], ['SPY', 540.0], ['QQQ', 470.0], ['EURUSD', 1.085], ['GBPUSD', 1.27], ['USDJPY', 155.0],
  ['XAUUSD', 2350.0], ['NFLX', 640.0], ['AMD', 160.0], ['INTC', 31.0], ['ORCL', 125.0], ['CRM', 260.0],
  ['ADBE', 520.0], ['AVGO', 1400.0], ['COST', 850.0], ['WMT', 68.0], ['KO', 62.0], ['PEP', 170.0],
  ['DIS', 100.0], ['BAC', 39.0], ['XOM', 115.0], ['JNJ', 150.0], ['UNH', 510.0], ['IWM', 205.0],
  ['AUDUSD', 0.665], ['USDCHF', 0.90], ['XAGUSD', 29.5],
];

function demoTopic(i) {
  let symbol, mid;
  if (i < KNOWN.length) [symbol, mid] = KNOWN[i];
  else { symbol = `SYM${i}`; mid = (1 + (i * 7919 % 900) / 100) * Math.pow(10, i % 5 - 1); }
  const tick = mid * 1e-4;
  let dec = 2;
  while (dec < 12 && tick * Math.pow(10, dec) < 1) dec++;
  return { name: `demo:${symbol}`, symbol, mid, tick, dec, seq: 0 };
}

function fixed(units, dec) {
  const s = Math.pow(10, dec);
  return `${Math.floor(units / s)}.${String(units % s).padStart(dec, '0')}`;
}

const randInt = (lo, hi) => lo + Math.floor(Math.random() * (hi - lo + 1));

// One message: the keys, order and size rules of ringcast's demo feed.
function demoMessage(t, tsUs, size) {
  t.seq++;
  t.mid = Math.max(t.mid + randInt(-2, 2) * t.tick, 100 * t.tick);
  const scale = Math.pow(10, t.dec);
  const midU = Math.floor(t.mid * scale + 0.5);
  const spreadU = Math.max(1, Math.floor(t.tick * scale + 0.5));
  const bid = midU - Math.floor(spreadU / 2), ask = bid + spreadU, last = bid + randInt(0, spreadU);
  const head = `{"topic":"${t.name}","seq":${t.seq},"ts":${tsUs},"type":"quote","symbol":"${t.symbol}",` +
    `"bid":${fixed(bid, t.dec)},"ask":${fixed(ask, t.dec)},"last":${fixed(last, t.dec)},"bids":[`;
  const qty = Array.from({ length: 10 }, () => randInt(1, 9999));
  let body;
  for (let levels = 5; levels >= 0; levels--) {
    const bids = [], asks = [];
    for (let j = 0; j < levels; j++) {
      bids.push(`[${fixed(bid - j * spreadU, t.dec)},${fixed(qty[j], 3)}]`);
      asks.push(`[${fixed(ask + j * spreadU, t.dec)},${fixed(qty[5 + j], 3)}]`);
    }
    body = `${head}${bids.join(',')}],"asks":[${asks.join(',')}]`;
    if (size === 0 || body.length + 1 <= size) break;
  }
  const gap = Math.max(0, size - body.length - 1);
  return gap >= 9 ? `${body},"pad":"${'x'.repeat(gap - 9)}"}` : `${body}${' '.repeat(gap)}}`;
}

function run(a) {
  const subs = new Map(); // topic → Set<WebSocket>
  const server = http.createServer((req, res) => { res.writeHead(404); res.end('not found\n'); });
  const wss = new WebSocketServer({
    server, path: '/ws', clientTracking: false,
    perMessageDeflate: a.deflate ? {
      serverNoContextTakeover: true, clientNoContextTakeover: true, threshold: a.deflateMinBytes,
      zlibDeflateOptions: { level: 1 },
    } : false,
  });

  wss.on('connection', (ws) => {
    const mine = new Set();
    ws.on('message', (data, isBinary) => {
      let msg;
      try { msg = JSON.parse(data); } catch { ws.send('{"type":"error","message":"Invalid JSON"}'); return; }
      const kind = msg && msg.type;
      if (kind === 'subscribe' || kind === 'unsubscribe') {
        const key = ['channels', 'markets', 'topics'].find((k) => k in msg) || 'topics';
        for (const n of Array.isArray(msg[key]) ? msg[key] : []) {
          if (typeof n !== 'string') continue;
          if (kind === 'subscribe') {
            let s = subs.get(n);
            if (!s) subs.set(n, (s = new Set()));
            s.add(ws);
            mine.add(n);
          } else if (mine.delete(n)) {
            subs.get(n).delete(ws);
          }
        }
        ws.send(JSON.stringify({ type: 'subscribed', [key]: [...mine].sort() }));
      } else if (kind === 'ping') {
        ws.send('{"type":"pong"}');
      } else {
        ws.send(JSON.stringify({ type: 'error', message: `Unknown message type: ${kind}` }));
      }
    });
    ws.on('close', () => { for (const n of mine) subs.get(n).delete(ws); });
    ws.on('error', () => {});
  });

  server.listen({ host: a.host, port: a.port, backlog: 4096 }, () => {
    console.log(`node-ws peer pid ${process.pid} on ${a.host}:${a.port}`);
  });

  if (a.demoRate > 0 && a.feedOnSignal) process.once('SIGUSR2', () => feed(a, subs));
  else if (a.demoRate > 0) feed(a, subs);
}

function feed(a, subs) {
  // rate messages/s over all topics, round robin: each tick publishes what
  // came due since the last one, but never more than two ticks' worth (a
  // server too busy to keep up publishes less, and its deliveries/s say so,
  // instead of spending whole seconds catching up while handshakes wait).
  const topics = Array.from({ length: a.demoTopics }, (_, i) => demoTopic(i));
  const period = Math.min(100, Math.max(1, 1000 / a.demoRate));
  const start = process.hrtime.bigint();
  let made = 0, next = 0;
  setInterval(() => {
    const target = Math.floor(Number(process.hrtime.bigint() - start) / 1e9 * a.demoRate);
    const most = Math.max(1, Math.ceil(2 * a.demoRate * period / 1000));
    if (target > made + most) made = target - most;
    const tsUs = Math.floor((performance.timeOrigin + performance.now()) * 1000); // wall clock, µs
    for (; made < target; made++) {
      const t = topics[next];
      next = (next + 1) % topics.length;
      const msg = demoMessage(t, tsUs, a.demoSize);
      const s = subs.get(t.name);
      if (!s || s.size === 0) continue;
      const buf = Buffer.from(msg);
      for (const ws of s) if (ws.readyState === WebSocket.OPEN) ws.send(buf, { binary: false });
    }
  }, period);
}

const a = parseArgs(process.argv);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
if (a.workers > 1 && cluster.isPrimary) {
  process.on('SIGUSR2', () => {}); // meant for the workers' feeds
  // The workers accept from the shared socket themselves: with the default
  // round robin the primary accepts everything and queues the handles, and a
  // fast ramp runs it out of file descriptors (it then sheds connections).
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  for (let i = 0; i < a.workers; i++) cluster.fork();
  console.log(`node-ws peer primary pid ${process.pid}, ${a.workers} workers`);
} else {
  run(a);
}
