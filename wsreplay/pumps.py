"""The recording proxy's aiohttp path: message by message through aiohttp's WebSocket
objects, one pump task per direction. The proxy uses it only when the fast path
(:mod:`wsreplay.relay`) cannot take the sockets over (an aiohttp without what
:mod:`wsreplay.takeover` borrows); each extension is then negotiated per leg, and messages are
re-framed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import WSMsgType, web
from aiohttp.http_websocket import WebSocketError

from .frames import valid_close_code
from .messages import Message
from .model import Side
from .payloads import BadText
from .recorder import ConnectionRecord
from .relay import Stopping
from .takeover import queued, release_upstream
from .wire import failure_close

if TYPE_CHECKING:
    from .proxy import RecordingProxy

__all__ = ["PumpLink"]

log = logging.getLogger("wsreplay.proxy")

MAX_BATCH = 256
_DATA = (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING, WSMsgType.PONG)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _who(side: Side) -> str:
    return "client" if side is Side.CLIENT else "upstream"


class PumpLink(Stopping):
    """One proxied WebSocket connection: the client leg, the upstream leg and their record.

    Life: two pumps run until one leg ends. A close frame is forwarded and the other pump goes
    on until the answering close (or ``close_timeout``); a drop, a protocol error or a failure
    ends the other leg at once with 1011; ``shutdown`` closes both legs with 1001.
    """

    def __init__(self, proxy: "RecordingProxy", request: web.Request,
                 client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse,
                 record: ConnectionRecord):
        self.proxy, self.request, self.record = proxy, request, record
        self.legs = {Side.CLIENT: client, Side.SERVER: upstream}
        self.over = False  # the conversation has ended: record nothing more
        self.closing = False  # a close frame has been forwarded
        self.pumps: dict[Side, asyncio.Task] = {}  # the task reading each side's leg
        self.stopping = False  # the proxy closes both legs itself (1001)
        self.how = ""
        self.finished = asyncio.Event()

    async def run(self) -> None:
        timeout = self.proxy.config.close_timeout
        pumps = self.pumps = {side: asyncio.create_task(self._pump(side)) for side in Side}
        try:
            done, _ = await asyncio.wait(pumps.values(), return_when=asyncio.FIRST_COMPLETED)
            first = done.pop()
            side = next(s for s, task in pumps.items() if task is first)
            how = "stopped" if first.cancelled() else first.result()[1]
            other = pumps[side.other]
            if how in ("close", "stopped"):
                self.how = self.how or f"{_who(side)} closed first"
                done, _ = await asyncio.wait([other], timeout=timeout)
                if not done:  # no answering close: that side dropped out
                    self._end_drop(side.other, "no close answer from")
            else:
                # the leg that failed is ``side``'s, or the other one when sending to it failed
                dead = side.other if how == "gone" else side
                self.over = True
                self.how = self.how or f"{how} ({_who(dead)})"
                await self._close_leg(dead.other, 1011, f"{_who(dead)} {how}")
                if how == "failed":
                    await self._close_leg(dead, 1011, "wsreplay record failed")
                await asyncio.wait([other], timeout=timeout)
        finally:
            for task in pumps.values():
                task.cancel()
            await asyncio.gather(*pumps.values(), return_exceptions=True)
            await self._teardown()
            self.record.end()
            self.finished.set()

    async def _pump(self, side: Side) -> tuple[Side, str]:
        """Forward ``side``'s messages to the other leg until ``side``'s leg ends; returns how
        it ended: close, drop, error (protocol), gone (the other leg), stopped or failed."""
        src, dst = self.legs[side], self.legs[side.other]
        receive, send, waiting = src.receive, dst.send_frame, queued(src)
        record = self.record
        try:
            msg = await receive()
            while msg.type in _DATA:
                batch, msg = [msg], None
                while waiting() and len(batch) < MAX_BATCH and not self.stopping:
                    msg = await receive()  # already parsed: returns without waiting
                    if msg.type not in _DATA:
                        break
                    batch.append(msg)
                    msg = None
                try:
                    pending = record.messages(side, batch)
                except BadText as bad:
                    if bad.pending is not None:
                        await bad.pending
                    await self._forward(send, batch[: bad.index])
                    return side, await self._bad_text(side)
                if pending is not None:  # a big batch, being written in the background
                    await pending
                if not await self._forward(send, batch):
                    self._end_drop(side.other, "dropped:")
                    return side, "gone"
                if msg is None:
                    if self.stopping:  # a receive() while aiohttp's client closes sends 1000
                        return side, "stopped"
                    msg = await receive()
            return side, await self._ended(side, msg)
        except asyncio.CancelledError:
            raise
        except Exception:  # the recording failed (disk full...) or a bug: end both legs
            log.exception("%s: proxying failed", record.name)
            self.over = True
            return side, "failed"

    @staticmethod
    async def _forward(send, batch) -> bool:
        try:
            for msg in batch:
                await send(msg.data, msg.type)
        except ConnectionError:
            return False
        return True

    async def _ended(self, side: Side, msg) -> str:
        if msg.type is WSMsgType.CLOSE:
            code, reason = msg.data or 0, msg.extra or ""
            if code and not valid_close_code(code):  # 1004-1006, 1015, <1000, >=5000
                return await self._broke(side, 1002, f"close code {code}", close=True)
            if not self.over:
                self.record.close(side, code, reason)
            self.closing = True
            frame = Message.close(code or None, reason).close_payload()
            try:
                await self.legs[side.other].send_frame(frame, WSMsgType.CLOSE)
            except ConnectionError:
                self._end_drop(side.other, "dropped:")
            return "close"
        if msg.type is WSMsgType.CLOSING:
            return "stopped"
        error = msg.data if msg.type is WSMsgType.ERROR else None
        if isinstance(error, WebSocketError):  # aiohttp has closed this leg with error.code
            return await self._broke(side, error.code, str(error) or "protocol error")
        failure = failure_close(error)
        if failure:  # unreadable data (corrupt compression...): the leg is failed with its code
            return await self._broke(side, failure[0], f"{type(error).__name__}: {error}")
        self._end_drop(side, "dropped:")
        return "drop"

    async def _bad_text(self, side: Side) -> str:
        return await self._broke(side, 1007, "invalid UTF-8", close=True)

    async def _broke(self, side: Side, code: int, why: str, close: bool = False) -> str:
        """``side`` broke the protocol: its leg is closed with ``code`` (by aiohttp already,
        unless ``close``), the other one gets 1011 from :meth:`run`; the recording says so."""
        if not self.over:
            other = "upstream" if side is Side.CLIENT else "client"
            self.record.note(f"the {_who(side)} broke the protocol ({_one_line(why)[:200]}): "
                             f"its leg closed with {code}, the {other}'s with 1011")
            self.record.close(side.other, code, "invalid UTF-8" if code == 1007 else "")
        self.over = True
        if close:
            await self._close_leg(side, code, "invalid UTF-8" if code == 1007 else why[:100])
        return "error"

    def _end_drop(self, side: Side, how: str) -> None:
        if not self.over:
            self.record.drop(side)
            self.how = self.how or f"{how} {_who(side)}"
        self.over = True

    async def _close_leg(self, side: Side, code: int, reason: str) -> None:
        # The pump reading this leg stops first: aiohttp's close() and a receive() racing on
        # one connection can send a second close frame (1000) of their own.
        pump = self.pumps.get(side)
        if pump is not None and pump is not asyncio.current_task() and not pump.done():
            pump.cancel()
            await asyncio.wait([pump])
        ws = self.legs[side]
        try:
            await asyncio.wait_for(ws.close(code=code, message=reason.encode()[:123]),
                                   self.proxy.config.close_timeout)
        except (Exception, asyncio.TimeoutError):  # a dead leg: nothing more to tell it
            pass

    async def shutdown(self) -> None:
        """Close both legs with 1001 (the proxy is stopping) and note it in the recording; a
        connection already closing gets ``close_timeout`` to finish first."""
        if self.closing and not self.over \
                and await self.finished_within(self.proxy.config.close_timeout):
            return
        self.note_stopped()
        self.stopping = True
        await asyncio.gather(*(self._close_leg(side, 1001, "wsreplay record stopped")
                               for side in Side))

    async def _teardown(self) -> None:
        transport = self.request.transport
        if transport is not None and not transport.is_closing():
            transport.close()
        await release_upstream(self.legs[Side.SERVER])
