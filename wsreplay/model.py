"""The scenario model: what a ``.wsr`` file says, as frozen dataclasses.

A :class:`Scenario` is a tuple of steps in file order. Every element carries its source
position (``pos``), which takes no part in equality, so ``parse(write(s)) == s`` compares
meaning, not where things stood.

Directions are seen from the connection's two ends: :attr:`Side.CLIENT` (``>``) is a
message the client sends to the server, :attr:`Side.SERVER` (``<``) one the server sends
to the client. Replay plays the client side and expects the server side; serve does the
opposite, with the same scenario.

Times and durations are integer microseconds, so the writer can spell them exactly.
Text-like payloads keep their *template* source (with ``{{...}}`` placeholders); binary
payloads keep bytes, so a binary frame can never be mistaken for text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Union

FORMAT_VERSION = 1


class Side(enum.Enum):
    """Who sends a message: the client (``>``) or the server (``<``)."""

    CLIENT = ">"
    SERVER = "<"

    @property
    def other(self) -> "Side":
        return Side.SERVER if self is Side.CLIENT else Side.CLIENT


@dataclass(frozen=True, slots=True)
class Pos:
    """Where an element stands in its file (1-based line and column)."""

    path: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


NOWHERE = Pos("<memory>", 0, 0)


def _pos() -> Any:
    return field(default=NOWHERE, compare=False, repr=False)


# --- payloads -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    """A text message; ``text`` is a template: ``{{name}}``, ``{{#marker}}``, ``{{v = #m}}``."""

    text: str


@dataclass(frozen=True, slots=True)
class Json:
    """A text message holding JSON, compared by meaning when expected.

    ``source`` is the JSON text as written (and, with no placeholders or markers, the exact
    text sent). ``value`` is its parse, kept for matching. ``subset`` allows extra keys in
    received objects; ``ignore`` lists JSONPath-like paths (``$.ts``, ``$.items[*].id``)
    left out of the comparison. ``codec`` ``msgpack`` or ``cbor``: the message is binary,
    that encoding of the value (``wsreplay.codecs``).
    """

    source: str
    value: Any = field(compare=False, default=None)
    subset: bool = False
    ignore: tuple[str, ...] = ()
    codec: str = "json"  # "msgpack" or "cbor": the same value, in a binary message


@dataclass(frozen=True, slots=True)
class Regex:
    """A text message that must match ``pattern`` as a whole; named groups capture."""

    pattern: str


class BinaryNotation(enum.Enum):
    HEX = "hex"
    B64 = "b64"


@dataclass(frozen=True, slots=True)
class Binary:
    """A binary message, spelled in hex or base64 in the file.

    ``template`` is set (and ``data`` is ``b""``) for a ``hex`` payload holding more than hex
    digits: a binary template with placeholders and length groups (:mod:`wsreplay.binary`),
    kept exactly as written."""

    data: bytes
    notation: BinaryNotation = BinaryNotation.HEX
    template: str | None = None


@dataclass(frozen=True, slots=True)
class File:
    """A binary message read from ``path``, relative to the scenario file."""

    path: str


@dataclass(frozen=True, slots=True)
class Ping:
    """A ping control frame; ``data`` is its payload (0..125 bytes)."""

    data: bytes = b""


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong control frame; ``data`` is its payload (0..125 bytes)."""

    data: bytes = b""


@dataclass(frozen=True, slots=True)
class Close:
    """A close frame. ``code`` None: no status code; ``reason`` None: not checked."""

    code: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Drop:
    """The connection ended with no close frame (TCP closed or reset)."""


@dataclass(frozen=True, slots=True)
class Silence:
    """Nothing (outside ignore rules) arrives for ``duration`` microseconds."""

    duration: int


Payload = Union[Text, Json, Regex, Binary, File, Ping, Pong, Close, Drop, Silence]
MATCH_ONLY = (Regex, Silence)  # payloads that can be expected but never sent


# --- steps ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One message (or silence) on connection ``conn`` sent by ``side``.

    ``at`` is the recorded offset from the scenario start (a pacing hint, None when the
    line has none); ``within`` a deadline on the expectation, counted from the moment the
    run reaches this line.
    """

    conn: str
    side: Side
    payload: Payload
    at: int | None = None
    within: int | None = None
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Rule:
    """A per-connection rule: messages from ``side`` matching ``match`` are ignored, or
    answered with ``reply`` (sent by the other side) when ``reply`` is set.

    With ``every`` (microseconds) it is a heartbeat ``side`` sends on that period: the side
    being played sends ``match`` every ``every`` while the connection is open; the other
    side's heartbeats matching it are ignored."""

    side: Side
    match: Payload
    reply: Payload | None = None
    pos: Pos = _pos()
    every: int | None = None


@dataclass(frozen=True, slots=True)
class Connect:
    """Open connection ``name`` to ``url`` (a template), with its handshake.

    ``expect_status`` None means 101; ``expect_protocol`` None means "not checked" and ""
    means "the server chose none". ``compress`` offers permessage-deflate;
    ``expect_compress`` asserts whether the server accepted it.
    """

    name: str
    url: str
    at: int | None = None
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    protocols: tuple[str, ...] = ()
    compress: bool = False
    expect_status: int | None = None
    expect_protocol: str | None = None
    expect_headers: tuple[tuple[str, str], ...] = ()
    expect_compress: bool | None = None
    rules: tuple[Rule, ...] = ()
    leftover: str | None = None
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Var:
    """``var name = <json>``: a variable with a JSON value (a template when a string)."""

    name: str
    source: str
    value: Any = field(compare=False, default=None)
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Env:
    """``env NAME [= <json>]``: a variable read from the environment variable ``NAME``."""

    name: str
    default_source: str | None = None
    default: Any = field(compare=False, default=None)
    pos: Pos = _pos()


class Leftover(enum.Enum):
    FAIL = "fail"
    WARN = "warn"


@dataclass(frozen=True, slots=True)
class Setting:
    """``set timeout 5s`` / ``set leftover warn``: scenario-wide settings."""

    name: str
    value: str
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Comment:
    """A ``#`` comment line, kept so ``fmt`` never loses it; ``text`` excludes the ``#``."""

    text: str
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Blank:
    """One or more blank lines between steps (written as one)."""

    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Include:
    """Run the steps of another scenario file here (path relative to this file)."""

    path: str
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Unordered:
    """Expectations that may be met in any order, all by ``within`` when set."""

    steps: tuple["Step", ...]
    within: int | None = None
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Repeat:
    """Run ``steps`` ``count`` times."""

    count: int
    steps: tuple["Step", ...]
    pos: Pos = _pos()


Step = Union[Event, Connect, Var, Env, Setting, Comment, Blank, Include, Unordered, Repeat]

SETTINGS = {"timeout", "leftover"}


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed scenario file: format ``version`` and its ``steps`` in file order."""

    steps: tuple[Step, ...]
    version: int = FORMAT_VERSION
    path: str = field(default="<memory>", compare=False)

    def connections(self) -> list[Connect]:
        """Every ``conn`` in the file, nested blocks included, in file order."""
        return [s for s in walk(self.steps) if isinstance(s, Connect)]

    def events(self) -> list[Event]:
        """Every event line in the file, nested blocks included, in file order."""
        return [s for s in walk(self.steps) if isinstance(s, Event)]


def walk(steps: tuple[Step, ...]):
    """Yield every step, descending into unordered and repeat blocks (not includes)."""
    for step in steps:
        yield step
        if isinstance(step, (Unordered, Repeat)):
            yield from walk(step.steps)
