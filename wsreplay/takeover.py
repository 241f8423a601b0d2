"""What the recording proxy borrows from aiohttp's internals, one helper each, so an aiohttp
upgrade that changes them breaks here and nowhere else.

* The fast path (:mod:`wsreplay.relay`) takes both legs' sockets over once aiohttp has done
  the handshake: :class:`Capture` keeps the bytes that follow the upstream's 101 (aiohttp's
  client would feed them to its own reader), installed by the connector's protocol factory
  (:func:`capturing`); :func:`upstream_transport` and :func:`client_tail` find the sockets
  and what a client sent before its 101.
* The aiohttp path (:mod:`wsreplay.pumps`) batches what aiohttp has already parsed
  (:func:`queued`) and ends an upstream connection without another close frame
  (:func:`release_upstream`).
"""

from __future__ import annotations

import contextvars
import functools
from typing import Callable

import aiohttp
from aiohttp import web
from aiohttp.client_proto import ResponseHandler

__all__ = ["CAPTURE", "Capture", "capturing", "client_tail", "queued", "release_now",
           "release_upstream", "upstream_transport"]


def queued(ws) -> Callable[[], int]:
    """A callable giving how many parsed messages wait in ``ws``'s queue (0 when unknown)."""
    buffer = getattr(getattr(ws, "_reader", None), "_buffer", None)
    return buffer.__len__ if buffer is not None else (lambda: 0)


class Capture:
    """Stands in for aiohttp's WebSocket reader on an upstream connection the fast path will
    take over: keeps the bytes that follow the 101 (a greeting can come in the same packet)."""

    installed = False
    eof = False
    transport = None  # the upstream connection's, once installed

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.chunks.append(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.eof = True

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


CAPTURE: contextvars.ContextVar[Capture | None] = contextvars.ContextVar("wsreplay_capture",
                                                                          default=None)


class UpstreamProtocol(ResponseHandler):
    """aiohttp's client protocol, with the WebSocket reader replaced by a :class:`Capture`
    for a connection made while one is set in ``CAPTURE``."""

    def set_parser(self, parser, *args, **kwargs) -> None:
        capture = CAPTURE.get()
        if capture is not None:
            capture.installed, capture.transport, parser = True, self.transport, capture
        super().set_parser(parser, *args, **kwargs)


def capturing(connector: aiohttp.TCPConnector) -> bool:
    """Make ``connector``'s connections able to capture (aiohttp builds its protocols with
    the ``_factory`` it keeps); False when this aiohttp has no such thing: no fast path."""
    if not isinstance(getattr(connector, "_factory", None), functools.partial):
        return False
    connector._factory = functools.partial(UpstreamProtocol, *connector._factory.args,
                                           **connector._factory.keywords)
    return True


def upstream_transport(capture: Capture):
    """The upstream connection's transport (None if it is gone already)."""
    transport = capture.transport
    return None if transport is None or transport.is_closing() else transport


def client_tail(request: web.BaseRequest) -> bytes:
    """Bytes a client sent after its upgrade request without waiting for the 101 (aiohttp
    keeps them for its own WebSocket reader), taken for the fast path."""
    protocol = request.protocol
    tail = getattr(protocol, "_message_tail", b"")
    if tail:
        protocol._message_tail = b""
    return bytes(tail)


def release_now(ws: aiohttp.ClientWebSocketResponse) -> bool:
    """End the upstream TCP connection now, with no close frame; False when this aiohttp
    keeps no ``_response`` to end it through."""
    response = getattr(ws, "_response", None)
    if response is None:
        return False
    response.close()
    return True


async def release_upstream(ws: aiohttp.ClientWebSocketResponse) -> None:
    """End the upstream TCP connection without sending another close frame (aiohttp's
    close, which may send one, only when there is no other way)."""
    if not release_now(ws) and not ws.closed:
        await ws.close()
