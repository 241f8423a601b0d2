"""Driving one :class:`~wsreplay.engine.Engine` with a real clock and real wires: the loop
both shells share (the replay client and the mock server).

The driver owns the engine's inputs: wires hand it messages (:meth:`on_message`), shells
call :meth:`opened` / :meth:`attach`; :meth:`run` polls the engine, performs its actions
and sleeps until something arrives or the engine's ``wake_at`` comes.

For speed, a message is processed in the task that read it when the engine is idle (feed,
poll, send the answers): no hand-off to the run's task, so an answer goes out in the same
turn of the event loop. Only ending connections is left to the run's task, which a reader
must not do to itself.

The engine is polled with a :data:`BUDGET`: it builds about that many bytes of messages at a
time, and the driver sends them (each send waiting for room on its wire) before asking for
more, so a run that sends 300 MiB in a row never holds more than a few of them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Awaitable, Callable

from .engine import Close, Engine, Open, Send
from .messages import Handshake, Message
from .outcome import Result
from .wire import Wire

Opener = Callable[[Open], None]
SPIN = 0.0015  # wake this early, then spin: selectors round waits up to whole milliseconds
BUDGET = 1 << 20  # bytes of messages built per poll: sent (each waiting for room) before more


class Driver:
    """Runs ``engine``; ``opener`` starts connecting for an :class:`Open` action (client
    side) and must end with :meth:`opened`."""

    def __init__(self, engine: Engine, opener: Opener | None = None):
        self.engine = engine
        self.opener = opener
        self.wires: dict[str, Wire] = {}
        self._loop = asyncio.get_running_loop()
        self._pending: deque = deque()
        self._waiter: asyncio.Future | None = None
        self._armed: float | None = None  # when the run's task will wake by itself
        self._busy = False
        self._closes: list[Close] = []  # left by readers for the run's task
        self._awaited: set[str] = set()  # connections being accepted: hold their sends
        self._held: list[Send] = []

    # -- inputs (from any task of the loop) ----------------------------------------------

    def _put(self, item: tuple) -> None:
        self._pending.append(item)
        self._wake_run()

    def _wake_run(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def deliver(self, conn: str, msg: Message) -> None:
        """A message arrived on ``conn``; the run's task processes it."""
        self._put(("message", conn, msg))

    async def on_message(self, conn: str, msg: Message) -> None:
        """A message arrived on ``conn``; processed right here when the engine is idle."""
        self._pending.append(("message", conn, msg))
        if self._busy:
            return  # whoever is busy feeds it next
        await self._step(inline=True)
        wake = self.engine.wake_at
        if self._closes or self.engine.done or (
                wake is not None and (self._armed is None or wake < self._armed)):
            self._wake_run()

    def opened(self, conn: str, handshake: Handshake, wire: Wire | None) -> None:
        """A client-side handshake ended (``wire`` None when no connection came of it)."""
        self._put(("opened", conn, handshake, wire))

    def expect_wire(self, conn: str) -> None:
        """The engine has accepted ``conn`` but its WebSocket is not ready yet: hold what
        the engine sends on it until :meth:`attach`."""
        self._awaited.add(conn)

    def attach(self, conn: str, wire: Wire, read: bool = True) -> None:
        """A server-side connection is open (the engine has accepted it). ``read`` False:
        the wire already reads, into :meth:`on_message` (the mock server read the first
        messages itself to choose the run)."""
        self._put(("attach", conn, wire, read))

    def attach_failed(self, conn: str, reason: str) -> None:
        """The WebSocket for an accepted ``conn`` never came up."""
        self._awaited.discard(conn)
        self._held = [a for a in self._held if a.conn != conn]
        self.deliver(conn, Message.drop(reason))

    def poke(self) -> None:
        """Make the run's task poll the engine (something changed outside the inputs)."""
        self._put(("poke",))

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> Result:
        """Drive the run to its end; the connections are finished when this returns."""
        engine = self.engine
        try:
            while True:
                await self._step()
                if engine.done and not self._busy:
                    break
                await self._wait()
        except asyncio.CancelledError:
            engine.abort("the run was interrupted", self._loop.time())
            await self._perform(engine.poll(self._loop.time()), grace=0.2)
            raise
        return engine.result

    async def _step(self, inline: bool = False) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            self._feed()
            actions = self.engine.poll(self._loop.time(), BUDGET)
            if self._held and not self._awaited:
                actions, self._held = self._held + actions, []
            await self._perform(actions, inline=inline)
            if not inline and self._closes:
                closes, self._closes = self._closes, []
                await self._perform(closes)
        finally:
            self._busy = False

    def _feed(self) -> None:
        engine, now = self.engine, self._loop.time()
        while self._pending:
            item = self._pending.popleft()
            kind = item[0]
            if kind == "message":
                engine.receive(item[1], item[2], now)
            elif kind == "opened":
                _, conn, handshake, wire = item
                if wire is not None:
                    self.wires[conn] = wire
                    wire.start_reading(self.on_message)
                engine.opened(conn, handshake, now)
            elif kind == "attach":
                _, conn, wire, read = item
                self._awaited.discard(conn)
                self.wires[conn] = wire
                if read:
                    wire.start_reading(self.on_message)

    async def _wait(self) -> None:
        if self._pending or self._closes:
            return
        loop, wake = self._loop, self.engine.wake_at
        fut = self._waiter = loop.create_future()
        handle = None
        if wake is not None:
            handle = loop.call_at(wake - SPIN, _wake, fut)
        self._armed = wake
        try:
            await fut
        finally:
            self._waiter = self._armed = None
            if handle is not None:
                handle.cancel()
        if wake is not None and not self._pending and self.engine.wake_at == wake:
            _spin_until(loop, wake)

    async def _perform(self, actions: list, grace: float | None = None,
                       inline: bool = False) -> None:
        closes: list[Awaitable] = []
        for action in actions:
            if isinstance(action, Send):
                await self._send(action)
            elif isinstance(action, Open):
                if self.opener is not None:
                    self.opener(action)
            elif isinstance(action, Close):
                if inline:
                    self._closes.append(action)
                    continue
                wire = self.wires.get(action.conn)
                if wire is not None:
                    kw = {} if grace is None else {"grace": grace}
                    closes.append(wire.finish(action.code, action.reason, **kw))
        if closes:
            await asyncio.gather(*closes)

    async def _send(self, action: Send) -> None:
        wire = self.wires.get(action.conn)
        if wire is None and action.conn in self._awaited:
            self._held.append(action)
            return
        try:
            if wire is None:
                raise ConnectionError("the connection is not open")
            await wire.send(action.message)
        except (ConnectionError, RuntimeError, OSError) as exc:
            if not self.engine.done:  # the rest of a batch after a failed send fails too
                self.engine.send_failed(action.conn, str(exc) or type(exc).__name__,
                                        self._loop.time())


def _wake(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _spin_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    """Busy-wait the last sub-millisecond before ``when`` (bounded by SPIN), for recorded
    timing's precision; asyncio's own wait rounds to whole milliseconds."""
    while loop.time() < when:
        time.sleep(0)
