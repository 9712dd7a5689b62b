// A Node `ws` echo server for the reconnection tests (tests/ws_peer.py's
// NodePeer starts it): node echo_peer.js PORT (0: a free one).
// Prints "PORT <n>" once listening on 127.0.0.1, then echoes every message.
const { WebSocketServer } = require("ws");

const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(process.argv[2] || 0) });
wss.on("listening", () => console.log(`PORT ${wss.address().port}`));
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
});
