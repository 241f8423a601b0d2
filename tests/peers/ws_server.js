#!/usr/bin/env node
// A WebSocket test server on Node's `ws` package: an independent peer for wsreplay's tests.
//
//   node ws_server.js [--port N] [--no-echo] [--protocols a,b] [--deflate]
//                     [--reject STATUS [--reject-body TEXT]] [--header "Name: value"]...
//
// Listens on 127.0.0.1 (port from --port or env PORT, else an ephemeral one) and prints
// `listening on PORT` once ready. After that, every stdout line is one JSON event, so a test can
// assert what the server saw:
//   {"event":"connect","conn":1,"path":"/x?a=1","headers":{...},"protocol":"a","extensions":"..."}
//   {"event":"message","conn":1,"type":"text"|"binary","b64":"..."}     (payload bytes, exact)
//   {"event":"ping"|"pong","conn":1,"hex":"..."}
//   {"event":"close","conn":1,"code":1000,"reason":"bye"}               (1006: no close frame)
//   {"event":"reject","status":401,"path":"/x"}  {"event":"http","method":"GET","path":"/"}
//   {"event":"error","conn":1,"message":"..."}
//
// Behaviour:
//   - echo (default; --no-echo turns it off): text comes back as text, binary as binary, same bytes;
//   - pings are answered with a pong automatically (ws's default) and logged;
//   - --protocols a,b: choose the first protocol the client offers that is in this list, else none
//     (without the option ws's default applies: the client's first offer);
//   - --deflate: accept permessage-deflate, compressing every message (threshold 0);
//   - --reject STATUS: refuse every upgrade with that HTTP status and a text body;
//   - --header: add a header to the 101 answer (repeatable);
//   - plain HTTP requests get 200 "ws_server: plain http\n".
// Control messages (text messages starting with "__"; logged like any message, never echoed):
//   __close [CODE [REASON]]  close with that code and reason (no code: an empty close frame)
//   __ping HEX               send a ping with that payload (HEX may be empty)
//   __send SPEC              send {"text":...} | {"b64":...} | {"ping":hex} | {"pong":hex}
//   __terminate              destroy the TCP socket (FIN, no close frame)
//   __reset                  reset the TCP socket (RST, no close frame)
//   __headers                answer with the upgrade request's headers as a JSON text message
// A control message that fails (e.g. an invalid close code) is reported as an "error" event.
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const opts = { port: Number(process.env.PORT || 0), echo: true, headers: [], rejectBody: 'rejected by ws_server' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--port') opts.port = Number(next());
    else if (a === '--no-echo') opts.echo = false;
    else if (a === '--protocols') opts.protocols = next().split(',').filter(Boolean);
    else if (a === '--deflate') opts.deflate = true;
    else if (a === '--reject') opts.reject = Number(next());
    else if (a === '--reject-body') opts.rejectBody = next();
    else if (a === '--header') opts.headers.push(next());
    else usage(`unknown option ${a}`);
  }
  return opts;
}

function usage(message) {
  process.stderr.write(`ws_server.js: ${message}\n`);
  process.exit(2);
}

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

// Send one message described like ws_client.js's input lines.
function sendSpec(ws, spec) {
  if ('text' in spec) ws.send(String(spec.text), { binary: false });
  else if ('b64' in spec) ws.send(Buffer.from(spec.b64, 'base64'), { binary: true });
  else if ('ping' in spec) ws.ping(Buffer.from(spec.ping, 'hex'));
  else if ('pong' in spec) ws.pong(Buffer.from(spec.pong, 'hex'));
  else throw new Error(`unknown message spec ${JSON.stringify(spec)}`);
}

// Returns true when `text` was a control message (and has been acted upon).
function control(ws, req, text) {
  const [cmd, ...rest] = text.split(' ');
  const arg = rest.join(' ');
  if (cmd === '__close' && !rest[0]) ws.close();
  else if (cmd === '__close') ws.close(Number(rest[0]), rest.slice(1).join(' '));
  else if (cmd === '__ping') ws.ping(Buffer.from(arg, 'hex'));
  else if (cmd === '__send') sendSpec(ws, JSON.parse(arg));
  else if (cmd === '__terminate') ws.terminate();
  else if (cmd === '__reset') ws._socket.resetAndDestroy();
  else if (cmd === '__headers') ws.send(JSON.stringify(req.headers));
  else return false;
  return true;
}

function onConnection(opts, ws, req, conn) {
  emit({ event: 'connect', conn, path: req.url, headers: req.headers,
         protocol: ws.protocol, extensions: ws.extensions });
  ws.on('message', (data, isBinary) => {
    emit({ event: 'message', conn, type: isBinary ? 'binary' : 'text', b64: data.toString('base64') });
    if (!isBinary && data.length < 4096 && data.toString().startsWith('__')) {
      try {
        if (control(ws, req, data.toString())) return;
      } catch (err) {
        emit({ event: 'error', conn, message: String(err && err.message) });
        return;
      }
    }
    if (opts.echo) ws.send(data, { binary: isBinary });
  });
  ws.on('ping', (data) => emit({ event: 'ping', conn, hex: data.toString('hex') }));
  ws.on('pong', (data) => emit({ event: 'pong', conn, hex: data.toString('hex') }));
  ws.on('error', (err) => emit({ event: 'error', conn, message: String(err && err.message) }));
  ws.on('close', (code, reason) => emit({ event: 'close', conn, code, reason: reason.toString() }));
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const server = http.createServer((req, res) => {
    emit({ event: 'http', method: req.method, path: req.url });
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('ws_server: plain http\n');
  });
  const wss = new WebSocketServer({
    server,
    perMessageDeflate: opts.deflate ? { threshold: 0 } : false,
    handleProtocols: opts.protocols
      ? (offered) => [...offered].find((p) => opts.protocols.includes(p)) || false
      : undefined,
    verifyClient: (info, done) => {
      if (opts.reject === undefined) return done(true);
      emit({ event: 'reject', status: opts.reject, path: info.req.url });
      return done(false, opts.reject, opts.rejectBody);
    },
  });
  wss.on('headers', (headers) => headers.push(...opts.headers));
  let conns = 0;
  wss.on('connection', (ws, req) => onConnection(opts, ws, req, ++conns));
  server.listen(opts.port, '127.0.0.1', () => {
    process.stdout.write(`listening on ${server.address().port}\n`);
  });
  // Tests stop us with SIGTERM; exit at once without waiting for open connections.
  process.on('SIGTERM', () => process.exit(0));
}

main();
