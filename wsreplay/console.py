"""The interactive console's core (``wsreplay connect``): input lines → actions, wire traffic →
a timed history in the scenario language, the history → a scenario file.

Socket-free and clock-free. The shell (:mod:`wsreplay.commands.connect`) reads a line, asks
:func:`parse_input` what it means, performs the returned action on a real connection, and tells
the :class:`Session` every message that went over the wire (both directions) with its elapsed
time; the session answers with the history line to print. :meth:`Session.scenario` turns the
history into a model :class:`~wsreplay.model.Scenario` for :func:`wsreplay.writer.write`, with
secrets redacted into variables by the recorder's own rules (:mod:`wsreplay.redact`).

So the console and the files speak one language, every history line is
:func:`wsreplay.writer.format_event` applied to a model event: a literal ``{{`` received shows
as ``{{'{{'}}``, exactly as it would be saved.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

import orjson

from . import model as m
from .frames import valid_close_code
from .messages import Kind, Message
from .payloads import binary_payload, escape_template, text_payload
from .redact import Namer, Redaction, redact_url
from .writer import format_event

MAX_CONTROL = 125  # a ping's payload, RFC 6455 5.5
MAX_REASON = 123  # a close reason, after the two code bytes

HELP = """\
Type a line to send it as a text message, or a command:
  /text TEXT          send TEXT as is (also: a line starting with // sends the rest after one /)
  /json JSON          send JSON (checked first: nothing is sent when it does not parse)
  /hex 00ff ...       send a binary message given in hex (spaces allowed)
  /b64 AP8=           send a binary message given in base64
  /ping [TEXT]        send a ping (the server's pong shows in the history)
  /close [CODE [REASON]]  start the closing handshake (default 1000) and exit when it is done
  /save FILE          write the session so far as a scenario file (secrets go to env variables)
  /history            print the history again
  /help               this text
  /quit               close with 1000 and exit (as end of input does)"""


# --- what a line means ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` (a text, binary or ping :class:`~wsreplay.messages.Message`)."""

    message: Message


@dataclass(frozen=True, slots=True)
class CloseConn:
    """Start the closing handshake with ``code`` and ``reason``."""

    code: int = 1000
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Save:
    """Write the session so far to ``path``."""

    path: str


@dataclass(frozen=True, slots=True)
class Show:
    """Print something: ``what`` is ``"history"`` or ``"help"``."""

    what: str


@dataclass(frozen=True, slots=True)
class Nothing:
    """A blank line: do nothing."""


@dataclass(frozen=True, slots=True)
class Invalid:
    """The line cannot be acted on; print ``message``, send nothing."""

    message: str


Action = Send | CloseConn | Save | Show | Nothing | Invalid


def parse_input(line: str) -> Action:
    """What one input line (without its newline) asks for. Never raises."""
    if not line.strip():
        return Nothing()
    if line.startswith("//"):
        return Send(Message.of_text(line[1:]))
    if not line.startswith("/"):
        return Send(Message.of_text(line))
    word, _, rest = line[1:].partition(" ")
    handler = _COMMANDS.get(word.lower())
    if handler is None:
        return Invalid(f"unknown command /{word}: /help lists them (/text {line} sends it as text)")
    return handler(rest)


def _json(rest: str) -> Action:
    source = rest.strip()
    if not source:
        return Invalid("/json needs a JSON value, e.g. /json {\"type\":\"hello\"}")
    try:
        orjson.loads(source)
    except orjson.JSONDecodeError as exc:
        return Invalid(f"bad JSON: {exc}; nothing sent")
    return Send(Message.of_text(source))


def _hex(rest: str) -> Action:
    try:
        return Send(Message.of_binary(bytes.fromhex(rest)))
    except ValueError:
        return Invalid("bad hex: give pairs of hex digits, e.g. /hex 00ff10; nothing sent")


def _b64(rest: str) -> Action:
    try:
        return Send(Message.of_binary(base64.b64decode(rest.strip(), validate=True)))
    except (binascii.Error, ValueError):
        return Invalid("bad base64; nothing sent")


def _ping(rest: str) -> Action:
    data = rest.encode("utf-8")
    if len(data) > MAX_CONTROL:
        return Invalid(f"a ping payload is at most {MAX_CONTROL} bytes; nothing sent")
    return Send(Message.ping(data))


def _close(rest: str) -> Action:
    raw_code, _, reason = rest.strip().partition(" ")
    if not raw_code:
        return CloseConn()
    if not raw_code.isdigit() or not valid_close_code(int(raw_code)):
        return Invalid(f"bad close code {raw_code!r}: use 1000-1003, 1007-1014 or 3000-4999")
    reason = reason.strip()
    if len(reason.encode("utf-8")) > MAX_REASON:
        return Invalid(f"a close reason is at most {MAX_REASON} bytes")
    return CloseConn(int(raw_code), reason or None)


def _save(rest: str) -> Action:
    path = rest.strip()
    return Save(path) if path else Invalid("/save needs a file name, e.g. /save session.wsr")


def _no_argument(action: Action, name: str):
    def handler(rest: str) -> Action:
        return action if not rest.strip() else Invalid(f"/{name} takes no argument")
    return handler


_COMMANDS = {
    "text": lambda rest: Send(Message.of_text(rest)),
    "json": _json,
    "hex": _hex,
    "b64": _b64,
    "ping": _ping,
    "close": _close,
    "save": _save,
    "history": _no_argument(Show("history"), "history"),
    "help": _no_argument(Show("help"), "help"),
    "quit": _no_argument(CloseConn(), "quit"),
}


# --- wire messages → model payloads ------------------------------------------------------------

def payload_of(message: Message) -> m.Payload:
    """The model payload standing for exactly ``message``: JSON text as ``json``, other text
    as ``text`` (both as templates that render to the very same text), binary as ``hex``
    (``b64`` beyond 64 bytes), invalid UTF-8 text as binary."""
    kind = message.kind
    if kind is Kind.TEXT:
        try:
            return text_payload(message.data)
        except UnicodeDecodeError:
            return binary_payload(message.data)
    if kind is Kind.BINARY:
        return binary_payload(message.data)
    if kind is Kind.PING:
        return m.Ping(message.data)
    if kind is Kind.PONG:
        return m.Pong(message.data)
    if kind is Kind.CLOSE:
        return m.Close(message.code, message.reason or None) if message.code else m.Close()
    return m.Drop()


def at_of(elapsed: float) -> int:
    """Seconds since the session started → an event's ``at``, in whole milliseconds (as
    microseconds), so history lines read ``@1.250``."""
    return max(0, round(elapsed * 1000)) * 1000


# --- the session -----------------------------------------------------------------------------

@dataclass
class Session:
    """One console connection and its history.

    ``url``, ``query``, ``headers`` and ``protocols`` are what the user asked for (plain
    values, not templates). The shell calls :meth:`opened` or :meth:`refused` once the
    handshake is answered, then :meth:`add` for every message in either direction.
    """

    url: str
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    protocols: tuple[str, ...] = ()
    name: str = "c1"
    status: int | None = None
    protocol: str | None = None
    events: list[m.Event] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)  # each event's message, as it was

    def opened(self, protocol: str | None) -> str:
        """The handshake succeeded; returns the line to print."""
        self.status, self.protocol = 101, protocol or None
        chosen = f"protocol {protocol}" if protocol else "no protocol"
        return f"# connected: status 101, {chosen}"

    def refused(self, status: int, reason: str = "") -> str:
        """The server answered the upgrade with ``status``; returns the line to print."""
        self.status = status
        return f"handshake refused: HTTP {status} {reason}".rstrip()

    def add(self, side: m.Side, message: Message, elapsed: float) -> m.Event:
        """Record ``message`` sent by ``side`` at ``elapsed`` seconds; returns the event
        (print :func:`line` of it)."""
        event = m.Event(self.name, side, payload_of(message), at_of(elapsed))
        self.events.append(event)
        self.messages.append(message)
        return event

    def history(self) -> list[str]:
        """Every history line so far, in order."""
        return [line(event) for event in self.events]

    def scenario(self, redaction: Redaction = Redaction()) -> m.Scenario:
        """The session so far as a scenario: a comment, the ``env`` lines of redacted values,
        the ``conn`` step with its handshake lines, then every event with its ``@T``. Secrets
        are redacted as the recorder redacts them (:mod:`wsreplay.redact`): by name and by
        shape, in the URL, query, headers, subprotocols and messages; a secret the server
        sent first becomes a capture."""
        namer = Namer()

        def client(base: str, value: str) -> str:
            return namer.placeholder(self.name, base, value)

        def server(base: str, value: str) -> str:
            return namer.placeholder(self.name, base, value, "#string")

        url, url_query = redact_url(self.url, redaction, client, escape_template)
        query = url_query + tuple(
            (k, redaction.value(redaction.query_key(k), k, v, client, escape_template))
            for k, v in self.query)
        headers = tuple(
            (k, redaction.value(redaction.header(k), k, v, client, escape_template))
            for k, v in self.headers)
        protocols = redaction.protocol_templates(self.protocols, client, escape_template)
        upgraded = self.status in (None, 101)
        chosen = redaction.chosen_protocol(self.protocols, protocols, self.protocol, client,
                                           escape_template) \
            if upgraded and self.protocols else None
        connect = m.Connect(
            name=self.name, url=url, at=0, query=query, headers=headers, protocols=protocols,
            expect_status=None if upgraded else self.status, expect_protocol=chosen)
        events = []
        for event, message in zip(self.events, self.messages):
            if message.kind is Kind.TEXT and redaction.enabled:
                try:
                    name_for = server if event.side is m.Side.SERVER else client
                    event = m.Event(event.conn, event.side,
                                    text_payload(message.data, name_for, redaction), event.at)
                except UnicodeDecodeError:
                    pass  # kept as the binary it was shown as
            events.append(event)
        steps: list[m.Step] = [m.Comment(" saved by wsreplay connect")]
        steps += [m.Env(name) for name in namer.take_env()]
        steps.append(connect)
        steps += events
        return m.Scenario(tuple(steps))


def line(event: m.Event) -> str:
    """The history line(s) of one event: ``@1.250 c1 < json {"type":"tick"}``."""
    return format_event(event)
