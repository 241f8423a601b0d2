#!/usr/bin/env node
// A GraphQL over WebSocket client (npm graphql-ws's createClient on `ws`), a third-party peer
// for wsreplay's tests.
//
//   node graphql_client.js URL [--timeout SECONDS]      (URL: ws://127.0.0.1:PORT/graphql)
//
// The conversation (protocol graphql-transport-ws): connection_init / connection_ack,
// subscribe to `subscription { count(to: 3) }` under a fresh random id (graphql-ws's own
// UUID), receive `next` {"count":1}, {"count":2}, {"count":3}, then `complete`; the client then
// closes the socket (1000). Every stdout line is a JSON event:
//   {"event":"connected"} {"event":"next","data":...} {"event":"complete"}
//   {"event":"closed","code":...} {"event":"done"} (exit 0)
//   {"event":"error","message":...} / {"event":"timeout"} (exit 1)
'use strict';
const WebSocket = require('ws');
const { createClient } = require('graphql-ws');
const { emit, parseArgs, conversation } = require('./peerlib');

const opts = parseArgs('graphql_client.js', process.argv.slice(2), { url: true });
const { pass, fail } = conversation(opts.timeout);
const seen = [];
let completed = false;

const client = createClient({
  url: opts.url,
  webSocketImpl: WebSocket,
  retryAttempts: 0,
  lazy: true,
  lazyCloseTimeout: 0, // close as soon as the last subscription is done
  on: {
    connected: () => emit({ event: 'connected' }),
    closed: (event) => {
      emit({ event: 'closed', code: event && event.code });
      if (!completed) return fail('closed before the subscription completed');
      const counts = seen.map((r) => r.data && r.data.count);
      if (JSON.stringify(counts) !== '[1,2,3]') return fail(`got counts ${JSON.stringify(counts)}`);
      pass();
    },
  },
});

client.subscribe({ query: 'subscription { count(to: 3) }' }, {
  next: (result) => { emit({ event: 'next', data: result.data }); seen.push(result); },
  error: (err) => fail(`subscription error: ${err && (err.message || err.reason || JSON.stringify(err))}`),
  complete: () => { emit({ event: 'complete' }); completed = true; },
});
