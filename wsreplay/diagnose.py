"""Turning a broken expectation into a :class:`~wsreplay.outcome.Failure` a person can act
on: was the reply reordered, missing, extra, or different (and where)? Used by the engine
only when a run fails, so it may take its time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import model as m
from .matchers import MatchResult, match_message
from .messages import Message
from .outcome import Failure
from .program import events_of
from .errors import ScenarioError
from .template import TemplateError

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Conn, Engine

LOOKAHEAD = 500  # later lines searched for a reordered reply


def _matches(engine: "Engine", event: m.Event, msg: Message) -> bool:
    if isinstance(event.payload, m.Silence):
        return False
    try:
        return match_message(event.payload, msg, engine.vars, engine.reader(event.pos)).ok
    except (TemplateError, ScenarioError, OSError):
        return False


def later_line(engine: "Engine", conn: str, msg: Message) -> m.Event | None:
    """The first line after the current one that expects ``msg`` on ``conn``."""
    for step in engine.program[engine.pc + 1 : engine.pc + 1 + LOOKAHEAD]:
        for event in events_of(step):
            if event.side is not engine.side and event.conn == conn \
                    and _matches(engine, event, msg):
                return event
    return None


def _waited(engine: "Engine", now: float) -> float:
    return now - engine._entered if engine._entered is not None else 0.0


def mismatch_failure(engine: "Engine", event: m.Event, c: "Conn", hit: MatchResult,
                     now: float, group: m.Unordered | None = None) -> Failure:
    """The first message in ``c``'s inbox does not satisfy ``event``."""
    msg, rest = c.inbox[0], tuple(c.inbox)[1:]
    name = c.connect.name
    later = later_line(engine, name, msg)
    arrives = next((i for i, other in enumerate(rest, 2)
                    if _matches(engine, event, other)), None)
    if later is not None:
        kind = "reordered"
        summary = (f"{name}: the message line {later.pos.line} expects came first; the "
                   "replies arrived in another order than recorded")
    elif arrives is not None:
        kind = "extra"
        summary = (f"{name}: an unexpected message came first (the expected one is "
                   f"message {arrives} in the inbox)")
    else:
        kind = "mismatch"
        where = f" at {hit.path}" if hit.path and hit.path != "$" else ""
        summary = f"{name}: the message differs{where}: {hit.reason}"
    if group is not None:
        summary += " (in an unordered block, the closest line is shown)"
    return Failure(kind, summary, step=event, conn=name, received=msg, path=hit.path,
                   reason=hit.reason, waited=_waited(engine, now),
                   allowed=_allowed(engine, event), inbox=rest, later=later)


def _allowed(engine: "Engine", step: Any) -> float:
    within = getattr(step, "within", None)
    return within * 1e-6 if within is not None else engine.timeout


def closed_failure(engine: "Engine", event: m.Event, c: "Conn", now: float) -> Failure:
    """``event`` waits on a connection that has ended, its inbox empty."""
    name = c.connect.name
    return Failure("closed", f"{name}: the connection is {c.state.value}; nothing more can "
                   "arrive", step=event, conn=name, waited=_waited(engine, now),
                   allowed=_allowed(engine, event))


def missing_failure(engine: "Engine", step: m.Event | m.Unordered, c: "Conn | None",
                    now: float, allowed: float, missing: tuple = ()) -> Failure:
    """Nothing satisfying ``step`` arrived by its deadline."""
    lines = missing or events_of(step)
    elsewhere = None
    for name, other in engine.conns.items():
        if any(_matches(engine, e, msg) for e in lines for msg in other.inbox
               if e.conn != name):
            elsewhere = name
            break
    if isinstance(step, m.Unordered):
        summary = (f"{len(missing)} line(s) of the unordered block never arrived within "
                   f"{allowed:g}s")
        conn = missing[0].conn if missing else None
    else:
        summary = f"{step.conn}: nothing arrived within {allowed:g}s"
        conn = step.conn
    if elsewhere:
        summary += f" (a matching message is waiting on {elsewhere})"
    inbox = tuple(engine.conns[conn].inbox) if conn in engine.conns else ()
    return Failure("missing", summary, step=step, conn=conn, waited=_waited(engine, now),
                   allowed=allowed, inbox=inbox, elsewhere=elsewhere, missing=tuple(missing))


def leftover_failure(engine: "Engine", c: "Conn", msg: Message) -> Failure:
    """``msg`` was still in ``c``'s inbox when the run ended."""
    name = c.connect.name
    return Failure("leftover", f"{name}: a message no line expected: {msg.short()}",
                   step=c.connect, conn=name, received=msg)
