#!/usr/bin/env node
// An MQTT 3.1.1 client over WebSocket (npm mqtt), a third-party peer for wsreplay's tests.
//
//   node mqtt_client.js URL [--timeout SECONDS]      (URL: ws://127.0.0.1:PORT/mqtt)
//
// The conversation: CONNECT under a fresh random client id (mqtt.js's own `mqttjs_` + 8 hex
// digits) with a clean session, SUBSCRIBE to wsreplay/test at QoS 1 (packet id from mqtt.js's
// random start), PUBLISH "hello" there at QoS 1, receive the broker's PUBACK and the message
// back (QoS 1: the client PUBACKs it), then DISCONNECT. Every stdout line is a JSON event:
//   {"event":"connect","clientId":...} {"event":"suback","granted":[...]}
//   {"event":"puback"} {"event":"message","topic":...,"payload":...,"qos":N}
//   {"event":"done"} (exit 0)   {"event":"error","message":...} / {"event":"timeout"} (exit 1)
'use strict';
const mqtt = require('mqtt');
const { emit, parseArgs, conversation } = require('./peerlib');

const TOPIC = 'wsreplay/test';
const opts = parseArgs('mqtt_client.js', process.argv.slice(2), { url: true,
                                                                 flags: ['--browser-ws'] });
if (opts.browserWs && typeof globalThis.WebSocket === 'undefined') {
  globalThis.WebSocket = require('ws').WebSocket;
}
const { pass, fail } = conversation(opts.timeout);
const client = mqtt.connect(opts.url, {
  // --browser-ws: mqtt.js's browser code path (a WHATWG WebSocket, one MQTT packet per
  // WebSocket message, as in a browser), on `ws`'s WebSocket where Node has none built in.
  forceNativeWebSocket: opts.browserWs,
  protocolVersion: 4,
  clean: true,
  keepalive: 60, // no PINGREQ within a test's life
  reconnectPeriod: 0,
  connectTimeout: opts.timeout * 1000,
});
let acked = false;
let received = null;
let pubackSent = false; // the PUBACK for the message received: DISCONNECT only after it

function maybeEnd() {
  if (!acked || !received || !pubackSent) return;
  if (received.payload !== 'hello' || received.qos !== 1) {
    return fail(`unexpected message ${JSON.stringify(received)}`);
  }
  client.end(false, {}, () => pass());
}

client.on('connect', () => {
  emit({ event: 'connect', clientId: client.options.clientId });
  client.subscribe(TOPIC, { qos: 1 }, (err, granted) => {
    if (err) return fail(`subscribe: ${err.message}`);
    emit({ event: 'suback', granted: granted.map((g) => [g.topic, g.qos]) });
    if (granted[0].qos !== 1) return fail('QoS 1 was not granted');
    client.publish(TOPIC, 'hello', { qos: 1 }, (perr) => {
      if (perr) return fail(`publish: ${perr.message}`);
      emit({ event: 'puback' });
      acked = true;
      maybeEnd();
    });
  });
});
client.on('message', (topic, payload, packet) => {
  received = { topic, payload: payload.toString(), qos: packet.qos };
  emit({ event: 'message', ...received });
  maybeEnd();
});
client.on('packetsend', (packet) => {
  if (packet.cmd === 'puback') { // emitted just before the packet is written: end after it
    pubackSent = true;
    setImmediate(maybeEnd);
  }
});
client.on('error', (err) => fail(`mqtt error: ${err.message}`));
client.on('close', () => { if (!acked || !received) fail('the connection closed early'); });
