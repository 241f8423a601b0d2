#!/usr/bin/env node
// A Socket.IO 4 client (npm socket.io-client), a third-party peer for wsreplay's tests.
//
//   node socketio_client.js URL [--timeout SECONDS] [--linger MS]   (URL: http://127.0.0.1:PORT)
//
// The conversation: connect (WebSocket transport only), emit `chat` {"text":"hello"} with an
// acknowledgement, receive the server's broadcast `chat` {"from":SID,"text":"hello"} (SID must
// be this client's own Socket.IO id) and the ack {"ok":true,...}, stay connected --linger
// milliseconds (default 0), disconnect, wait for the
// WebSocket's closing handshake. Every stdout line is a JSON event:
//   {"event":"connect","sid":...} {"event":"chat","data":...} {"event":"ack","data":...}
//   {"event":"done"} (exit 0)  {"event":"error","message":...} / {"event":"timeout"} (exit 1)
'use strict';
const { io } = require('socket.io-client');
const { emit, parseArgs, conversation } = require('./peerlib');

const opts = parseArgs('socketio_client.js', process.argv.slice(2), { url: true });
const { pass, fail } = conversation(opts.timeout);
const socket = io(opts.url, { transports: ['websocket'], reconnection: false, forceNew: true,
                              timeout: opts.timeout * 1000 });
let chat = null;
let ack = null;

function maybeEnd() {
  if (!chat || !ack) return;
  if (chat.from !== socket.id) return fail(`the broadcast is from ${chat.from}, not ${socket.id}`);
  if (chat.text !== 'hello' || ack.ok !== true) return fail('unexpected chat or ack');
  const raw = socket.io.engine.transport.ws; // the `ws` WebSocket under Engine.IO
  raw.on('close', (code) => { emit({ event: 'closed', code }); pass(); });
  // --linger MS: stay connected that long first (the server's heartbeats keep it alive)
  setTimeout(() => socket.disconnect(), opts.linger);
}

socket.on('connect', () => {
  emit({ event: 'connect', sid: socket.id });
  socket.emit('chat', { text: 'hello' }, (data) => {
    emit({ event: 'ack', data });
    ack = data;
    maybeEnd();
  });
});
socket.on('chat', (data) => {
  emit({ event: 'chat', data });
  chat = data;
  maybeEnd();
});
socket.on('connect_error', (err) => fail(`connect_error: ${err.message}`));
socket.on('disconnect', (reason) => {
  if (reason !== 'io client disconnect') fail(`disconnected: ${reason}`);
});
