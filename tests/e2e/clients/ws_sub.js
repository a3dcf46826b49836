#!/usr/bin/env node
// A /ws subscriber on Node's `ws` library (Debian's node-ws), for the
// permessage-deflate interop tests in tests/e2e/test_deflate.py.
//
//   NODE_PATH=/usr/share/nodejs node ws_sub.js ws://127.0.0.1:PORT/ws TOPIC[,TOPIC...] [deflate|plain]
//
// Connects (offering permessage-deflate unless "plain"), subscribes with
// {"type":"subscribe","markets":[...]}, and prints one JSON object per line
// on stdout:
//   {"event":"open","extensions":<ws.extensions>,"header":<Sec-WebSocket-Extensions of the 101>}
//   {"event":"ack","text":<the first message: the subscribe ack>}
//   {"event":"message","binary":bool,"b64":<exact payload bytes, base64>}
//   {"event":"close","code":N,"reason":"..."}
//   {"event":"error","message":"..."}
// Closes with 1000 when stdin ends (the test closes the pipe), and exits
// once the close handshake is over.
'use strict';
const WebSocket = require('ws');

const [url, topics, mode] = process.argv.slice(2);
if (!url || !topics) {
  process.stderr.write('usage: ws_sub.js URL TOPIC[,TOPIC...] [deflate|plain]\n');
  process.exit(2);
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

let header = null;
let acked = false;
const ws = new WebSocket(url, { perMessageDeflate: mode !== 'plain', maxPayload: 64 * 1024 * 1024 });

ws.on('upgrade', (res) => {
  header = res.headers['sec-websocket-extensions'] || null;
});

ws.on('open', () => {
  out({ event: 'open', extensions: ws.extensions, header });
  ws.send(JSON.stringify({ type: 'subscribe', markets: topics.split(',') }));
});

ws.on('message', (data, isBinary) => {
  const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
  if (!acked) {
    acked = true;
    out({ event: 'ack', text: buf.toString('utf8') });
    return;
  }
  out({ event: 'message', binary: isBinary, b64: buf.toString('base64') });
});

ws.on('close', (code, reason) => {
  out({ event: 'close', code, reason: reason.toString() });
  process.exit(0);
});

ws.on('error', (err) => {
  out({ event: 'error', message: String(err && err.message) });
  process.exit(1);
});

process.stdin.resume();
process.stdin.on('end', () => {
  if (ws.readyState === WebSocket.OPEN) ws.close(1000, 'done');
  else process.exit(0);
});
