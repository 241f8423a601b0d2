"""Recording: observed WebSocket traffic → scenario steps appended to a file.

Socket-free. The proxy (:mod:`wsreplay.proxy`) tells a :class:`Recorder` what it saw — a
handshake (:class:`Handshake`), batches of messages as ``(opcode, data, extra)`` tuples (the
shape of aiohttp's ``WSMessage``), close frames and dropped connections — and the recorder turns
them into model steps, redacts secrets into ``env`` variables, formats them with
:func:`wsreplay.writer.format_step` and appends them to the scenario file.

The file is valid at every moment (see :class:`~wsreplay.sink.Sink`): a batch becomes visible in one atomic
step, so a process killed with SIGKILL leaves a file that parses and holds every batch whose
``messages()`` call returned — and the proxy forwards a batch only after that.

Payloads become template text in :mod:`wsreplay.payloads`, the one place that escapes it.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from pybase64 import b64encode

from . import model as m
from .codecs import CODECS
from .payloads import (CODEC_MAX, HEX_MAX, BadText, codec_order, codec_payload, escape_template,
                       one_line_payload, text_payload)
from .redact import Redaction, env_name, redact_url  # noqa: F401 (Redaction, env_name: API)
from .sink import PAGE, Sink, _Unwritten
from .writer import HEADER, format_payload, format_step, format_time

# RFC 6455 opcodes, equal to aiohttp's WSMsgType values.
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 1, 2, 8, 9, 10
DATA_OPCODES = frozenset({OP_TEXT, OP_BINARY, OP_PING, OP_PONG})

# --- what the proxy saw ------------------------------------------------------------------

@dataclass(frozen=True)
class Handshake:
    """One opening handshake as the proxy saw it: the request forwarded upstream and the
    upstream's answer.

    ``url`` is the upstream URL (path and query included); ``headers`` the request headers
    forwarded (hop-by-hop ones left out); ``protocols`` the subprotocols the client offered;
    ``compress`` whether it offered permessage-deflate. ``status`` is the upstream's answer
    (101 when upgraded), ``protocol`` the subprotocol it chose, ``compressed`` whether it
    accepted permessage-deflate, ``response_headers`` its answer's headers.
    """

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    protocols: tuple[str, ...] = ()
    compress: bool = False
    status: int = 101
    protocol: str | None = None
    compressed: bool = False
    response_headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Summary:
    """Counts for the end-of-run report."""

    connections: int = 0
    messages: int = 0
    bytes: int = 0
    files: list[Path] = field(default_factory=list)
    incomplete: str = ""  # why the recording misses something ("" when it is complete)


class Recorder:
    """Turns what the proxy saw into scenario files.

    ``path`` is the file to write, or with ``split`` the stem for one file per connection
    (``rec.wsr`` → ``rec-c1.wsr``, ``rec-c2.wsr``...). ``clock`` (monotonic seconds) stamps
    events, ``wall`` (epoch seconds) the anchor comment; ``echo`` receives every text
    appended (for ``-v``). Call :meth:`connection` per handshake and :meth:`close` at the end.

    A file that cannot be created or written (folder gone read-only, disk full) never raises
    to the caller (the proxy must go on forwarding): that file is left as it was — it still
    parses — nothing more is written to it, ``on_error`` receives a one-line explanation and
    :attr:`Summary.incomplete` says why the recording is incomplete.
    """

    def __init__(self, path: Path, *, split: bool = False, redaction: Redaction = Redaction(),
                 source: str = "", clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 echo: Callable[[str], None] | None = None,
                 on_error: Callable[[str], None] | None = None):
        self.path, self.split, self.redaction = Path(path), split, redaction
        self.source, self.clock, self.wall, self.echo = source, clock, wall, echo
        self.on_error = on_error
        self.summary = Summary()
        self._sink: Sink | None = None
        self._count = 0

    def _path_for(self, conn: str | None) -> Path:
        return self.path.with_name(f"{self.path.stem}-{conn}{self.path.suffix or '.wsr'}") \
            if conn else self.path

    def _open_sink(self, conn: str | None) -> Sink:
        path = self._path_for(conn)
        t0, wall = self.clock(), self.wall()
        stamp = _dt.datetime.fromtimestamp(wall, _dt.timezone.utc).isoformat(timespec="microseconds")
        what = f" connection {conn}" if conn else ""
        source = f" from {self.source}" if self.source else ""
        sink = Sink(path, f"{HEADER}# recorded{what}{source} by wsreplay record; "
                          f"@0.000 is {stamp}\n")
        sink.t0 = t0
        sink.on_error = lambda exc: self._background_failed(sink, exc)
        self.summary.files.append(path)
        return sink

    def start(self) -> None:
        """Create the file now (it is otherwise created with the first connection), so an
        unwritable path shows at once; raises OSError. With ``split`` files come per
        connection: a file is created and removed to prove the folder takes them."""
        if not self.split:
            if self._sink is None:
                self._sink = self._open_sink(None)
            return
        probe = self.path.with_name(f".{self.path.name}.{os.getpid()}.probe")
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)

    def sink_for(self, conn: str) -> Sink:
        """The file for connection ``conn`` (the one file without ``split``)."""
        if self.split or self._sink is None:
            name = conn if self.split else None
            try:
                sink = self._open_sink(name)
            except OSError as exc:
                self._failed(self._path_for(name), exc)
                sink = _Unwritten(self._path_for(name), self.clock())
            if self.split:
                return sink
            self._sink = sink
        return self._sink

    def next_name(self) -> str:
        """The next connection name: ``c1``, ``c2``... in order of asking."""
        self._count += 1
        return f"c{self._count}"

    def connection(self, handshake: Handshake, name: str | None = None) -> "ConnectionRecord":
        """Write the ``conn`` step (with its handshake lines, and ``env`` lines for redacted
        values) and return the record the proxy reports that connection's traffic to."""
        name = name or self.next_name()
        record = ConnectionRecord(self, name, self.sink_for(name))
        record.write_connect(handshake)
        self.summary.connections += 1
        return record

    def note(self, text: str) -> None:
        """A comment line in the (single) file, e.g. for a connection that never opened."""
        if not self.split:
            self._append(self.sink_for(""), format_step(m.Comment(" " + _one_line(text))))

    def _append(self, sink: Sink, text: str | bytes, background: bool = False):
        """Append ``text`` to ``sink``; with ``background`` a future may come back to await
        before forwarding what it holds (see :meth:`Sink.submit`)."""
        if sink.broken:
            return None
        pending = None
        try:
            if background:
                pending = sink.submit(text)
            else:
                sink.append(text)
        except OSError as exc:
            sink.broken = True
            self._failed(sink.path, exc)
            return None
        if self.echo is not None:
            self.echo(text.decode("utf-8") if isinstance(text, bytes) else text)
        return pending

    def _background_failed(self, sink: Sink, exc: OSError) -> None:
        sink.broken = True
        self._failed(sink.path, exc)

    def _failed(self, path: Path, exc: OSError) -> None:
        why = f"cannot write {path}: {exc.strerror or exc}"
        self.summary.incomplete = self.summary.incomplete or why
        if self.on_error is not None:
            self.on_error(f"{why}; the recording is incomplete from here on "
                          f"(forwarding goes on)")

    def close(self, footer: bool = True) -> Summary:
        """Finish the file(s): a closing comment with the counts. Safe to call twice."""
        if self._sink is not None:
            if footer and not self._sink.broken:
                s = self.summary
                try:
                    self._sink.append(format_step(m.Comment(
                        f" end: {s.connections} connections, {s.messages} messages, "
                        f"{s.bytes} bytes")))
                except OSError as exc:
                    self._failed(self._sink.path, exc)
            self._sink.close()
            self._sink = None
        return self.summary


class ConnectionRecord:
    """The recording of one connection, named ``name``; made by :meth:`Recorder.connection`."""

    def __init__(self, recorder: Recorder, name: str, sink: Sink):
        self.recorder, self.name, self.sink = recorder, name, sink
        self.redaction = recorder.redaction
        self._redact = recorder.redaction if recorder.redaction.enabled else None
        self.messages_seen = 0
        self.closed = False
        self.codecs = CODECS  # tried in order on a binary frame; the subprotocol's first
        # what a secret becomes, by who sent it (see wsreplay.redact.Namer)
        self._client = self.secret
        self._server = lambda base, value: self.secret(base, value, "#string")

    def _now(self) -> int:
        return max(0, round((self.recorder.clock() - self.sink.t0) * 1_000_000))

    def secret(self, base: str, value: str, marker: str | None = None) -> str:
        """What stands for the secret ``value`` between ``{{`` and ``}}``: its variable (the
        same value keeps the same name in a file; a new ``env`` line goes out with the next
        append), or, for a value the server sends first (``marker`` given), a capture."""
        return self.sink.names.placeholder(self.name, base, value, marker)

    def _emit(self, steps: list[str], background: bool = False):
        return self._emit_bytes([step.encode("utf-8") for step in steps], background)

    def _emit_bytes(self, steps: list[bytes], background: bool = False,
                    fenced: bool | None = None):
        """Append ``steps`` (UTF-8, each a whole step) in one piece, after the ``env`` lines
        of variables made since the last append. ``fenced``: whether a step may span several
        lines (None: look; counting the lines of a big step costs more than writing it)."""
        pending = self.sink.names.take_env()
        if pending:
            steps[:0] = [format_step(m.Env(n)).encode() for n in pending]
        data = b"".join(steps)  # one step: the step itself, not a copy
        if fenced is None:
            fenced = data.count(b"\n") > len(steps)
        if background and fenced:  # a multi-line step must not cross a page boundary
            data = self.sink.aligned(steps)
        return self.recorder._append(self.sink, data, background)

    def write_connect(self, hs: Handshake) -> None:
        self._emit([format_step(self.connect_step(hs))])

    def connect_step(self, hs: Handshake) -> m.Connect:
        """The ``conn`` step for ``hs``, secrets replaced by variables."""
        self.codecs = codec_order(hs.protocol)
        hs = _readable(hs)
        url, query = redact_url(hs.url, self.redaction, self._client, escape_template)
        headers = tuple((k, self._header_value(k, v)) for k, v in hs.headers)
        expect_headers = tuple(
            (k, self._header_value(k, v, "#any")) for k, v in hs.response_headers
            if k.lower() == "set-cookie")
        upgraded = hs.status == 101
        protocols = self.redaction.protocol_templates(hs.protocols, self._client,
                                                      escape_template)
        chosen = self.redaction.chosen_protocol(hs.protocols, protocols, hs.protocol,
                                                self._client, escape_template) \
            if upgraded and hs.protocols else None
        return m.Connect(
            name=self.name, url=url, at=self._now(), query=query, headers=headers,
            protocols=protocols, compress=hs.compress,
            expect_status=None if upgraded else hs.status,
            expect_protocol=chosen,
            expect_headers=expect_headers,
            expect_compress=hs.compressed if upgraded and hs.compress else None)

    def _header_value(self, name: str, value: str, marker: str | None = None) -> str:
        """A header value as a template: a secret header's whole value a variable (the
        server's a capture), credentials inside any other one redacted where they stand."""
        name_for = self._client if marker is None else \
            (lambda base, v: self.secret(base, v, marker))
        return self.redaction.value(self.redaction.header(name), name, value, name_for,
                                    escape_template)

    def messages(self, side: m.Side, batch: list) -> asyncio.Future | None:
        """Record messages that arrived together from ``side``: one append for all of them.

        ``batch`` holds ``(opcode, data, extra)`` tuples with opcode text, binary, ping or
        pong and ``data`` bytes. Returns ``None`` when the lines are in the file, or a future
        to await first (a big append written in the background). Raises :class:`BadText` for
        a text message that is not UTF-8 (the messages before it are recorded first: await
        its ``pending``).
        """
        # The lines are built here rather than through format_step(Event(...)): the same
        # text (a property test holds them equal), at a fraction of the cost per message.
        head = f"@{format_time(self._now())} {self.name} {side.value} "
        redaction = self._redact
        secret = self._server if side is m.Side.SERVER else self._client
        lines: list[bytes] = []
        size, fenced = 0, False  # fenced: a step spans several lines (binary ones never do)
        for i, msg in enumerate(batch):
            opcode, data = msg[0], msg[1]
            if opcode == OP_BINARY:
                coded = codec_payload(data, self.codecs, secret, redaction) \
                    if len(data) <= CODEC_MAX else None
                if coded is not None:
                    line = f"{head}{format_payload(coded, one_line=True)}\n".encode()
                elif len(data) > HEX_MAX:  # the big case: base64 bytes, joined once, never decoded
                    line = b"".join((head.encode(), b"b64 ", b64encode(data), b"\n"))
                else:
                    line = f"{head}hex {data.hex()}\n".encode() if data else f"{head}hex\n".encode()
            else:
                if opcode == OP_TEXT:
                    try:
                        payload = text_payload(data, secret, redaction)
                    except UnicodeDecodeError:
                        pending = None
                        if lines:
                            self._count(len(lines), size)
                            pending = self._emit_bytes(lines, True, fenced)
                        raise BadText(i, pending) from None
                elif opcode == OP_PING:
                    payload = m.Ping(bytes(data))
                else:
                    payload = m.Pong(bytes(data))
                line = f"{head}{format_payload(payload)}\n".encode()
                if len(line) > PAGE and opcode == OP_TEXT and line.count(b"\n") > 1:
                    one = one_line_payload(payload, data)
                    line = f"{head}{format_payload(one, one_line=True)}\n".encode()
                fenced = fenced or line.count(b"\n") > 1
            size += len(data)
            lines.append(line)
        self._count(len(lines), size)
        return self._emit_bytes(lines, True, fenced)

    def _count(self, n: int, size: int) -> None:
        self.messages_seen += n
        self.recorder.summary.messages += n
        self.recorder.summary.bytes += size

    def close(self, side: m.Side, code: int | None, reason: str | None) -> None:
        """A close frame sent by ``side`` (``code`` None: the frame had no status code)."""
        payload = m.Close(code, reason or None) if code else m.Close()
        self._emit([format_step(m.Event(self.name, side, payload, self._now()))])

    def drop(self, side: m.Side) -> None:
        """``side``'s connection ended with no close frame."""
        self._emit([format_step(m.Event(self.name, side, m.Drop(), self._now()))])

    def note(self, text: str) -> None:
        """A comment about this connection (made one line)."""
        self._emit([format_step(m.Comment(f" {self.name}: {_one_line(text)}"))])

    def end(self) -> None:
        """The connection is over: its file is closed when it has one of its own."""
        if self.recorder.split and not self.closed:
            self.sink.close()
        self.closed = True


def _text(value: str) -> str:
    """``value`` as text a file can hold: bytes that were not UTF-8 (aiohttp keeps them as
    surrogate escapes) become U+FFFD, so such a value is recorded approximately."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _readable(hs: Handshake) -> Handshake:
    """``hs`` with every string made :func:`_text` (the common case: ``hs`` itself)."""
    pairs = hs.headers + hs.response_headers
    if all(_text(s) is s for s in (hs.url, hs.protocol or "", *hs.protocols,
                                   *(x for pair in pairs for x in pair))):
        return hs
    return replace(hs, url=_text(hs.url), protocols=tuple(map(_text, hs.protocols)),
                   protocol=hs.protocol and _text(hs.protocol),
                   headers=tuple((_text(k), _text(v)) for k, v in hs.headers),
                   response_headers=tuple((_text(k), _text(v)) for k, v in hs.response_headers))


def _one_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f\x85\u2028\u2029]+", " ", text)
