// Echo server for the gws benchmarks: Node `ws` (with `bufferutil`), listeners
// on 127.0.0.1 free ports: "plain" (compression off) and "deflate"
// (permessage-deflate accepted), and with GWS_BENCH_CERT / GWS_BENCH_KEY (PEM
// files) "tls" (wss, compression off). Prints one JSON line with the ports and
// versions, then echoes every message with its opcode until SIGTERM or stdin closes.
'use strict';
const fs = require('fs');
const https = require('https');
const { WebSocketServer } = require('ws');

let bufferutil = null;
try {
  require('bufferutil');
  bufferutil = require('bufferutil/package.json').version;
} catch (err) {
  bufferutil = null;
}

function echo(wss) {
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => {});
  });
}

function start(perMessageDeflate) {
  return new Promise((resolve, reject) => {
    const wss = new WebSocketServer(
      { host: '127.0.0.1', port: 0, backlog: 4096, perMessageDeflate, maxPayload: 64 * 1024 * 1024 },
      () => resolve(wss.address().port),
    );
    wss.on('error', reject);
    echo(wss);
  });
}

function startTls() {
  if (!process.env.GWS_BENCH_CERT) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const server = https.createServer({
      cert: fs.readFileSync(process.env.GWS_BENCH_CERT),
      key: fs.readFileSync(process.env.GWS_BENCH_KEY),
    });
    const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    echo(wss);
    server.on('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => resolve(server.address().port));
  });
}

Promise.all([start(false), start(true), startTls()]).then(([plain, deflate, tls]) => {
  process.stdout.write(JSON.stringify({
    plain,
    deflate,
    tls,
    ws: require('ws/package.json').version,
    bufferutil,
    node: process.version,
  }) + '\n');
}, (err) => {
  console.error(err);
  process.exit(1);
});

process.on('SIGTERM', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
