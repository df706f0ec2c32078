// Node preload used by the esmd test harness (node -r preload.js server.js)
// for kinesis-mock and kinesalite. It does two things:
//
// 1. Neither server has an option to choose the address it binds, and by
//    default each listens on every interface. This preload rewrites each
//    call to net.Server#listen in the process so that the server binds
//    127.0.0.1, keeping the port (and any callback) the server asked for.
//
// 2. kinesalite throws from its request 'error' listener, so a client that
//    resets its connection halfway through a request body ("aborted",
//    ECONNRESET) ends the whole process. The chaos tests' fault proxy does
//    exactly that to esmd's connections, and one server is shared by many
//    tests. That one error is logged and ignored; any other uncaught
//    exception still ends the process, as Node's default does.
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

process.on('uncaughtException', (err) => {
  if (err && err.code === 'ECONNRESET' && err.message === 'aborted') {
    console.error('esmd test preload: a client aborted a request; ignored');
    return;
  }
  console.error(err);
  process.exit(1);
});
