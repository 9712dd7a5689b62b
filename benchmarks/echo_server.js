// Echo server for the gws benchmarks: Node `ws` (with `bufferutil`), two listeners
// on 127.0.0.1 free ports: "plain" (compression off) and "deflate"
// (permessage-deflate accepted). Prints one JSON line with the ports and versions,
// then echoes every message with its opcode until SIGTERM or stdin closes.
'use strict';
const { WebSocketServer } = require('ws');

let bufferutil = null;
try {
  require('bufferutil');
  bufferutil = require('bufferutil/package.json').version;
} catch (err) {
  bufferutil = null;
}

function start(perMessageDeflate) {
  return new Promise((resolve, reject) => {
    const wss = new WebSocketServer(
      { host: '127.0.0.1', port: 0, backlog: 4096, perMessageDeflate, maxPayload: 64 * 1024 * 1024 },
      () => resolve(wss),
    );
    wss.on('error', reject);
    wss.on('connection', (ws) => {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on('error', () => {});
    });
  });
}

Promise.all([start(false), start(true)]).then(([plain, deflate]) => {
  process.stdout.write(JSON.stringify({
    plain: plain.address().port,
    deflate: deflate.address().port,
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
