// Preloaded into Node peers under test (NODE_OPTIONS=--require): every
// server listens on 127.0.0.1 only, whatever host it asked for (wscat -l
// asks for none, which means every interface), and announces its port on
// stderr as "LISTENING <port>" so tests can pass port 0 and read the port.
'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'object' && args[0] !== null && !Array.isArray(args[0])) {
    args[0] = Object.assign({}, args[0], { host: '127.0.0.1' });
  } else if (typeof args[0] === 'number' || /^\d+$/.test(String(args[0]))) {
    args[0] = Number(args[0]);
    if (typeof args[1] === 'string' || args[1] === undefined || args[1] === null) {
      args[1] = '127.0.0.1';
    } else {
      args.splice(1, 0, '127.0.0.1');
    }
  }
  this.once('listening', () => {
    process.stderr.write(`LISTENING ${this.address().port}\n`);
  });
  return listen.apply(this, args);
};
