// permessage-deflate peer for tests/test_deflate_peers.py (Node ws).
// server: echo server on 127.0.0.1 port 0, compressing every message (threshold 0);
//         prints {"port": N} and runs until stdin closes.
// client URL COUNT: connects with permessage-deflate, sends COUNT messages of a
//         fixed mixed stream (compressible, random, small), checks each echo,
//         prints {"ok": N} and exits 0, or exits 1 with the first mismatch.
'use strict';
const crypto = require('crypto');
const { WebSocket, WebSocketServer } = require('ws');

const deflate = { threshold: 0 };

function message(i) {
  const kind = i % 4;
  if (kind === 0) return Buffer.from('compress me please '.repeat(50 + (i % 30)));
  if (kind === 1) return crypto.randomBytes(100 + ((i * 977) % 9000));
  if (kind === 2) return crypto.randomBytes(i % 70);
  return Buffer.from(JSON.stringify({ i, items: Array(40).fill({ a: 1, b: 'two' }) }));
}

if (process.argv[2] === 'server') {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: deflate }, () => {
    process.stdout.write(JSON.stringify({ port: wss.address().port }) + '\n');
  });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => {});
  });
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
} else {
  const [url, count] = [process.argv[3], Number(process.argv[4])];
  const ws = new WebSocket(url, { perMessageDeflate: deflate });
  let i = 0;
  let sent = null;
  const next = () => {
    if (i === count) {
      process.stdout.write(JSON.stringify({ ok: count, extensions: ws.extensions }) + '\n');
      ws.close(1000);
      return;
    }
    sent = message(i++);
    ws.send(sent, { binary: true });
  };
  ws.on('open', next);
  ws.on('message', (data) => {
    if (!Buffer.from(data).equals(sent)) {
      process.stderr.write(`echo ${i - 1} differs\n`);
      process.exit(1);
    }
    next();
  });
  ws.on('close', () => process.exit(i === count ? 0 : 1));
  ws.on('error', (err) => { process.stderr.write(String(err) + '\n'); process.exit(1); });
  setTimeout(() => { process.stderr.write('timeout\n'); process.exit(2); }, 20000);
}
