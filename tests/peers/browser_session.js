#!/usr/bin/env node
// A real browser (Debian's chromium, driven by playwright-core) using wsreplay's demo chat page,
// as a person would: an independent peer for wsreplay's browser tests.
//
//   node browser_session.js URL [--user NAME] [--say TEXT]... [--subscribe]... [--leave]
//                           [--screenshot PATH] [--timeout SECONDS] [--chromium PATH]
//
// Opens URL (the page of `wsreplay demo-server`, wherever it is served from), types NAME into the
// name field and clicks Connect, then waits for the server's welcome. Then, in the order given:
//   --say TEXT     types TEXT into the message field, clicks Say, waits for the "said" answer
//                  carrying TEXT;
//   --subscribe    clicks "Subscribe BTC", waits for 3 more "tick" messages (the server's burst).
// Every wait watches what the page shows in its log, so what is checked is what a person sees.
// With --leave it then ends the chat with the call the page itself makes before reconnecting,
// ws.close(1000, "bye") (the page has no leave button), and waits for the page to show
// "closed 1000". Then it takes the screenshot (when asked) and closes the page as a person
// closes a tab (chromium then sends close 1001 on a socket still open, and ends the TCP
// connection without waiting for the answer).
//
// Every stdout line is one JSON event:
//   {"event":"page","status":200}                      the page loaded (HTTP status)
//   {"event":"log","dir":">"|"<","data":"..."}          one line of the page's chat log, in order
//                                                      (">": the page sent it, "<": it received it)
//   {"event":"state","state":"connected"}              the page's connection state at the end
//                                                      ("closed 1000" after --leave)
//   {"event":"screenshot","path":"..."}                {"event":"closed"} the page was closed
//   {"event":"error","message":"..."}                  something did not happen in time
// The log and state lines come once, after the steps (or after the failure).
// Exit status: 0 all steps done; 1 a step failed (the page never connected, an answer did not
// show, the WebSocket closed); 2 a usage error; 3 --timeout (default 20 s) passed first.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

const TICKS = 3; // the demo server's default burst for a subscribe without a count
const BROWSER_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function parse(data) {
  try {
    return JSON.parse(data) || {};
  } catch (err) {
    return {};
  }
}

function usage(message) {
  process.stderr.write(`browser_session.js: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { user: 'alice', steps: [], timeout: 20, chromium: '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--user') opts.user = next();
    else if (a === '--say') opts.steps.push({ say: next() });
    else if (a === '--subscribe') opts.steps.push({ subscribe: true });
    else if (a === '--leave') opts.leave = true;
    else if (a === '--screenshot') opts.screenshot = next();
    else if (a === '--timeout') opts.timeout = Number(next());
    else if (a === '--chromium') opts.chromium = next();
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else if (!opts.url) opts.url = a;
    else usage(`unexpected argument ${a}`);
  }
  if (!opts.url) usage('a URL is needed');
  if (!(opts.timeout > 0)) usage('--timeout must be a positive number of seconds');
  return opts;
}

// Runs in the page: the chat log as [dir, data] pairs, and the connection state.
function readPage() {
  const lines = document.getElementById('log').textContent.split('\n').filter(Boolean);
  return {
    log: lines.map((l) => [l.slice(0, 1), l.slice(2)]),
    state: document.getElementById('state').textContent,
  };
}

// Runs in the page: true once `want` holds for the received messages, or the socket closed.
function pageReady(want) {
  const state = document.getElementById('state').textContent;
  if (state.startsWith('closed')) return true;
  const got = document.getElementById('log').textContent.split('\n')
    .filter((l) => l.startsWith('< '))
    .map((l) => { try { return JSON.parse(l.slice(2)) || {}; } catch (e) { return {}; } });
  const count = got.filter((m) => m.type === want.type
                                  && (want.text === undefined || m.text === want.text)).length;
  return state === 'connected' && count >= want.count;
}

class Session {
  constructor(page, deadline) {
    this.page = page;
    this.deadline = deadline;
  }

  // How many received messages of `type` (carrying `text`, when given) the page shows.
  async count(type, text) {
    const { log } = await this.page.evaluate(readPage);
    return log.filter(([dir]) => dir === '<').map(([, data]) => parse(data))
      .filter((m) => m.type === type && (text === undefined || m.text === text)).length;
  }

  // Waits until the page shows `want.count` received messages like `want`; throws otherwise.
  async waitFor(want, what) {
    const left = this.deadline - Date.now();
    try {
      await this.page.waitForFunction(pageReady, want, { timeout: Math.max(left, 1), polling: 20 });
    } catch (err) {
      throw new Error(`${what}: not shown within the time left`);
    }
    const { state } = await this.page.evaluate(readPage);
    if (state.startsWith('closed')) throw new Error(`${what}: the page's WebSocket ${state}`);
  }

  async connect(user) {
    await this.page.fill('#user', user);
    await this.page.click('#join button');
    await this.waitFor({ type: 'welcome', count: 1 }, 'the welcome');
  }

  async say(text) {
    const before = await this.count('said', text);
    await this.page.fill('#text', text);
    await this.page.click('#say button:not([type=button])');
    await this.waitFor({ type: 'said', text, count: before + 1 },
                       `the answer to ${JSON.stringify(text)}`);
  }

  async subscribe() {
    const before = await this.count('tick');
    await this.page.click('#sub');
    await this.waitFor({ type: 'tick', count: before + TICKS }, `${TICKS} ticks`);
  }

  async leave() {
    await this.page.evaluate(() => ws.close(1000, 'bye')); // eslint-disable-line no-undef
    const left = this.deadline - Date.now();
    try {
      await this.page.waitForFunction(
        () => document.getElementById('state').textContent.startsWith('closed'), null,
        { timeout: Math.max(left, 1), polling: 20 });
    } catch (err) {
      throw new Error('leaving: the page never showed its WebSocket closed');
    }
  }
}

async function report(page) {
  const { log, state } = await page.evaluate(readPage);
  for (const [dir, data] of log) emit({ event: 'log', dir, data });
  emit({ event: 'state', state });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const deadline = Date.now() + opts.timeout * 1000;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'wsreplay-chromium-'));
  let context = null;
  const timer = setTimeout(() => {
    emit({ event: 'error', message: `--timeout ${opts.timeout}s passed` });
    process.exit(3); // playwright ends the browser it launched when this process exits
  }, opts.timeout * 1000 + 2000);
  try {
    const { chromium } = require('playwright-core');
    // A persistent context is playwright's way to give chromium a fresh --user-data-dir.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: opts.chromium, headless: true, args: BROWSER_ARGS,
      viewport: { width: 900, height: 700 },
    });
    const page = context.pages()[0] || await context.newPage();
    return await drive(page, opts, deadline);
  } finally {
    clearTimeout(timer);
    if (context) await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

async function drive(page, opts, deadline) {
  const response = await page.goto(opts.url, { timeout: Math.max(deadline - Date.now(), 1) });
  emit({ event: 'page', status: response ? response.status() : null });
  const session = new Session(page, deadline);
  let failure = null;
  try {
    if (!response || !response.ok()) throw new Error('the page did not load');
    await session.connect(opts.user);
    for (const step of opts.steps) {
      if (step.say !== undefined) await session.say(step.say);
      else await session.subscribe();
    }
    if (opts.leave) await session.leave();
  } catch (err) {
    failure = err.message;
  }
  await report(page);
  if (opts.screenshot) {
    await page.screenshot({ path: opts.screenshot });
    emit({ event: 'screenshot', path: opts.screenshot });
  }
  await page.close();
  emit({ event: 'closed' });
  if (failure) emit({ event: 'error', message: failure });
  return failure ? 1 : 0;
}

main().then((code) => process.exit(code), (err) => {
  emit({ event: 'error', message: String(err && err.message || err) });
  process.exit(1);
});
