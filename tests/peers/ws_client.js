#!/usr/bin/env node
// A WebSocket test client on Node's `ws` package: an independent peer for wsreplay's tests.
//
//   node ws_client.js URL [--protocols a,b] [--header "Name: value"]... [--deflate]
//                     [--timeout SECONDS] [MESSAGES.json]
//
// Connects to URL, then works through a list of steps, one JSON object each, read from the file
// argument (a JSON array, or JSON lines) or else from stdin as JSON lines (read as they arrive, so
// a test can drive the client step by step):
//   {"text": "hi"}          send a text message        {"b64": "AP8="}  send a binary message
//   {"ping": "00ff"}        send a ping (hex payload)  {"pong": "00ff"} send an unsolicited pong
//   {"close": [1000, "bye"]} start the closing handshake ([] sends a close frame with no code)
//   {"wait": 3}             wait until 3 messages (text or binary) have been received in all
//   {"sleep": 100}          wait 100 ms              {"terminate": true} destroy the TCP socket
// Sends never go before the connection is open. When the steps run out (and the input has ended)
// without a close, the client waits for the server to close.
//
// Every stdout line is one JSON event:
//   {"event":"open","protocol":"a","extensions":"...","headers":{...101 response headers...}}
//   {"event":"message","type":"text"|"binary","b64":"..."}    {"event":"ping"|"pong","hex":"..."}
//   {"event":"close","code":1000,"reason":"bye"}              (1006: the TCP connection just ended)
//   {"event":"rejected","status":401,"headers":{...},"body":"..."}   (the upgrade was refused)
//   {"event":"error","message":"..."}                        {"event":"timeout"}
// Exit status: 0 once the connection has ended (closed, dropped or refused: the events say how),
// 2 on a usage error, 3 when --timeout (default 10 s) passes first.
'use strict';
const fs = require('fs');
const readline = require('readline');
const WebSocket = require('ws');

function usage(message) {
  process.stderr.write(`ws_client.js: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { headers: {}, protocols: [], timeout: 10 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--protocols') opts.protocols = next().split(',').filter(Boolean);
    else if (a === '--header') {
      const h = next();
      const colon = h.indexOf(':');
      if (colon < 1) usage(`bad header ${h}`);
      opts.headers[h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
    } else if (a === '--deflate') opts.deflate = true;
    else if (a === '--timeout') opts.timeout = Number(next());
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else if (!opts.url) opts.url = a;
    else if (!opts.file) opts.file = a;
    else usage(`unexpected argument ${a}`);
  }
  if (!opts.url) usage('a URL is needed');
  return opts;
}

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

// Steps arrive (from a file at once, or from stdin over time) into a queue worked through in order.
class Steps {
  constructor() {
    this.queue = [];
    this.ended = false;
    this.wake = () => {};
  }
  push(step) { this.queue.push(step); this.wake(); }
  end() { this.ended = true; this.wake(); }
  // Resolves to the next step, or null once the input has ended.
  next() {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve) => { this.wake = () => { this.wake = () => {}; resolve(this.next()); }; });
  }
}

function readSteps(file) {
  const steps = new Steps();
  const take = (line) => { if (line.trim()) steps.push(JSON.parse(line)); };
  if (file) {
    const text = fs.readFileSync(file, 'utf8');
    if (text.trim().startsWith('[')) JSON.parse(text).forEach((s) => steps.push(s));
    else text.split('\n').forEach(take);
    steps.end();
  } else {
    const rl = readline.createInterface({ input: process.stdin });
    rl.on('line', take);
    rl.on('close', () => steps.end());
  }
  return steps;
}

async function runStep(ws, step, state) {
  if ('text' in step) ws.send(String(step.text), { binary: false });
  else if ('b64' in step) ws.send(Buffer.from(step.b64, 'base64'), { binary: true });
  else if ('ping' in step) ws.ping(Buffer.from(step.ping, 'hex'));
  else if ('pong' in step) ws.pong(Buffer.from(step.pong, 'hex'));
  else if ('close' in step) {
    const [code, reason] = step.close;
    if (code === undefined) ws.close(); else ws.close(code, reason || '');
  } else if ('terminate' in step) ws.terminate();
  else if ('sleep' in step) await new Promise((r) => setTimeout(r, step.sleep));
  else if ('wait' in step) {
    while (state.received < step.wait && !state.closed) await new Promise((r) => { state.onMessage = r; });
  } else throw new Error(`unknown step ${JSON.stringify(step)}`);
}

async function drive(ws, steps, state) {
  await new Promise((resolve) => ws.once('open', resolve));
  for (let step = await steps.next(); step && !state.closed; step = await steps.next()) {
    await runStep(ws, step, state);
  }
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const steps = readSteps(opts.file);
  const ws = new WebSocket(opts.url, opts.protocols, {
    headers: opts.headers,
    perMessageDeflate: opts.deflate ? { threshold: 0 } : false,
  });
  const state = { received: 0, closed: false, onMessage: () => {} };
  const timer = setTimeout(() => { emit({ event: 'timeout' }); process.exit(3); }, opts.timeout * 1000);
  ws.on('upgrade', (res) => { state.headers = res.headers; });
  ws.on('open', () => emit({ event: 'open', protocol: ws.protocol, extensions: ws.extensions, headers: state.headers }));
  ws.on('message', (data, isBinary) => {
    emit({ event: 'message', type: isBinary ? 'binary' : 'text', b64: data.toString('base64') });
    state.received += 1;
    state.onMessage();
  });
  ws.on('ping', (data) => emit({ event: 'ping', hex: data.toString('hex') }));
  ws.on('pong', (data) => emit({ event: 'pong', hex: data.toString('hex') }));
  ws.on('unexpected-response', (req, res) => {
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => {
      emit({ event: 'rejected', status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() });
      process.exit(0);
    });
  });
  ws.on('error', (err) => emit({ event: 'error', message: String(err && err.message) }));
  ws.on('close', (code, reason) => {
    state.closed = true;
    state.onMessage();
    emit({ event: 'close', code, reason: reason.toString() });
    clearTimeout(timer);
    process.exit(0);
  });
  drive(ws, steps, state).catch((err) => {
    emit({ event: 'error', message: String(err && err.message) });
    ws.terminate();
  });
}

main();
