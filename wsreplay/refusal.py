"""Telling clients "503" when the process has no file descriptor left to take them.

When ``accept()`` fails for lack of descriptors (EMFILE: the process's limit; ENFILE, ENOBUFS,
ENOMEM: the system's), asyncio reports it to the loop's exception handler -- by default a
traceback in the log -- and stops accepting on that socket for a second (no busy loop). The
clients meanwhile wait in the listen backlog, told nothing, until they time out.

:class:`Refusal` takes that report instead. It keeps one descriptor in reserve; on the report
it frees it, accepts the waiting clients one at a time on it, answers each ``503 Service
Unavailable`` and closes it, then takes its reserve back; and it says why in one log line (then
at most one every :data:`LOG_EVERY` seconds while it lasts, with how many were refused). asyncio
accepts again by itself a second later, so clients are served again as descriptors free up.
Any other report goes to the handler that was there before.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from typing import Any, Callable, Iterable

from .door import out_of_descriptors  # the one test of "no descriptor left" (record's too)

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

OUT_OF = {errno.EMFILE: "the process's limit", errno.ENFILE: "the system's limit",
          errno.ENOBUFS: "no socket buffer space", errno.ENOMEM: "out of memory"}
LOG_EVERY = 10.0  # seconds between two log lines while clients are being refused
MAX_REFUSED = 100  # clients refused per report (asyncio's own accept batch)
BODY = b"wsreplay: out of file descriptors, try again later\n"
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s"
        % (len(BODY), BODY))


def _why(exc: OSError) -> str:
    detail = OUT_OF.get(exc.errno, "")
    if exc.errno == errno.EMFILE and resource is not None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY:
            detail += f" of {soft:,} descriptors"
    return f"{exc.strerror or exc} ({detail})"


def _reserve() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None


class Refusal:
    """Answer 503 to the clients waiting on ``sockets`` (the listening sockets, as
    ``asyncio.Server.sockets`` gives them) whenever accepting them fails for lack of
    descriptors; ``log(line)`` says so. :meth:`install` on the running loop after listening,
    :meth:`uninstall` when the server stops. A shell that refuses a client itself for the
    same reason (a file it cannot open) tells :meth:`refused_some`."""

    def __init__(self, sockets: Iterable[Any], log: Callable[[str], None]):
        self._listeners: dict[int, socket.socket] = {}
        for sock in sockets:
            twin = sock.dup()  # a socket object of our own on the same listening socket
            twin.setblocking(False)
            self._listeners[sock.fileno()] = twin
        self._log = log
        self._spare = _reserve()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._before: Callable | None = None
        self._quiet_until = 0.0
        self._unsaid = 0  # clients refused since the last log line
        self.refused = 0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._before = loop, loop.get_exception_handler()
        loop.set_exception_handler(self._report)

    def uninstall(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and loop.get_exception_handler() == self._report:
            loop.set_exception_handler(self._before)
        for twin in self._listeners.values():
            twin.close()
        self._listeners.clear()
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None

    def refused_some(self, count: int, exc: OSError) -> None:
        """``count`` clients were refused with 503 for ``exc`` (EMFILE...; 0: some could not
        even be refused): log it, at most one line every :data:`LOG_EVERY` seconds."""
        self.refused += count
        self._unsaid += count
        now = time.monotonic()
        if now < self._quiet_until:
            return
        self._quiet_until = now + LOG_EVERY
        if self._unsaid:
            told = f"refused {self._unsaid} client{'s' * (self._unsaid != 1)} with 503"
        else:
            told = "no descriptor left even to refuse them: they wait"
        self._log(f"cannot take new clients: {_why(exc)}; {told}; served again as "
                  "descriptors free up")
        self._unsaid = 0

    def _report(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        exc, sock = context.get("exception"), context.get("socket")
        twin = self._listeners.get(sock.fileno()) if sock is not None else None
        if twin is None or not out_of_descriptors(exc):
            if self._before is not None:
                self._before(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        refused, starved = self._refuse(twin)
        if refused or starved:  # else nobody was waiting: Linux says EMFILE before looking
            self.refused_some(refused, exc)

    def _refuse(self, twin: socket.socket) -> tuple[int, bool]:
        """Accept and answer 503 to the clients waiting on ``twin``, on the spare descriptor;
        how many, and whether one could not even be accepted (no spare)."""
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None
        refused, starved = 0, False
        try:
            for _ in range(MAX_REFUSED):
                try:
                    conn, _ = twin.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    break  # none waiting
                except OSError as exc:
                    starved = out_of_descriptors(exc)  # the spare was gone: they wait
                    break
                with conn:
                    conn.setblocking(False)
                    try:
                        conn.recv(1 << 16)  # the request: unread at close, it would reset
                    except OSError:
                        pass
                    try:
                        conn.send(BUSY)
                        conn.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                refused += 1
        finally:
            self._spare = _reserve()
        return refused, starved
