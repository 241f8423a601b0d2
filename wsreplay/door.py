"""Where clients come in to ``record``: its own accept loop, a deadline for every request head,
and a way through when the process runs out of descriptors.

Left to the event loop's ``create_server``, aiohttp gives a connection all the time it likes
to send its request head (one byte a second keeps it open for ever), and once the descriptors
run out the loop either logs a traceback and stops accepting for a second (asyncio) or accepts
and drops clients without a word (uvloop). So :class:`Door` accepts itself:

* every connection has ``handshake_timeout`` seconds from its accept to deliver a complete
  request head, then gets a 408 and is closed; one kept alive after a plain HTTP answer has
  as long for its next request, then is closed;
* out of descriptors, it closes the connections that have waited longest for a request head
  (slow handshakes, idle keep-alive connections; those mid-request get a 503) to let new
  clients in. With none to close, the new client gets a 503 on a descriptor kept in reserve
  for that, and accepting pauses briefly when even that is gone: never a busy loop;
* :meth:`Door.make_room` does the same for a descriptor the proxy needs for an upstream leg.

The log says why, at most once a second (:class:`Tally`). The proxy tells the door when a
request head has arrived (:meth:`Door.arrived`) and when a connection is idle again
(:meth:`Door.waiting`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import socket
from typing import Callable

from .fdlimit import soft_limit

__all__ = ["Door", "Tally", "listening_sockets", "out_of_descriptors"]

STARVED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_GAVE_UP = frozenset({errno.ECONNABORTED, errno.ECONNRESET, errno.EPROTO, errno.EPERM})
ACCEPT_BATCH = 64  # connections accepted per wake-up (asyncio accepts up to 100)
SHED_BATCH = 8  # waiting connections closed per starved accept
SETTLE = 0.005  # seconds for closed descriptors to be released before accepting again
HOLD = 0.05  # seconds new clients wait while make_room's caller takes its descriptor
RETRY = 0.1  # seconds before accepting again with no descriptor at all to spare


def _answer(status: str, text: str) -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def out_of_descriptors(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an error it wraps) says the process or system has no descriptor
    (or socket buffer) left."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in STARVED:
            return True
        exc = getattr(exc, "os_error", None) or exc.__cause__ or exc.__context__
        seen += 1
    return False


def listening_sockets(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Non-blocking sockets listening on every address ``host`` resolves to (all interfaces
    for ""), all on one port (``port`` 0: the first one bound picks it). Raises OSError."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    socks: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address[:2]) in seen:
                continue
            seen.add((family, address[:2]))
            try:
                sock = socket.socket(family, kind, proto)
            except OSError:  # a family this system lacks (IPv6 off): skipped, as asyncio does
                continue
            socks.append(sock)
            if os.name == "posix":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if socks[1:] and port == 0:
                address = (address[0], socks[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    if not socks:
        raise OSError(errno.EADDRNOTAVAIL, f"no address to listen on for {host!r}")
    return socks


class Tally:
    """Counts an event and passes ``text(n)`` to ``say`` at most once per ``interval``
    seconds: the first at once, those that follow summed up."""

    def __init__(self, say: Callable[[str], None], text: Callable[[int], str],
                 interval: float = 1.0):
        self._say, self._text, self._interval = say, text, interval
        self._pending = 0
        self._timer: asyncio.TimerHandle | None = None
        self.total = 0

    def add(self, n: int = 1) -> None:
        self._pending += n
        self.total += n
        if self._timer is None:
            self._tick()

    def _tick(self) -> None:
        self._timer = None
        if self._pending:
            self._say(self._text(self._pending))
            self._pending = 0
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._tick)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        if self._pending:
            self._say(self._text(self._pending))
            self._pending = 0


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' * (n != 1)}"


def _limit() -> str:
    limit = soft_limit()
    return f"the limit is {limit:,} open files" if limit else "no descriptor left"


class _Waiting:
    """A connection waiting for a request head: since when, its deadline's timer, and
    whether it is its first (a handshake) rather than the next one on a kept-alive
    connection."""

    __slots__ = ("since", "timer", "first")

    def __init__(self, since: float, timer: asyncio.TimerHandle, first: bool):
        self.since, self.timer, self.first = since, timer, first


class Door:
    """Accepts on ``socks`` and hands each connection to ``protocol_factory`` (an
    ``aiohttp.web.Server``). ``log`` gets the chatter (handshakes timed out), ``warn`` the
    errors (clients refused or closed for lack of descriptors). ``await start()``, then
    :meth:`close` to stop accepting (the connections themselves are the server's).

    An event loop that cannot watch a socket (Windows' proactor loop) accepts for the door:
    the deadlines hold, but there is no 503 for want of descriptors (nor such a limit)."""

    def __init__(self, protocol_factory, socks: list[socket.socket], *,
                 handshake_timeout: float, log: Callable[[str], None],
                 warn: Callable[[str], None]):
        self._factory = protocol_factory
        self.socks = socks
        self.handshake_timeout = handshake_timeout
        self._waiting: dict[object, _Waiting] = {}  # protocol -> its wait, oldest first
        self._admitting: set[asyncio.Task] = set()
        self._spare: int | None = None
        self._paused_until = 0.0
        self._resume_timer: asyncio.TimerHandle | None = None
        self._reading = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[asyncio.AbstractServer] = []  # where the loop accepts for us
        self.timed_out = Tally(log, lambda n: (
            f"closed {_plural(n, 'client')} with 408: no complete request head within "
            f"{handshake_timeout:g}s"))
        self.shed = Tally(warn, lambda n: (
            f"out of file descriptors ({_limit()}): closed {_plural(n, 'connection')} "
            f"still waiting for a request head (503), to let new clients in"))
        self.refused = Tally(warn, lambda n: (
            f"out of file descriptors ({_limit()}): refused {_plural(n, 'client')} with 503; "
            f"raise the limit (ulimit -n) or close connections"))

    # --- the proxy's side ---------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._spare = _reserve()
        try:
            self._read(True)
        except NotImplementedError:
            self._reading = False
            for sock in self.socks:
                self._servers.append(await self._loop.create_server(
                    lambda: self._protocol(self._loop.time()), sock=sock))

    def close(self) -> None:
        """Stop accepting and close the listening sockets. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._read(False)
        if self._resume_timer is not None:
            self._resume_timer.cancel()
        for server in self._servers:
            server.close()
        for sock in self.socks:
            sock.close()
        for task in self._admitting:
            task.cancel()
        for wait in self._waiting.values():
            wait.timer.cancel()
        self._waiting.clear()
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None
        for tally in (self.timed_out, self.shed, self.refused):
            tally.close()

    def arrived(self, protocol) -> None:
        """A request head came in on ``protocol``'s connection: its deadline is off."""
        wait = self._waiting.pop(protocol, None)
        if wait is not None:
            wait.timer.cancel()

    def waiting(self, protocol) -> None:
        """``protocol``'s connection, answered, may send another request (keep-alive): it
        has ``handshake_timeout`` for it, and may be closed before to let clients in."""
        transport = getattr(protocol, "transport", None)
        if self._closed or transport is None or transport.is_closing():
            return
        self.arrived(protocol)
        self._watch(protocol, self._loop.time(), first=False)

    async def make_room(self) -> bool:
        """Close the connection that has waited longest for a request head, so that the
        caller can open a descriptor: True once closed (retry then), False when no connection
        was waiting. New clients wait a moment meanwhile, so that descriptor is the caller's."""
        if not self._shed(1):
            return False
        self._pause(HOLD)
        await asyncio.sleep(SETTLE)
        return True

    # --- accepting ----------------------------------------------------------------------

    def _read(self, on: bool) -> None:
        if on == self._reading or (on and self._closed) or self._servers:
            return
        self._reading = on
        for sock in self.socks:
            if on:
                self._loop.add_reader(sock.fileno(), self._readable, sock)
            else:
                self._loop.remove_reader(sock.fileno())

    def _pause(self, seconds: float) -> None:
        until = self._loop.time() + seconds
        if self._reading is False and self._paused_until >= until:
            return
        self._read(False)
        self._paused_until = until
        if self._resume_timer is not None:
            self._resume_timer.cancel()
        self._resume_timer = self._loop.call_at(until, self._resume)

    def _resume(self) -> None:
        self._resume_timer = None
        if self._spare is None:
            self._spare = _reserve()
        self._read(True)

    def _readable(self, sock: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in STARVED:
                    if self._starved(sock):
                        continue
                    return
                if exc.errno in _GAVE_UP:
                    continue
                self._pause(RETRY)
                return
            conn.setblocking(False)
            task = self._loop.create_task(self._admit(conn, self._loop.time()))
            self._admitting.add(task)
            task.add_done_callback(self._admitting.discard)

    def _starved(self, sock: socket.socket) -> bool:
        """No descriptor for the next client: close waiting connections for it (accepting
        resumes once they are gone), or refuse it with 503 on the spare descriptor. True
        when accepting may go on at once."""
        if self._shed(SHED_BATCH):
            self._pause(SETTLE)
            return False
        if self._spare is None:
            self._pause(RETRY)
            return False
        os.close(self._spare)
        self._spare = None
        try:
            conn, _ = sock.accept()
        except OSError:
            conn = None
        if conn is not None:
            _refuse(conn, _answer("503 Service Unavailable",
                                  "wsreplay record: out of file descriptors; try again later\n"))
            self.refused.add()
        self._spare = _reserve()
        if self._spare is None:
            self._pause(RETRY)
            return False
        return conn is not None

    async def _admit(self, conn: socket.socket, since: float) -> None:
        factory = functools.partial(self._protocol, since)
        try:
            await self._loop.connect_accepted_socket(factory, conn)
        except OSError as exc:
            conn.close()
            if out_of_descriptors(exc):
                self.refused.add()
        except BaseException:
            conn.close()
            raise

    def _protocol(self, since: float):
        protocol = self._factory()
        self._watch(protocol, since, first=True)
        return protocol

    # --- waiting connections ------------------------------------------------------------

    def _watch(self, protocol, since: float, first: bool) -> None:
        timer = self._loop.call_at(since + self.handshake_timeout, self._expire, protocol)
        self._waiting[protocol] = _Waiting(since, timer, first)

    def _expire(self, protocol) -> None:
        wait = self._waiting.pop(protocol, None)
        transport = getattr(protocol, "transport", None)
        if wait is None or transport is None or transport.is_closing():
            return
        if wait.first:
            transport.write(_answer("408 Request Timeout", (
                f"wsreplay record: no complete request head within "
                f"{self.handshake_timeout:g}s (--handshake-timeout)\n")))
            self.timed_out.add()
        transport.close()

    def _shed(self, most: int) -> int:
        """Close up to ``most`` of the connections waiting longest for a request head;
        how many were closed."""
        closed = 0
        while closed < most and self._waiting:
            protocol = next(iter(self._waiting))
            wait = self._waiting.pop(protocol)
            wait.timer.cancel()
            transport = getattr(protocol, "transport", None)
            if transport is None or transport.is_closing():
                continue
            if wait.first:
                transport.write(_answer("503 Service Unavailable", (
                    "wsreplay record: out of file descriptors, and this request was the "
                    "slowest to come; try again later\n")))
            transport.close()
            closed += 1
        if closed:
            self.shed.add(closed)
        return closed


def _reserve() -> int | None:
    """A descriptor held in reserve (to answer a client when there is no other), or None."""
    try:
        return os.open(os.devnull, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None


def _refuse(conn: socket.socket, answer: bytes) -> None:
    """Send ``answer`` and close; what the client sent is read first, so the close is a FIN
    and not a reset that could destroy the answer before the client reads it."""
    with contextlib.suppress(OSError):
        conn.setblocking(False)
        conn.recv(1 << 16)
    with contextlib.suppress(OSError):
        conn.send(answer)
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
    conn.close()
