"""The recording proxy's fast path: both legs' sockets driven frame by frame, no aiohttp in
between once the handshake is done.

When neither leg negotiated an extension, every frame can go on as it came: a client's frames
are masked as the upstream wants them, an upstream's are not, as the client wants them. So a
:class:`FastLink` reads each leg's bytes with a :class:`~wsreplay.frames.FrameReader` (checking
them as a receiver must), hands what they hold to the recorder, and writes the *same bytes* to
the other leg: fragment boundaries and masks included, nothing decoded and re-encoded, no task
or future per message. The promise of the slow path holds: a message is in the file before
the frame that completes it is forwarded (a write bigger than the writer thread's threshold
holds that leg's reading until it is done).

Closing follows the slow path (:mod:`wsreplay.proxy`) exactly: a close frame is forwarded and
its answer awaited (``close_timeout``); a drop or a protocol error ends the other leg with 1011
and the recording says what happened; ``shutdown`` closes both legs with 1001. A leg is done
when a close frame went each way, or its TCP connection ended; the link when both are.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from .frames import CLOSE, FrameReader
from .model import Side
from .recorder import BadText, ConnectionRecord

__all__ = ["FastLink"]


def _who(side: Side) -> str:
    return "client" if side is Side.CLIENT else "upstream"


def _close_frame(code: int, reason: str, masked: bool) -> bytes:
    """A close frame from the proxy itself: masked (with a zero key, which RFC 6455 allows and
    which leaves the payload as it is) toward the upstream, plain toward the client."""
    payload = code.to_bytes(2, "big") + reason.encode("utf-8")[:123]
    if masked:
        return bytes((0x88, 0x80 | len(payload))) + b"\0\0\0\0" + payload
    return bytes((0x88, len(payload))) + payload


class _Leg(asyncio.Protocol):
    """The protocol of one leg's transport once the link has taken it over. ``inner`` is the
    protocol it replaced (aiohttp's), told when the connection is lost so aiohttp can finish
    the request it was serving."""

    def __init__(self, link: "FastLink", side: Side, transport, inner=None):
        self.link, self.side, self.transport, self.inner = link, side, transport, inner

    def data_received(self, data: bytes) -> None:
        self.link.received(self.side, data)

    def eof_received(self) -> None:
        return None  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: BaseException | None) -> None:
        self.link.lost(self.side)
        inner, self.inner = self.inner, None
        if inner is not None:
            inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.link.pause(self.side.other)

    def resume_writing(self) -> None:
        self.link.resume(self.side.other)


class FastLink:
    """One proxied connection on the fast path. Make it, hand each leg's transport to
    :meth:`attach` (with any bytes that came before), then :meth:`start`; ``await run()``
    returns when both legs are done. ``release`` frees the upstream leg at the end."""

    def __init__(self, record: ConnectionRecord, max_size: int, close_timeout: float,
                 release: Callable[[], None]):
        self.record, self.close_timeout, self._release = record, close_timeout, release
        self.readers = {Side.CLIENT: FrameReader(True, max_size),
                        Side.SERVER: FrameReader(False, max_size)}
        self.transports: dict[Side, asyncio.Transport | None] = {s: None for s in Side}
        self.legs: dict[Side, _Leg] = {}
        self.alive = {s: True for s in Side}
        self.got_close = {s: False for s in Side}  # a close frame came from this leg
        self.sent_close = {s: False for s in Side}  # a close frame went to this leg
        self.passed = {s: False for s in Side}  # ...and it was the other leg's, forwarded
        self.held: dict[Side, list[bytes] | None] = {s: [] for s in Side}  # not started yet
        self.paused = {s: 0 for s in Side}
        self.timers: dict[Side, asyncio.TimerHandle] = {}
        self.over = False  # the conversation has ended: record nothing more
        self.how = ""
        self.finished = asyncio.Event()
        self._ended: set[Side] = set()
        self._loop = asyncio.get_running_loop()

    # --- set-up ------------------------------------------------------------------------

    def attach(self, side: Side, transport, inner=None, early: bytes = b"",
               ended: bool = False) -> None:
        """Take ``transport`` over for ``side``'s leg; ``early``: bytes read before;
        ``ended``: the connection is known to be over (``transport`` may then be None)."""
        if early:
            self.held[side].append(early)
        if transport is None or ended or transport.is_closing():
            self._ended.add(side)  # dealt with at start(), after the early bytes
            return
        leg = self.legs[side] = _Leg(self, side, transport, inner)
        self.transports[side] = transport
        transport.set_protocol(leg)
        if not transport.is_reading():  # aiohttp stops reading what nobody drains yet
            transport.resume_reading()

    def start(self) -> None:
        """Both legs are attached and the client has its 101: forward from now on."""
        for side in Side:
            self._unhold(side)
        for side in Side:
            if side in self._ended:
                self.lost(side)

    async def run(self) -> None:
        try:
            await self.finished.wait()
        finally:
            if not self.finished.is_set():  # cancelled (the server is going away)
                for side in Side:
                    self._drop_leg(side)
                self._finish()

    # --- bytes in ----------------------------------------------------------------------

    def received(self, side: Side, data: bytes) -> None:
        held = self.held[side]
        if held is not None:  # a write in progress (or not started): keep the order
            held.append(data)
            return
        reader = self.readers[side]
        chunk, items = reader.feed(data)
        if items or reader.error:
            self._handle(side, chunk, items)

    def _handle(self, side: Side, chunk: bytes, items: list) -> None:
        """Record what ``items`` hold and forward their bytes; then a close or an error."""
        batch, ends, last = [], [], 0
        for opcode, payload, end in items:
            if opcode == CLOSE:
                self._commit(side, batch, ends, chunk, last, lambda: self._closed(
                    side, payload[0], payload[1], chunk[last:end]))
                return
            if opcode:  # CONT: a fragment to forward, nothing to record yet
                batch.append((opcode, payload))
                ends.append(end)
            last = end
        error = self.readers[side].error
        then = (lambda: self._broke(side, *error)) if error else None
        self._commit(side, batch, ends, chunk, last, then)

    def _commit(self, side: Side, batch: list, ends: list, chunk: bytes, end: int,
                then: Callable[[], None] | None) -> None:
        """Record ``batch``, then forward ``chunk[:end]``, then ``then()``."""
        pending = None
        if batch and not self.over:
            try:
                pending = self.record.messages(side, batch)
            except BadText as bad:  # the messages before it are recorded (or being)
                end = ends[bad.index - 1] if bad.index else 0
                pending = bad.pending
                then = lambda: self._broke(side, 1007, "invalid UTF-8")
        if pending is None:
            self._send(side.other, chunk[:end] if end != len(chunk) else chunk)
            if then is not None:
                then()
            return
        self.held[side] = []  # big: written by the writer thread; forward when it is done
        self.pause(side)

        def written(_):
            self._send(side.other, chunk[:end])
            if then is not None:
                then()
            self.resume(side)
            self._unhold(side)
        pending.add_done_callback(written)

    def _unhold(self, side: Side) -> None:
        held, self.held[side] = self.held[side] or [], None
        while held:
            self.received(side, held.pop(0))
            if self.held[side] is not None:  # held again by a big write: the rest waits
                self.held[side][:0] = held
                return

    # --- bytes out ---------------------------------------------------------------------

    def _open(self, side: Side) -> bool:
        return self.alive[side] and side not in self._ended

    def _send(self, side: Side, data: bytes) -> None:
        """Write to ``side``'s leg, unless it is gone or has been sent a close frame."""
        if data and self._open(side) and not self.sent_close[side]:
            self.transports[side].write(data)

    def _send_close(self, side: Side, frame: bytes, passed: bool) -> None:
        if self._open(side) and not self.sent_close[side]:
            self.transports[side].write(frame)
            self.sent_close[side], self.passed[side] = True, passed
            if not self.got_close[side]:
                self.timers[side] = self._loop.call_later(self.close_timeout,
                                                          self._no_answer, side)

    def pause(self, side: Side) -> None:
        """Stop reading ``side``'s leg (the other one's buffer is full, or a write is on)."""
        self.paused[side] += 1
        transport = self.transports[side]
        if self.paused[side] == 1 and transport is not None and not transport.is_closing():
            transport.pause_reading()

    def resume(self, side: Side) -> None:
        self.paused[side] -= 1
        transport = self.transports[side]
        if not self.paused[side] and transport is not None and not transport.is_closing():
            transport.resume_reading()

    # --- closing -----------------------------------------------------------------------

    def _closed(self, side: Side, code: int | None, reason: str, frame: bytes) -> None:
        """``side`` sent a close frame (its bytes: ``frame``)."""
        if not self.over:
            self.record.close(side, code, reason)
        self.got_close[side] = True
        other = side.other
        if self.sent_close[side]:  # an answer: the close it answers came from the other leg?
            if self.passed[side]:
                self._send_close(other, frame, True)
            self._done(side)
            if self.got_close[other]:
                self._done(other)
        else:
            self.how = self.how or f"{_who(side)} closed first"
            self._send_close(other, frame, True)
            if not self._open(other):  # nobody to answer it
                self._done(side)

    def _broke(self, side: Side, code: int, why: str) -> None:
        """``side`` broke the protocol: its leg is failed with ``code``, the other one gets
        1011; the recording says so."""
        reason = "invalid UTF-8" if code == 1007 else why[:100]
        other = side.other
        if self.sent_close[side]:  # its close frame is out already: no second one, hang up
            if not self.over:
                self.record.note(f"the {_who(side)} broke the protocol ({why}) instead of "
                                 f"answering the close frame: its connection was ended")
                self.how = self.how or f"error ({_who(side)})"
            self.over = True
            self.readers[side].closed = True
            self._done(side)
            if self.got_close[other]:
                self._done(other)
            return
        if not self.over:
            self.record.note(f"the {_who(side)} broke the protocol ({why}): its leg closed "
                             f"with {code}, the {_who(other)}'s with 1011")
            self.record.close(other, code, reason)
            self.how = self.how or f"error ({_who(side)})"
        self.over = True
        self._send_close(side, _close_frame(code, reason, side is Side.SERVER), False)
        self._stop_reading(side)
        if not self.sent_close[other]:
            self._send_close(other, _close_frame(1011, f"{_who(side)} error",
                                                 other is Side.SERVER), False)
        elif self.got_close[other]:
            self._done(other)

    def _stop_reading(self, side: Side) -> None:
        """Nothing more is read from ``side`` (its stream cannot be trusted): it is told we
        are done writing and gets ``close_timeout`` to hang up."""
        self.readers[side].closed = True
        transport = self.transports[side]
        if self._open(side) and transport.can_write_eof():
            transport.write_eof()

    def lost(self, side: Side) -> None:
        """``side``'s TCP connection ended."""
        if not self.alive[side]:
            return
        self.alive[side] = False
        self._cancel_timer(side)
        other = side.other
        if not self.got_close[side]:
            self._end_drop(side, "dropped:")
            if self.got_close[other]:
                self._done(other)  # it waited for an answer that will not come
            else:
                self._send_close(other, _close_frame(1011, f"{_who(side)} drop",
                                                     other is Side.SERVER), False)
        if not any(self.alive.values()):
            self._finish()

    def _no_answer(self, side: Side) -> None:
        self.timers.pop(side, None)
        if self.alive[side] and not self.got_close[side]:
            self._end_drop(side, "no close answer from")
            self._drop_leg(side)

    def _end_drop(self, side: Side, how: str) -> None:
        if not self.over:
            self.record.drop(side)
            self.how = self.how or f"{how} {_who(side)}"
        self.over = True

    def _done(self, side: Side) -> None:
        """A close frame went each way on ``side``'s leg: hang up (after what is queued)."""
        self._cancel_timer(side)
        transport = self.transports[side]
        if self._open(side):
            transport.close()
        elif side in self._ended:
            self.lost(side)

    def _drop_leg(self, side: Side) -> None:
        if self._open(side):
            self.transports[side].abort()
        self.lost(side)

    def _cancel_timer(self, side: Side) -> None:
        timer = self.timers.pop(side, None)
        if timer is not None:
            timer.cancel()

    def _finish(self) -> None:
        if self.finished.is_set():
            return
        for side in Side:
            self._cancel_timer(side)
        self.record.end()
        self._release()
        self.finished.set()

    async def shutdown(self) -> None:
        """Close both legs with 1001 (the proxy is stopping) and note it in the recording; a
        connection already closing gets ``close_timeout`` to finish first."""
        if any(self.got_close.values()) and not self.over:
            try:
                await asyncio.wait_for(self.finished.wait(), self.close_timeout)
                return
            except asyncio.TimeoutError:
                pass
        if not self.over:
            self.record.note("recording stopped: both legs closed with 1001")
            self.over = True
            self.how = "stopped (1001)"
        for side in Side:
            self._send_close(side, _close_frame(1001, "wsreplay record stopped",
                                                side is Side.SERVER), False)
        try:
            await asyncio.wait_for(self.finished.wait(), self.close_timeout)
        except asyncio.TimeoutError:
            for side in Side:
                self._drop_leg(side)
