"""``wsreplay connect URL``: an interactive WebSocket console.

Opens one connection (aiohttp; TLS verified unless ``--insecure``; environment proxies never
used), prints the handshake result, then every message in both directions as a timed history
line in the scenario language. Lines read from stdin are sent (see
:data:`wsreplay.console.HELP`); stdin may be a pipe or a file, so the console can be scripted.

Exit codes: 0 the connection ended with a closing handshake (whoever started it); 1 the
handshake was refused or failed, or the connection ended without a closing handshake; 2 a
usage or file error. The logic lives in :mod:`wsreplay.console`; this module is the I/O glue.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import sys
import threading
import time
from pathlib import Path

import aiohttp

from .. import console
from ..errors import UsageError
from ..messages import Kind, Message
from ..model import Side
from ..recorder import Redaction
from ..writer import write
from . import EXIT_FAILED, EXIT_OK, EXIT_USAGE, print_error

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")  # an HTTP header name (RFC 9110 5.6.2)
BODY_MAX = 4096  # of a refusal's body, shown


def add_parser(sub) -> None:
    p = sub.add_parser("connect", help="open a WebSocket and talk to it interactively",
                       description="Open a WebSocket, send what you type (text, /json, /hex, "
                                   "/b64, /ping, /close...; /help lists them) and print the "
                                   "timed history of both directions in the scenario language. "
                                   "Reads stdin, so it can be scripted with a pipe.")
    p.add_argument("url", metavar="URL", help="ws:// or wss:// URL")
    p.add_argument("--query", action="append", default=[], metavar="K=V",
                   help="add a query parameter (URL-encoded for you); repeatable")
    p.add_argument("-H", "--header", action="append", default=[], metavar="'Name: value'",
                   help="add a request header; repeatable")
    p.add_argument("--protocol", action="append", default=[], metavar="P",
                   help="offer a subprotocol; repeatable, in order of preference")
    p.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate")
    p.add_argument("--ca-file", metavar="FILE", help="trust the CA certificates in FILE")
    p.add_argument("--save", metavar="FILE.wsr", help="write the session to FILE at the end")
    p.add_argument("--no-redact", action="store_true",
                   help="write Authorization/Cookie headers and token parameters as they are "
                        "(by default they become env variables)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="limit for the opening and the closing handshake (default 10)")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        session = _session(args)
        tls = _tls(args)
        if not args.timeout > 0:
            raise UsageError("--timeout must be a positive number of seconds")
        if args.save and Path(args.save).exists():
            raise UsageError(f"--save: {args.save} exists; choose another name")
    except UsageError as exc:
        print_error(exc)
        return EXIT_USAGE
    redaction = Redaction(enabled=not args.no_redact)
    return asyncio.run(_Console(session, redaction, args.timeout, args.save).main(tls))


def _session(args) -> console.Session:
    if not re.match(r"wss?://", args.url, re.I):
        raise UsageError(f"URL must start with ws:// or wss://, not {args.url!r}")
    query = []
    for item in args.query:
        key, eq, value = item.partition("=")
        if not eq or not key or re.search(r"[\s=]", key):
            raise UsageError(f"--query takes KEY=VALUE, not {item!r}")
        query.append((key, value))
    headers = []
    for item in args.header:
        name, colon, value = item.partition(":")
        if not colon or not _TOKEN.match(name.strip()) or re.search(r"[\r\n]", value):
            raise UsageError(f"-H takes 'Name: value', not {item!r}")
        headers.append((name.strip(), value.strip()))
    for protocol in args.protocol:
        if not _TOKEN.match(protocol):
            raise UsageError(f"--protocol: {protocol!r} is not a valid subprotocol name")
    return console.Session(args.url, tuple(query), tuple(headers), tuple(args.protocol))


def _tls(args) -> ssl.SSLContext | bool:
    if args.insecure:
        return False
    if args.ca_file:
        try:
            return ssl.create_default_context(cafile=args.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--ca-file: {exc}") from None
    return True


class _Refusal:
    """The answer to the upgrade request when it was not 101 (filled by the middleware)."""

    status = 0
    reason = ""
    body = b""


class _Console:
    """One console run: connect, then pump stdin lines and received messages until closed."""

    def __init__(self, session: console.Session, redaction: Redaction, timeout: float,
                 save_at_end: str | None):
        self.session, self.redaction, self.timeout = session, redaction, timeout
        self.save_at_end = save_at_end
        self.saved: set[Path] = set()  # files this run wrote: /save may overwrite only these
        self.refusal = _Refusal()
        self.t0 = 0.0
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.close_sent = False
        self.clean = False  # the closing handshake completed
        self.tty = sys.stdin.isatty() and sys.stdout.isatty()

    # -- output --

    def out(self, text: str) -> None:
        # On a terminal: wipe the prompt, print, and prompt again while input is wanted.
        prefix = "\r\x1b[K" if self.tty else ""
        prompt = "> " if self.tty and self.ws is not None and not self.close_sent else ""
        sys.stdout.write(prefix + text + "\n" + prompt)
        sys.stdout.flush()

    def err(self, text: str) -> None:
        sys.stdout.flush()
        print(f"wsreplay connect: {text}", file=sys.stderr, flush=True)

    def record(self, side: Side, message: Message) -> None:
        event = self.session.add(side, message, time.monotonic() - self.t0)
        self.out(console.line(event))

    # -- the run --

    async def main(self, tls: ssl.SSLContext | bool) -> int:
        async with aiohttp.ClientSession(
                trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                middlewares=(self._capture,),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout)) as http:
            self.out(f"# connecting to {self.session.url}")
            self.t0 = time.monotonic()
            if not await self._open(http, tls):
                self._save_at_end()
                return EXIT_FAILED
            try:
                await self._talk()
            finally:
                _release(self.ws)
        self._save_at_end()
        return EXIT_OK if self.clean else EXIT_FAILED

    async def _capture(self, request: aiohttp.ClientRequest, handler):
        """Client middleware: keep a refused upgrade's status and body before aiohttp drops
        them (its handshake error carries the status only)."""
        response = await handler(request)
        if response.status != 101:
            self.refusal.status, self.refusal.reason = response.status, response.reason or ""
            try:
                await asyncio.wait_for(self._read_body(response), self.timeout)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass  # show what came
        return response

    async def _read_body(self, response: aiohttp.ClientResponse) -> None:
        while len(self.refusal.body) < BODY_MAX:
            chunk = await response.content.read(BODY_MAX - len(self.refusal.body))
            if not chunk:
                return
            self.refusal.body += chunk

    async def _open(self, http: aiohttp.ClientSession, tls) -> bool:
        s = self.session
        try:
            self.ws = await asyncio.wait_for(http.ws_connect(
                s.url, params=list(s.query) or None, headers=list(s.headers),
                protocols=s.protocols, ssl=tls, autoping=False, autoclose=False,
                timeout=aiohttp.ClientWSTimeout(ws_close=self.timeout)),
                self.timeout)
        except aiohttp.WSServerHandshakeError as exc:
            self._refused(exc)
            return False
        except (aiohttp.ClientError, OSError, ValueError, asyncio.TimeoutError) as exc:
            self.err(f"cannot connect: {_describe(exc)}")
            return False
        self.out(s.opened(self.ws.protocol))
        return True

    def _refused(self, exc: aiohttp.WSServerHandshakeError) -> None:
        status = self.refusal.status or exc.status
        if status == 101:  # upgraded, but the answer broke the protocol (bad accept key...)
            self.err(f"handshake failed: {exc.message}")
            return
        self.err(self.session.refused(status, self.refusal.reason))
        body = self.refusal.body.decode("utf-8", "replace").rstrip("\n")
        if body:
            print(body, file=sys.stderr, flush=True)

    async def _talk(self) -> None:
        lines = _stdin_lines(asyncio.get_running_loop())
        reader = asyncio.create_task(self._read())
        try:
            while not reader.done():
                get = asyncio.ensure_future(lines.get())
                await asyncio.wait({reader, get}, return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    break
                text = get.result()
                await self._act(console.CloseConn() if text is None else console.parse_input(text))
                if self.close_sent:
                    break
            done, _ = await asyncio.wait({reader}, timeout=self.timeout)
            if done:
                reader.result()  # a failure inside the reader is a bug: let it show
            else:
                self.err(f"no close frame from the server within {self.timeout:g}s")
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _act(self, action) -> None:
        if isinstance(action, console.Send):
            await self._send(action.message)
        elif isinstance(action, console.CloseConn):
            await self._close(action.code, action.reason)
        elif isinstance(action, console.Save):
            self._save(action.path)
        elif isinstance(action, console.Show):
            text = "\n".join(self.session.history()) if action.what == "history" else console.HELP
            if text:
                self.out(text)
        elif isinstance(action, console.Invalid):
            self.err(action.message)

    async def _send(self, message: Message) -> None:
        assert self.ws is not None
        try:
            if message.kind is Kind.TEXT:
                await self.ws.send_str(message.text)
            elif message.kind is Kind.BINARY:
                await self.ws.send_bytes(message.data)
            else:
                await self.ws.ping(message.data)
        except (ConnectionError, RuntimeError) as exc:
            self.err(f"not sent: {_describe(exc)}")
            return
        self.record(Side.CLIENT, message)

    async def _close(self, code: int | None, reason: str | None) -> None:
        """Send a close frame (once); the reader waits for the server's."""
        assert self.ws is not None
        if self.close_sent:
            return
        self.close_sent = True
        message = Message.close(code, reason)
        try:
            await self.ws.send_frame(message.close_payload(), aiohttp.WSMsgType.CLOSE)
        except (ConnectionError, RuntimeError) as exc:
            self.err(f"close not sent: {_describe(exc)}")
            return
        self.record(Side.CLIENT, message)

    async def _read(self) -> None:
        """Receive until the connection ends, recording (and answering pings and closes)."""
        assert self.ws is not None
        while True:
            msg = await self.ws.receive()
            kind = msg.type
            if kind is aiohttp.WSMsgType.TEXT:
                self.record(Side.SERVER, Message.of_text(msg.data))
            elif kind is aiohttp.WSMsgType.BINARY:
                self.record(Side.SERVER, Message.of_binary(msg.data))
            elif kind is aiohttp.WSMsgType.PING:
                self.record(Side.SERVER, Message.ping(msg.data))
                await self._pong(msg.data)
            elif kind is aiohttp.WSMsgType.PONG:
                self.record(Side.SERVER, Message.pong(msg.data))
            elif kind is aiohttp.WSMsgType.CLOSE:
                await self._closed_by_server(msg.data or None, msg.extra or None)
                return
            else:  # CLOSED, CLOSING, ERROR: the connection ended with no close frame
                self._dropped(msg.data)
                return

    async def _pong(self, data: bytes) -> None:
        try:
            await self.ws.pong(data)
        except (ConnectionError, RuntimeError):
            return
        self.record(Side.CLIENT, Message.pong(data))

    async def _closed_by_server(self, code: int | None, reason: str | None) -> None:
        self.record(Side.SERVER, Message.close(code, reason))
        self.clean = True
        if self.close_sent:
            self.out("# closed: " + _code_text(code, reason))
            return
        # The server started it: answer with its code, as RFC 6455 5.5.1 asks.
        await self._close(code, None)
        self.out("# closed by the server: " + _code_text(code, reason))

    def _dropped(self, data) -> None:
        self.record(Side.SERVER, Message.drop())
        why = f": {_describe(data)}" if isinstance(data, BaseException) else ""
        self.err(f"the connection ended with no close frame{why}")

    # -- files --

    def _save(self, name: str) -> bool:
        path = Path(name)
        if path.exists() and path.resolve() not in self.saved:
            self.err(f"not saved: {name} exists (this session may overwrite only files it "
                     f"wrote)")
            return False
        text = write(self.session.scenario(self.redaction))
        try:
            _write_private(path, text)
        except OSError as exc:
            self.err(f"not saved: {exc}")
            return False
        self.saved.add(path.resolve())
        self.out(f"# saved {len(self.session.events)} events to {name}")
        return True

    def _save_at_end(self) -> None:
        if self.save_at_end:
            self._save(self.save_at_end)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600) through a temporary file, so a reader never
    sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue:
    """A queue of stdin lines (str, without line end), then None at end of input.

    A daemon thread reads with ``os.read``: it works for pipes, files and terminals alike,
    never blocks the event loop, and holds no lock of ``sys.stdin`` that interpreter
    shutdown would wait for.
    """
    queue: asyncio.Queue = asyncio.Queue()

    def put(item) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
            return True
        except RuntimeError:  # the loop is closed: nobody listens any more
            return False

    def pump() -> None:
        try:
            fd, pending = sys.stdin.fileno(), b""
        except (AttributeError, ValueError, OSError):  # no stdin at all: end of input
            put(None)
            return
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                if pending:
                    put(pending.decode("utf-8", "replace"))
                put(None)
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                if not put(raw.rstrip(b"\r").decode("utf-8", "replace")):
                    return

    threading.Thread(target=pump, name="wsreplay-stdin", daemon=True).start()
    return queue


def _release(ws) -> None:
    """End the TCP connection without sending another close frame."""
    response = getattr(ws, "_response", None)
    if response is not None:
        response.close()


def _code_text(code: int | None, reason: str | None) -> str:
    if not code:
        return "no status code"
    return f"{code} {reason}" if reason else str(code)


def _describe(exc) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
