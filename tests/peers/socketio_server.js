#!/usr/bin/env node
// A Socket.IO 4 chat server (npm socket.io), a third-party peer for wsreplay's tests.
//
//   node socketio_server.js [--port N] [--ping-interval MS]
//
// Prints {"event":"listening","port":N}, then {"event":"connect","sid":...} and
// {"event":"chat","sid":...,"text":...} per client and message. WebSocket transport only (the
// recording proxy carries WebSockets, not HTTP long-polling). A `chat` event {"text":T} is
// broadcast to every client as `chat` {"from":SID,"text":T}, then acknowledged with
// {"ok":true,"count":N} (N: chat messages this server has seen). Every process gives new
// session ids (Engine.IO's and Socket.IO's): a recording cannot replay them as they are.
'use strict';
const http = require('http');
const { Server } = require('socket.io');
const { emit, parseArgs, listen } = require('./peerlib');

const opts = parseArgs('socketio_server.js', process.argv.slice(2), { url: false });
const server = http.createServer();
// No Engine.IO heartbeat within a test's life (a ping would land at a different place in
// every run), unless --ping-interval MS asks for one (its timeout the same).
const ping = opts.pingInterval || 60000;
const io = new Server(server, { transports: ['websocket'], serveClient: false,
                                pingInterval: ping, pingTimeout: ping });
let count = 0;
io.on('connection', (socket) => {
  emit({ event: 'connect', sid: socket.id });
  socket.on('chat', (msg, ack) => {
    const text = msg && msg.text;
    emit({ event: 'chat', sid: socket.id, text });
    io.emit('chat', { from: socket.id, text });
    if (typeof ack === 'function') ack({ ok: true, count: ++count });
  });
});
listen(server, opts.port);
