// What the third-party peers (socketio_*.js, graphql_*.js, mqtt_*.mjs, jsonrpc_*.js) share: one
// JSON event per stdout line, a server's `{"event":"listening","port":N}` first line, and a
// client's bounded life (exit 0 when its conversation went as written, 1 when not or when
// --timeout passes first, 2 on a usage error).
'use strict';

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

function usage(script, message) {
  process.stderr.write(`${script}: ${message}\n`);
  process.exit(2);
}

// `node X.js URL [--timeout SECONDS] [--linger MS]` for clients, `node X.js [--port N]
// [--ping-interval MS]` for servers (the options a script does not use are ignored).
// Boolean `flags` ('--browser-ws') become camelCase options (opts.browserWs).
function parseArgs(script, argv, { url, flags = [] }) {
  const opts = { timeout: 10, port: 0, pingInterval: 0, linger: 0 };
  for (const flag of flags) opts[camel(flag)] = false;
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--timeout' || a === '--port' || a === '--ping-interval' || a === '--linger') {
      if (i + 1 >= argv.length) usage(script, `${a} needs a value`);
      opts[camel(a)] = Number(argv[++i]);
    } else if (flags.includes(a)) opts[camel(a)] = true;
    else if (a.startsWith('--')) usage(script, `unknown option ${a}`);
    else rest.push(a);
  }
  if (url && rest.length !== 1) usage(script, 'usage: URL [--timeout SECONDS]');
  if (!url && rest.length) usage(script, `unexpected argument ${rest[0]}`);
  opts.url = rest[0];
  return opts;
}

function camel(flag) {
  return flag.slice(2).replace(/-(\w)/g, (_, c) => c.toUpperCase());
}

// Exit once stdout is flushed (a pipe's write is asynchronous in Node).
function finish(code) {
  process.stdout.write('', () => process.exit(code));
}

// A client's end: `pass()` or `fail(message)`, whichever comes first; --timeout fails it.
function conversation(timeoutSeconds) {
  let over = false;
  const end = (code, event) => {
    if (over) return;
    over = true;
    if (event) emit(event);
    finish(code);
  };
  const timer = setTimeout(() => end(1, { event: 'timeout', seconds: timeoutSeconds }),
                           timeoutSeconds * 1000);
  timer.unref();
  return {
    pass: () => end(0, { event: 'done' }),
    fail: (message) => end(1, { event: 'error', message: String(message) }),
  };
}

// A server's start: listen on 127.0.0.1, say the port, exit at once on SIGTERM.
function listen(server, port) {
  server.listen(port, '127.0.0.1', () => emit({ event: 'listening', port: server.address().port }));
  process.on('SIGTERM', () => process.exit(0));
}

module.exports = { emit, parseArgs, conversation, listen, finish };
