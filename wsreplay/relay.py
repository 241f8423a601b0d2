"""The recording proxy's fast path: both legs' sockets driven frame by frame, no aiohttp in
between once the handshake is done.

The two peers agree their extensions end to end (the proxy passes a permessage-deflate offer
and its answer through, and nothing else), so every frame can go on as it came: a client's
frames are masked as the upstream wants them, an upstream's are not, as the client wants
them, and compressed ones are compressed in the context the receiver keeps. So a
:class:`FastLink` reads each leg's bytes with a :class:`~wsreplay.frames.FrameReader` (checking
them as a receiver must), hands what they hold to the recorder, and writes the *same bytes* to
the other leg: fragment boundaries and masks included, nothing decoded and re-encoded, no task
or future per message. The promise of the slow path holds: a message is in the file before
the frame that completes it is forwarded. The lines of everything that arrived in one event
loop turn, on every connection, go out in one write (the sink's group commit), then the
frames are forwarded; a leg whose lines wait on a slow disk stops being read meanwhile.

Closing follows the slow path (:mod:`wsreplay.proxy`): a close frame is forwarded and its
answer awaited (``close_timeout``); a drop or a protocol error ends the other leg with 1011
and the recording says what happened; ``shutdown`` closes both legs with 1001. Unlike the
slow path, a leg that breaks the protocol after a close frame went to it is just hung up on
(no second close frame). A leg is done when a close frame went each way, or its TCP
connection ended; the link when both are.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from .frames import CLOSE, Deflate, FrameReader
from .messages import Message
from .model import Side
from .payloads import BadText
from .recorder import ConnectionRecord

__all__ = ["FastLink", "Stopping"]

BACKLOG = 1 << 20  # bytes waiting to be written beyond which a leg's reading pauses


def _close_frame(code: int, reason: str, masked: bool) -> bytes:
    """A close frame from the proxy itself: masked (with a zero key, which RFC 6455 allows and
    which leaves the payload as it is) toward the upstream, plain toward the client."""
    payload = Message.close(code, reason).close_payload()[:125]
    if masked:
        return bytes((0x88, 0x80 | len(payload))) + b"\0\0\0\0" + payload
    return bytes((0x88, len(payload))) + payload


class Stopping:
    """How a link (this fast one, or :class:`wsreplay.pumps.PumpLink`) meets the proxy
    stopping: one already closing gets ``close_timeout`` to finish on its own; the others'
    recordings say both legs were closed with 1001. Needs ``record``, ``over``, ``how`` and
    the ``finished`` event."""

    async def finished_within(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.finished.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def note_stopped(self) -> None:
        if not self.over:
            self.record.note("recording stopped: both legs closed with 1001")
            self.over = True
            self.how = "stopped (1001)"


class _Leg(asyncio.Protocol):
    """One leg: the protocol of its transport once the link has taken it over, and its
    state. ``inner`` is the protocol it replaced (aiohttp's), told when the connection is
    lost so aiohttp can finish the request it was serving."""

    def __init__(self, link: "FastLink", side: Side, reader: FrameReader):
        self.link, self.side, self.reader = link, side, reader
        self.who = "client" if side is Side.CLIENT else "upstream"
        self.peer: _Leg = self
        self.transport = None
        self.inner = None
        self.alive = True  # its TCP connection is open
        self.ended = False  # known over before the link started (no transport to use)
        self.got_close = False  # a close frame came from it
        self.sent_close = False  # a close frame went to it...
        self.passed = False  # ...and it was the peer's, forwarded
        self.held: list[bytes] | None = []  # what it sent before start()
        self.paused = 0
        self.timer: asyncio.TimerHandle | None = None

    # --- the transport's callbacks -------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.held is not None:
            self.held.append(data)
            return
        chunk, items = self.reader.feed(data)
        if items or self.reader.error:
            self.link.handle(self, chunk, items)

    def eof_received(self) -> None:
        return None  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: BaseException | None) -> None:
        self.link.lost(self)
        inner, self.inner = self.inner, None
        if inner is not None:
            inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.peer.pause()

    def resume_writing(self) -> None:
        self.peer.resume()

    # --- what the link does with it ------------------------------------------------------

    @property
    def open(self) -> bool:
        return self.alive and not self.ended

    @property
    def may_send(self) -> bool:
        """Whether frames may still go to this leg (it is there, and no close frame went)."""
        return self.open and not self.sent_close

    def write(self, data: bytes) -> None:
        """Put ``data`` on this leg's wire, if it is still there (called once what came
        before is in the file: see :meth:`FastLink._commit`)."""
        if data and self.open:
            self.transport.write(data)

    def write_eof(self) -> None:
        if self.open and self.transport.can_write_eof():
            self.transport.write_eof()

    def hang_up(self) -> None:
        if self.open:
            self.transport.close()
        elif self.ended:
            self.link.lost(self)

    def pause(self) -> None:
        """Stop reading this leg (the peer's buffer is full, or the disk is behind)."""
        self.paused += 1
        if self.paused == 1 and self.open and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume(self) -> None:
        self.paused -= 1
        if not self.paused and self.open and not self.transport.is_closing():
            self.transport.resume_reading()

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class FastLink(Stopping):
    """One proxied connection on the fast path. Make it, hand each leg's transport to
    :meth:`attach` (with any bytes that came before), then :meth:`start`; ``await run()``
    returns when both legs are done. ``release`` frees the upstream leg at the end."""

    def __init__(self, record: ConnectionRecord, max_size: int, close_timeout: float,
                 release: Callable[[], None], deflate: Deflate | None = None):
        self.record, self.close_timeout, self._release = record, close_timeout, release
        self.sink = record.sink
        client = _Leg(self, Side.CLIENT, FrameReader(True, max_size, deflate))
        upstream = _Leg(self, Side.SERVER, FrameReader(False, max_size, deflate))
        client.peer, upstream.peer = upstream, client
        self.legs = {Side.CLIENT: client, Side.SERVER: upstream}
        self.over = False  # the conversation has ended: record nothing more
        self.how = ""
        self.finished = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    # --- set-up ------------------------------------------------------------------------

    def attach(self, side: Side, transport, inner=None, early: bytes = b"",
               ended: bool = False) -> None:
        """Take ``transport`` over for ``side``'s leg; ``early``: bytes read before;
        ``ended``: the connection is known to be over (``transport`` may then be None)."""
        leg = self.legs[side]
        if early:
            leg.held.append(early)
        if transport is None or ended or transport.is_closing():
            leg.ended = True  # dealt with at start(), after the early bytes
            return
        leg.transport, leg.inner = transport, inner
        transport.set_protocol(leg)
        if not transport.is_reading():  # aiohttp stops reading what nobody drains yet
            transport.resume_reading()

    def start(self) -> None:
        """Both legs are attached and the client has its 101: forward from now on."""
        for leg in self.legs.values():
            held, leg.held = leg.held, None
            for data in held:
                leg.data_received(data)
        for leg in self.legs.values():
            if leg.ended:
                self.lost(leg)

    async def run(self) -> None:
        try:
            await self.finished.wait()
        finally:
            if not self.finished.is_set():  # cancelled (the server is going away)
                for leg in self.legs.values():
                    self._drop(leg)
                self._finish()

    # --- messages ----------------------------------------------------------------------

    def handle(self, leg: _Leg, chunk: bytes, items: list) -> None:
        """Record what ``items`` hold and forward their bytes; then a close or an error."""
        batch, ends, last = [], [], 0
        for opcode, payload, end in items:
            if opcode == CLOSE:
                frame = chunk[last:end]
                self._commit(leg, batch, ends, chunk, last,
                             lambda: self._closed(leg, payload[0], payload[1], frame))
                return
            if opcode:  # not CONT: a fragment is only forwarded, recorded with its message
                batch.append((opcode, payload))
                ends.append(end)
            last = end
        error = leg.reader.error
        self._commit(leg, batch, ends, chunk, last,
                     (lambda: self._broke(leg, *error)) if error else None)

    def _commit(self, leg: _Leg, batch: list, ends: list, chunk: bytes, end: int,
                then: Callable[[], None] | None) -> None:
        """Record ``batch``, then forward ``chunk[:end]``, then ``then()``: the lines join
        the sink's group write, the rest runs once it is done (at the end of this loop turn)."""
        sink = self.sink
        if batch and not self.over:
            sink.group = True
            try:
                self.record.messages(leg.side, batch)
            except BadText as bad:  # the messages before it are recorded
                end = ends[bad.index - 1] if bad.index else 0
                then = lambda: self._broke(leg, 1007, "invalid UTF-8")  # noqa: E731
            finally:
                sink.group = False
        # Whether the frames go on is decided now; everything the link does to a leg goes
        # through sink.after, so it happens in the order it was decided, after the write.
        if leg.peer.may_send:
            sink.after(leg.peer.write, chunk if end == len(chunk) else chunk[:end])
        if then is not None:
            sink.after(then)
        if sink.backlog > BACKLOG:  # a slow disk: stop reading this leg until it catches up
            leg.pause()
            sink.after(leg.resume)

    # --- closing -----------------------------------------------------------------------

    def _send_close(self, leg: _Leg, frame: bytes, passed: bool) -> None:
        if leg.may_send:
            self.sink.after(leg.write, frame)
            leg.sent_close, leg.passed = True, passed
            if not leg.got_close:
                leg.timer = self._loop.call_later(self.close_timeout, self._no_answer, leg)

    def _closed(self, leg: _Leg, code: int | None, reason: str, frame: bytes) -> None:
        """``leg`` sent a close frame (its bytes: ``frame``)."""
        if not self.over:
            self.record.close(leg.side, code, reason)
        leg.got_close = True
        peer = leg.peer
        if leg.sent_close:  # an answer: pass it on if the close it answers was the peer's
            if leg.passed:
                self._send_close(peer, frame, True)
            self._done(leg)
            if peer.got_close:
                self._done(peer)
        else:
            self.how = self.how or f"{leg.who} closed first"
            self._send_close(peer, frame, True)
            if not peer.open:  # nobody to answer it
                self._done(leg)

    def _broke(self, leg: _Leg, code: int, why: str) -> None:
        """``leg`` broke the protocol: it is failed with ``code``, the peer gets 1011; the
        recording says so (the close frame it got, recorded as coming from the peer)."""
        peer = leg.peer
        leg.reader.closed = True
        if leg.sent_close:  # its close frame is out already: no second one, hang up
            if not self.over:
                self.record.note(f"the {leg.who} broke the protocol ({why}) instead of "
                                 f"answering the close frame: its connection was ended")
                self.how = self.how or f"error ({leg.who})"
            self.over = True
            self._done(leg)
            if peer.got_close:
                self._done(peer)
            return
        reason = why[:100]
        if not self.over:
            self.record.note(f"the {leg.who} broke the protocol ({why}): its leg closed "
                             f"with {code}, the {peer.who}'s with 1011")
            self.record.close(peer.side, code, reason)
            self.how = self.how or f"error ({leg.who})"
        self.over = True
        self._send_close(leg, _close_frame(code, reason, leg.side is Side.SERVER), False)
        self.sink.after(leg.write_eof)  # done writing: it gets close_timeout to hang up
        if not peer.sent_close:
            self._send_close(peer, _close_frame(1011, f"{leg.who} error",
                                                peer.side is Side.SERVER), False)
        elif peer.got_close:
            self._done(peer)

    def lost(self, leg: _Leg) -> None:
        """``leg``'s TCP connection ended."""
        if leg.held is not None:  # not started: what it sent first comes first (start())
            leg.ended = True
            return
        if not leg.alive:
            return
        leg.alive = False
        leg.cancel_timer()
        peer = leg.peer
        if not leg.got_close:
            self._end_drop(leg, "dropped:")
            if peer.got_close:
                self._done(peer)  # it waited for an answer that will not come
            else:
                self._send_close(peer, _close_frame(1011, f"{leg.who} drop",
                                                    peer.side is Side.SERVER), False)
        if not peer.alive:
            self._finish()

    def _no_answer(self, leg: _Leg) -> None:
        leg.timer = None
        if leg.alive and not leg.got_close:
            self._end_drop(leg, "no close answer from")
            self._drop(leg)

    def _end_drop(self, leg: _Leg, how: str) -> None:
        if not self.over:
            self.record.drop(leg.side)
            self.how = self.how or f"{how} {leg.who}"
        self.over = True

    def _done(self, leg: _Leg) -> None:
        """A close frame went each way on ``leg``: hang up (after what is queued)."""
        leg.cancel_timer()
        self.sink.after(leg.hang_up)

    def _drop(self, leg: _Leg) -> None:
        if leg.open:
            leg.transport.abort()
        self.lost(leg)

    def _finish(self) -> None:
        if self.finished.is_set():
            return
        for leg in self.legs.values():
            leg.cancel_timer()
        self.record.end()
        self._release()
        self.finished.set()

    async def shutdown(self) -> None:
        """Close both legs with 1001 (the proxy is stopping) and note it in the recording; a
        connection already closing gets ``close_timeout`` to finish first."""
        legs = self.legs.values()
        closing = any(leg.got_close for leg in legs) and not self.over
        if closing and await self.finished_within(self.close_timeout):
            return
        self.note_stopped()
        for leg in legs:
            self._send_close(leg, _close_frame(1001, "wsreplay record stopped",
                                               leg.side is Side.SERVER), False)
        if not await self.finished_within(self.close_timeout):
            for leg in legs:
                self._drop(leg)

