"""What travels on the wire, as the engine and the shells share it.

A :class:`Message` is one received (or to-be-sent) WebSocket message: bytes plus a kind,
as mitmproxy stores them, so a binary frame can never be confused with text (``.text``
raises for anything but a text message). :class:`Handshake` is how an opening handshake
went (seen by the client), :class:`Request` what a client asked for (seen by the server).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Kind(enum.Enum):
    TEXT = "text"
    BINARY = "binary"
    PING = "ping"
    PONG = "pong"
    CLOSE = "close"
    DROP = "drop"  # the connection ended with no close frame


@dataclass(frozen=True, slots=True)
class Message:
    """One message: ``kind`` and ``data`` (raw bytes; UTF-8 for text). A close carries
    ``code`` (None: no status code) and ``reason``; a drop may carry ``reason`` saying why."""

    kind: Kind
    data: bytes = b""
    code: int | None = None
    reason: str | None = None

    @property
    def text(self) -> str:
        """The message's text; raises ``TypeError`` for anything but a text message and
        ``UnicodeDecodeError`` for invalid UTF-8."""
        if self.kind is not Kind.TEXT:
            raise TypeError(f"a {self.kind.value} message has no text")
        return self.data.decode("utf-8")

    @property
    def is_data(self) -> bool:
        return self.kind in (Kind.TEXT, Kind.BINARY)

    @classmethod
    def of_text(cls, text: str) -> "Message":
        return cls(Kind.TEXT, text.encode("utf-8"))

    @classmethod
    def of_binary(cls, data: bytes) -> "Message":
        return cls(Kind.BINARY, bytes(data))

    @classmethod
    def ping(cls, data: bytes = b"") -> "Message":
        return cls(Kind.PING, bytes(data))

    @classmethod
    def pong(cls, data: bytes = b"") -> "Message":
        return cls(Kind.PONG, bytes(data))

    @classmethod
    def close(cls, code: int | None = None, reason: str | None = None) -> "Message":
        return cls(Kind.CLOSE, b"", code, reason)

    @classmethod
    def drop(cls, reason: str | None = None) -> "Message":
        return cls(Kind.DROP, b"", None, reason)

    def close_payload(self) -> bytes:
        """The payload of a close frame: the code as two bytes, then the UTF-8 reason."""
        if self.code is None:
            return b""
        return self.code.to_bytes(2, "big") + (self.reason or "").encode("utf-8")

    def short(self, limit: int = 60) -> str:
        """A one-line description for logs and progress output."""
        if self.kind is Kind.TEXT:
            body = self.data.decode("utf-8", "replace")
        elif self.kind is Kind.CLOSE:
            body = " ".join(str(x) for x in (self.code, self.reason) if x not in (None, ""))
        elif self.kind is Kind.DROP:
            body = self.reason or ""
        else:
            body = self.data.hex()
        if len(body) > limit:
            body = body[: limit - 1] + "…"
        return f"{self.kind.value} {body}".rstrip()


def _headers() -> tuple[tuple[str, str], ...]:
    return ()


@dataclass(frozen=True, slots=True)
class Handshake:
    """How a client's opening handshake went.

    ``status`` 101 for an upgrade, the HTTP status of a refusal, 0 when no HTTP answer
    came at all (``error`` says why). ``protocol`` is the chosen subprotocol or None;
    ``compress`` whether permessage-deflate was agreed.
    """

    status: int
    protocol: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default_factory=_headers)
    compress: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """What a client asked for in its opening handshake (seen by the mock server).

    ``path`` is the URL path (percent-decoded), ``query`` the decoded query pairs in order,
    ``headers`` every request header, ``protocols`` the offered subprotocols in order.
    """

    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    protocols: tuple[str, ...] = ()
    compress: bool = False

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        low = name.lower()
        for key, value in self.headers:
            if key.lower() == low:
                return value
        return None
