"""What a run found: :class:`Failure` (one broken expectation, with everything the report
shows) and :class:`Result` (one scenario run). Plain data, filled by the engine and the
shells, rendered by :mod:`wsreplay.report`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .messages import Message
from .model import Pos, Side

# Failure kinds, and what each means for a reader of the report.
KINDS = {
    "mismatch": "a different message arrived",
    "reordered": "the expected messages arrived in another order",
    "extra": "an unexpected message arrived before the expected one",
    "missing": "the expected message never arrived",
    "closed": "the connection ended while a message was expected",
    "silence": "a message arrived during an expected silence",
    "handshake": "the opening handshake went differently",
    "connect": "a client never connected, or connected unlike any conn line",
    "leftover": "a message arrived that no line expected",
    "scenario": "the scenario cannot run as written",
    "send": "a message could not be sent",
}


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed expectation (or a warning, under ``leftover warn``).

    ``step`` is the scenario line at fault (an Event, Connect or Unordered; None for a
    connection nobody expected), ``received`` what arrived instead (the closest candidate),
    ``path``/``reason`` the first difference, ``waited``/``allowed`` seconds spent and
    allowed, ``inbox`` what else was waiting on the connection, ``later`` a later line
    that expects ``received``, ``elsewhere`` a connection where a matching message waits.
    """

    kind: str
    summary: str
    step: Any = None
    conn: str | None = None
    received: Message | None = None
    path: str | None = None
    reason: str | None = None
    waited: float | None = None
    allowed: float | None = None
    inbox: tuple[Message, ...] = ()
    later: Any = None
    elsewhere: str | None = None
    missing: tuple[Any, ...] = ()

    @property
    def pos(self) -> Pos | None:
        return getattr(self.step, "pos", None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (for ``--json``)."""
        pos = self.pos
        return {
            "kind": self.kind,
            "summary": self.summary,
            "file": pos.path if pos else None,
            "line": pos.line if pos else None,
            "conn": self.conn,
            "path": self.path,
            "reason": self.reason,
            "received": _message_dict(self.received),
            "waited": self.waited,
            "allowed": self.allowed,
            "inbox": [_message_dict(m) for m in self.inbox],
            "later_line": self.later.pos.line if getattr(self.later, "pos", None) else None,
        }


def _message_dict(msg: Message | None) -> dict[str, Any] | None:
    if msg is None:
        return None
    out: dict[str, Any] = {"kind": msg.kind.value}
    if msg.kind.value == "text":
        out["text"] = msg.data.decode("utf-8", "replace")
    elif msg.data:
        out["hex"] = msg.data.hex()
    if msg.code is not None:
        out["code"] = msg.code
    if msg.reason:
        out["reason"] = msg.reason
    return out


@dataclass(slots=True)
class Result:
    """One run of one scenario. ``passed`` when no failure (warnings allowed); ``error``
    set when the scenario itself is wrong (exit code 2 rather than 1)."""

    name: str
    side: Side
    failures: list[Failure] = field(default_factory=list)
    warnings: list[Failure] = field(default_factory=list)
    duration: float = 0.0
    sent: int = 0
    matched: int = 0
    peer: str | None = None
    notes: list[str] = field(default_factory=list)  # how the mock server chose the run
    # values of secret variables (``env`` ones, and those named in capitals, as the recorder
    # names redacted values): reports never print them (wsreplay.redact.scrub)
    secrets: frozenset[str] = frozenset()

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def error(self) -> bool:
        return any(f.kind == "scenario" for f in self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "mode": "replay" if self.side is Side.CLIENT else "serve",
            "passed": self.passed,
            "duration": round(self.duration, 6),
            "sent": self.sent,
            "matched": self.matched,
            "peer": self.peer,
            "failures": [f.to_dict() for f in self.failures],
            "warnings": [f.to_dict() for f in self.warnings],
            "notes": list(self.notes),
        }
