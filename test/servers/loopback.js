// Node preload used by the esmd test harness (node -r loopback.js server.js).
// kinesis-mock and kinesalite have no option to choose the address they bind,
// and by default listen on every interface. This preload rewrites each call
// to net.Server#listen in the process so that the server binds 127.0.0.1,
// keeping the port (and any callback) the server asked for.
'use strict';
const net = require('net');
const HOST = '127.0.0.1';
const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    // listen(options[, callback]); a handle or a unix path is left alone.
    if (first.port !== undefined || first.host !== undefined) {
      args[0] = { ...first, host: HOST };
    }
    return listen.apply(this, args);
  }
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, callback])
    const rest = args.slice(1);
    if (typeof rest[0] === 'string' || rest[0] === null || rest[0] === undefined) {
      rest.shift();
    }
    return listen.call(this, Number(first), HOST, ...rest);
  }
  return listen.apply(this, args);
};
