// Node `ws` client for tests/test_wsgi.py and tests/test_gunicorn.py.
//
//   node wsgi_client.js URL echo      send a text and a binary message, check
//                                     their echoes, close with 4002 "node done"
//   node wsgi_client.js URL info      the same after reading the server's first
//                                     message (JSON, reported as "server")
//   node wsgi_client.js URL closed    send "x" and wait for the server to close
//
// Prints one JSON line: extensions negotiated, text_ok, binary_ok, close code
// and reason as this client saw them. Exits 2 on an error, and gives up after
// 20 s (the test's own timeout is longer).
"use strict";
const WebSocket = require("ws");

const [url, mode] = process.argv.slice(2);
const result = { mode, events: [] };
const text = "h\u00e9llo from node \u2603 ".repeat(50);
const binary = Buffer.alloc(2000);
for (let i = 0; i < binary.length; i++) binary[i] = (i * 13) & 255;

const ws = new WebSocket(url, { perMessageDeflate: true });
let step = mode === "info" ? -1 : 0;
const timer = setTimeout(() => {
  result.error = "timed out";
  console.log(JSON.stringify(result));
  process.exit(2);
}, 20000);

ws.on("open", () => {
  result.extensions = ws.extensions;
  if (mode === "closed") ws.send("x");
  else if (step === 0) ws.send(text);
});
ws.on("message", (data, isBinary) => {
  if (mode === "closed") return;
  if (step === -1) {
    result.server = JSON.parse(data.toString());
    ws.send(text);
  } else if (step === 0) {
    result.text_ok = !isBinary && data.toString() === text;
    ws.send(binary);
  } else if (step === 1) {
    result.binary_ok = isBinary && Buffer.compare(data, binary) === 0;
    ws.close(4002, "node done");
  }
  step += 1;
});
ws.on("error", (err) => {
  result.events.push("error: " + err.message);
});
ws.on("close", (code, reason) => {
  clearTimeout(timer);
  result.close_code = code;
  result.close_reason = reason.toString();
  console.log(JSON.stringify(result));
  process.exit(result.events.length ? 2 : 0);
});
