#!/usr/bin/env node
// An MQTT 3.1.1 broker over WebSocket (npm aedes, each WebSocket made a stream with `ws`'s
// createWebSocketStream), a third-party peer for wsreplay's tests.
//
//   node mqtt_broker.mjs [--port N] [--whole-packets]
//
// Prints {"event":"listening","port":N}, then {"event":"client","id":...} per client that
// connected, {"event":"subscribe","id":...,"topics":[...]} and {"event":"publish","id":...,
// "topic":...,"qos":N,"payload":...} as clients act. Any path; the client's subprotocol
// (`mqtt`) is accepted. Packet ids of the PUBLISH packets the broker sends start at a random
// number in every process, as aedes does: a recording cannot replay them as they are.
//
// `ws`'s createWebSocketStream sends every write as its own WebSocket message, so aedes's
// packets go out in pieces (fixed header, length, topic, packet id, payload: legal, MQTT over
// WebSocket frames need not align with packets). --whole-packets sends each packet as one
// message instead (what brokers such as mosquitto do): aedes writes a packet corked, and a
// `_writev` joins what a cork held.
import { createServer } from 'node:http';
import { Duplex } from 'node:stream';
import { Aedes } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import peerlib from './peerlib.js';

const { emit, parseArgs, listen } = peerlib;
const opts = parseArgs('mqtt_broker.mjs', process.argv.slice(2),
                      { url: false, flags: ['--whole-packets'] });
const broker = await Aedes.createBroker();
broker.on('client', (client) => emit({ event: 'client', id: client.id }));
broker.on('subscribe', (subs, client) =>
  emit({ event: 'subscribe', id: client.id, topics: subs.map((s) => [s.topic, s.qos]) }));
broker.on('publish', (packet, client) => {
  if (client) {
    emit({ event: 'publish', id: client.id, topic: packet.topic, qos: packet.qos,
           payload: packet.payload.toString() });
  }
});

// `stream` (a WebSocket stream) behind a Duplex whose corked writes go out as one message.
function wholePackets(stream) {
  const joined = new Duplex({
    read() { stream.resume(); },
    write(chunk, enc, done) { stream.write(chunk, done); },
    writev(chunks, done) { stream.write(Buffer.concat(chunks.map((c) => c.chunk)), done); },
    final(done) { stream.end(done); },
    destroy(err, done) { stream.destroy(err); done(err); },
  });
  stream.on('data', (data) => { if (!joined.push(data)) stream.pause(); });
  stream.on('end', () => joined.push(null));
  stream.on('error', (err) => joined.destroy(err));
  stream.on('close', () => joined.destroy());
  return joined;
}

const server = createServer();
const wss = new WebSocketServer({ server });
wss.on('connection', (ws, req) => {
  const stream = createWebSocketStream(ws);
  broker.handle(opts.wholePackets ? wholePackets(stream) : stream, req);
});
listen(server, opts.port);
