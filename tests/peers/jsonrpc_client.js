#!/usr/bin/env node
// A JSON-RPC 2.0 over WebSocket client (npm json-rpc-2.0's JSONRPCServerAndClient on `ws`), a
// third-party peer for wsreplay's tests.
//
//   node jsonrpc_client.js URL [--timeout SECONDS]      (URL: ws://127.0.0.1:PORT/rpc)
//
// Request ids are random integers drawn afresh per request (1 .. 2**31), as some real clients
// make them. The conversation: session.open {"user":"alice"} -> feed.subscribe {session,
// "topic":"prices"} -> the three feed.update notifications of that subscription (seq 1, 2, 3,
// value seq*10) -> feed.unsubscribe -> echo {"n":1} -> close (1000). Every stdout line is a
// JSON event:
//   {"event":"connected"} {"event":"session","session":...} {"event":"subscribed","id":...}
//   {"event":"update","seq":...,"value":...} {"event":"unsubscribed"} {"event":"echo",...}
//   {"event":"closed","code":...} {"event":"done"} (exit 0)
//   {"event":"error","message":...} / {"event":"timeout"} (exit 1)
'use strict';
const WebSocket = require('ws');
const { JSONRPCServerAndClient, JSONRPCServer, JSONRPCClient } = require('json-rpc-2.0');
const { emit, parseArgs, conversation } = require('./peerlib');

const opts = parseArgs('jsonrpc_client.js', process.argv.slice(2), { url: true });
const { pass, fail } = conversation(opts.timeout);

const randomID = () => 1 + Math.floor(Math.random() * 2 ** 31);

const ws = new WebSocket(opts.url);
const peer = new JSONRPCServerAndClient(
  new JSONRPCServer({ errorListener: () => {} }),
  new JSONRPCClient((request) => new Promise((resolve, reject) => {
    ws.send(JSON.stringify(request), (err) => (err ? reject(err) : resolve()));
  }), randomID),
  { errorListener: () => {} },
);

// Every feed.update that came, whenever it came (before or after the subscribe answer was
// handled); `waiting` is woken on each.
const updates = [];
let waiting = null;
peer.addMethod('feed.update', (params) => {
  updates.push(params);
  if (waiting) waiting();
});

function updatesOf(subscription, count, seconds) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const mine = updates.filter((u) => u && u.subscription === subscription);
      if (mine.length < count) return false;
      clearTimeout(timer);
      waiting = null;
      resolve(mine);
      return true;
    };
    const timer = setTimeout(() => {
      waiting = null;
      reject(new Error(`${updates.length} feed.update notification(s) in ${seconds}s, ` +
                       `wanted ${count} for ${subscription}: ${JSON.stringify(updates)}`));
    }, seconds * 1000);
    timer.unref();
    if (!check()) waiting = check;
  });
}

let closing = false;
ws.on('message', (data, isBinary) => {
  if (isBinary) return fail('a binary frame came');
  let message;
  try {
    message = JSON.parse(data.toString('utf8'));
  } catch (err) {
    return fail(`not JSON: ${data.toString('utf8').slice(0, 200)}`);
  }
  peer.receiveAndSend(message).catch((err) => fail(`bad JSON-RPC message: ${err.message}`));
});
ws.on('error', (err) => fail(`socket error: ${err.message}`));
ws.on('close', (code, reason) => {
  emit({ event: 'closed', code });
  peer.rejectAllPendingRequests(`connection closed (${code} ${reason})`);
  if (!closing) return fail(`closed by the server (${code}) before the conversation ended`);
  if (code !== 1000) return fail(`closed with ${code}`);
  pass();
});

async function talk() {
  emit({ event: 'connected' });
  const opened = await peer.request('session.open', { user: 'alice' });
  if (!opened || typeof opened.session !== 'string' || typeof opened.issued !== 'number') {
    throw new Error(`session.open answered ${JSON.stringify(opened)}`);
  }
  emit({ event: 'session', session: opened.session });

  const subscription = await peer.request('feed.subscribe',
                                          { session: opened.session, topic: 'prices' });
  if (typeof subscription !== 'string' || !/^0x[0-9a-f]{16}$/.test(subscription)) {
    throw new Error(`feed.subscribe answered ${JSON.stringify(subscription)}`);
  }
  emit({ event: 'subscribed', id: subscription });

  const mine = await updatesOf(subscription, 3, Math.max(1, opts.timeout / 2));
  for (const u of mine) emit({ event: 'update', seq: u.seq, value: u.value });
  const got = JSON.stringify(mine.map((u) => [u.seq, u.value]));
  if (got !== '[[1,10],[2,20],[3,30]]') throw new Error(`feed.update seq/values ${got}`);
  if (!mine.every((u) => typeof u.at === 'number')) throw new Error('feed.update without "at"');

  const removed = await peer.request('feed.unsubscribe', { subscription });
  if (removed !== true) throw new Error(`feed.unsubscribe answered ${JSON.stringify(removed)}`);
  emit({ event: 'unsubscribed' });

  const echoed = await peer.request('echo', { n: 1 });
  if (JSON.stringify(echoed) !== '{"n":1}') {
    throw new Error(`echo answered ${JSON.stringify(echoed)}`);
  }
  emit({ event: 'echo', result: echoed });

  closing = true;
  ws.close(1000);
}

ws.on('open', () => talk().catch((err) => fail(err && err.message ? err.message : err)));
