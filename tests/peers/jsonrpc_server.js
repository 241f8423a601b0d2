#!/usr/bin/env node
// A JSON-RPC 2.0 over WebSocket server (npm json-rpc-2.0's JSONRPCServer on `ws`), a
// third-party peer for wsreplay's tests.
//
//   node jsonrpc_server.js [--port N]
//
// Prints {"event":"listening","port":N}, then {"event":"call","method":...} per request.
// Path /rpc; every message is one JSON-RPC 2.0 message in one text frame. Like a real server,
// what it answers changes on every run:
//   session.open {"user":U}            -> {"session": fresh random UUID, "issued": Date.now()}
//   feed.subscribe {"session":S,"topic":T}
//                                      -> "0x" + 16 random hex digits (the subscription id),
//      then the notifications feed.update {"subscription":id,"seq":n,"value":n*10,"at":now}
//      for n = 1..3; S must be the session this connection opened, else error -32001
//   feed.unsubscribe {"subscription":id} -> true for a subscription of this connection, else
//                                          error -32002
//   echo P                             -> P
// Requests of one connection are answered one at a time, in the order they came.
'use strict';
const http = require('http');
const crypto = require('crypto');
const { WebSocketServer } = require('ws');
const { JSONRPCServer, JSONRPCErrorException, createJSONRPCNotification } =
  require('json-rpc-2.0');
const { emit, parseArgs, listen } = require('./peerlib');

const opts = parseArgs('jsonrpc_server.js', process.argv.slice(2), { url: false });

const UNKNOWN_SESSION = -32001;
const UNKNOWN_SUBSCRIPTION = -32002;

const rpc = new JSONRPCServer({
  errorListener: (message, data) =>
    process.stderr.write(`jsonrpc_server.js: ${message} ${JSON.stringify(data)}\n`),
});

// Each method gets the connection's state as its server params: the session it opened, its
// subscriptions, and `after`, what to send once the answer is out.
rpc.addMethod('session.open', (params, conn) => {
  if (!params || typeof params.user !== 'string') {
    throw new JSONRPCErrorException('params.user must be a string', -32602);
  }
  conn.session = crypto.randomUUID();
  conn.user = params.user;
  return { session: conn.session, issued: Date.now() };
});

rpc.addMethod('feed.subscribe', (params, conn) => {
  if (!params || !conn.session || params.session !== conn.session) {
    throw new JSONRPCErrorException('unknown session', UNKNOWN_SESSION);
  }
  const id = '0x' + crypto.randomBytes(8).toString('hex');
  conn.subscriptions.set(id, String(params.topic));
  conn.after.push(() => {
    for (let seq = 1; seq <= 3; seq++) {
      if (!conn.subscriptions.has(id)) return;
      conn.send(createJSONRPCNotification('feed.update',
        { subscription: id, seq, value: seq * 10, at: Date.now() }));
    }
  });
  return id;
});

rpc.addMethod('feed.unsubscribe', (params, conn) => {
  const id = params && params.subscription;
  if (!conn.subscriptions.delete(id)) {
    throw new JSONRPCErrorException('unknown subscription', UNKNOWN_SUBSCRIPTION);
  }
  return true;
});

rpc.addMethod('echo', (params) => params);

const server = http.createServer();
const wss = new WebSocketServer({ server, path: '/rpc' });
wss.on('connection', (ws) => {
  const conn = {
    session: null,
    subscriptions: new Map(),
    after: [],
    send: (message) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
    },
  };
  let queue = Promise.resolve();
  ws.on('message', (data, isBinary) => {
    queue = queue.then(async () => {
      const text = data.toString('utf8');
      try {
        const request = JSON.parse(text);
        if (request && typeof request.method === 'string') {
          emit({ event: 'call', method: request.method });
        }
      } catch (_) { /* receiveJSON answers the parse error */ }
      const response = await rpc.receiveJSON(isBinary ? '' : text, conn);
      if (response) conn.send(response);
      const after = conn.after.splice(0);
      for (const job of after) job();
    }).catch((err) => process.stderr.write(`jsonrpc_server.js: ${err && err.stack}\n`));
  });
});
listen(server, opts.port);
