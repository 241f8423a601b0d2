"""A scenario flattened into the list of steps a run walks, plus timing options.

:func:`flatten` expands ``repeat`` blocks, drops comments and blanks, keeps ``unordered``
blocks (with their bodies flattened) and checks what the engine needs before a run starts:
every message line names a connection opened before it, and a block holds only message
lines. Includes must already be expanded (``wsreplay.loader.load``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from . import model as m
from .errors import ScenarioError
from .patterns import PatternError, compiled
from .template import (TemplateError, check_sendable, classify_json_string, json_strings,
                       placeholders)

@dataclass(frozen=True, slots=True)
class Timing:
    """How sends are paced: ``recorded`` times each ``@T`` (scaled by ``scale``), ``fast``
    sends as soon as causality allows."""

    recorded: bool = False
    scale: float = 1.0

    @classmethod
    def parse(cls, text: str) -> "Timing":
        """``recorded``, ``fast`` or a positive scale factor (``0.5`` halves every gap)."""
        if text == "recorded":
            return cls(True, 1.0)
        if text == "fast":
            return cls(False, 1.0)
        try:
            scale = float(text)
        except ValueError:
            raise ValueError(f"bad timing {text!r}: use recorded, fast or a number") from None
        if not scale > 0:
            raise ValueError(f"bad timing {text!r}: a scale factor is positive")
        return cls(True, scale)

    def __str__(self) -> str:
        if not self.recorded:
            return "fast"
        return "recorded" if self.scale == 1.0 else f"{self.scale:g}"


FAST = Timing()
RECORDED = Timing(True)

Flat = m.Event | m.Connect | m.Var | m.Env | m.Setting | m.Unordered

MAX_STEPS = 1_000_000  # in a run's program, repeats and includes expanded
MAX_NESTING = 32  # blocks (repeat, unordered) inside one another, across includes
MAX_INCLUDE_DEPTH = 16  # files including files

Included = Callable[[m.Include, int], tuple[int, int]]


def measure(steps: tuple[m.Step, ...], included: Included | None = None,
            depth: int = 0) -> tuple[int, int]:
    """``(size, height)`` of ``steps`` at block depth ``depth``: the number of steps they
    expand to (a repeat's body times its count, an ``unordered`` block one step plus its
    body) and how deep their blocks nest, computed without expanding anything.

    ``included(step, depth)`` gives an include's ``(size, height)`` (None: includes count
    nothing). Raises :class:`ScenarioError` at the step (a repeat, an include or a line)
    that takes the size over :data:`MAX_STEPS`, or at a block nested deeper than
    :data:`MAX_NESTING` (so the recursion here stays shallow).
    """
    total = height = 0
    for step in steps:
        if isinstance(step, (m.Comment, m.Blank)):
            continue
        if isinstance(step, (m.Repeat, m.Unordered)):
            if depth >= MAX_NESTING:
                raise ScenarioError(f"blocks nest more than {MAX_NESTING} deep here (repeat "
                                    f"and unordered blocks nest at most {MAX_NESTING} deep)",
                                    step.pos)
            inner, below = measure(step.steps, included, depth + 1)
            # repeat 0 still counts its body once: the loader expands includes inside it
            size = inner * max(step.count, 1) if isinstance(step, m.Repeat) else inner + 1
            height = max(height, below + 1)
        elif isinstance(step, m.Include):
            size, below = included(step, depth) if included is not None else (0, 0)
            height = max(height, below)
        else:
            size = 1
        total += size
        if total > MAX_STEPS:
            what = {m.Repeat: "this repeat", m.Include: "this include"}.get(type(step),
                                                                            "this line")
            raise ScenarioError(f"the run would hold more than {MAX_STEPS:,} steps once "
                                f"repeats and includes are expanded ({what} takes it to "
                                f"{total:,}): split the scenario or lower the counts",
                                step.pos)
    return total, height


def flatten(steps: tuple[m.Step, ...]) -> list[Flat]:
    """The steps a run walks, in order; raises :class:`ScenarioError` for what cannot run
    (a program over :data:`MAX_STEPS` is refused before anything is expanded)."""
    measure(steps)
    out: list[Flat] = []
    _flatten_into(steps, out)
    _check_connections(out)
    return out


def _flatten_into(steps, out: list, in_block: bool = False) -> None:
    for step in steps:
        if isinstance(step, (m.Comment, m.Blank)):
            continue
        if isinstance(step, m.Include):
            raise ScenarioError(f"include {step.path} is not expanded: load scenarios with "
                                "wsreplay.loader.load()", step.pos)
        if isinstance(step, m.Repeat):
            for _ in range(step.count):
                _flatten_into(step.steps, out, in_block)
        elif isinstance(step, m.Unordered):
            if in_block:
                raise ScenarioError("an unordered block cannot hold another one", step.pos)
            body: list = []
            _flatten_into(step.steps, body, True)
            out.append(m.Unordered(tuple(body), step.within, pos=step.pos))
        elif in_block and not isinstance(step, m.Event):
            raise ScenarioError("an unordered block holds only message lines", step.pos)
        elif in_block and isinstance(step.payload, m.Silence):
            raise ScenarioError("silence cannot be in an unordered block", step.pos)
        else:
            out.append(step)


def _check_connections(program: list[Flat]) -> None:
    opened: set[str] = set()
    for step in program:
        if isinstance(step, m.Connect):
            opened.add(step.name)
        for event in events_of(step):
            if event.conn not in opened:
                raise ScenarioError(f"connection {event.conn!r} is used before its conn line",
                                    event.pos)


def events_of(step: Flat) -> tuple[m.Event, ...]:
    """The message lines of a step: itself, or a block's body."""
    if isinstance(step, m.Event):
        return (step,)
    if isinstance(step, m.Unordered):
        return tuple(s for s in step.steps if isinstance(s, m.Event))
    return ()


def check_lines(program: list[Flat], side: m.Side) -> None:
    """Refuse, before the run, the first line that can never work when playing ``side``
    (see :func:`unplayable`); raises :class:`ScenarioError`."""
    problems = unplayable(program, side, first_only=True)
    if problems:
        raise problems[0]


def side_verb(side: m.Side) -> str:
    """``replay`` plays the client side, ``serve`` the server side."""
    return "replay" if side is m.Side.CLIENT else "serve"


def unplayable(program: list[Flat], side: m.Side,
               first_only: bool = False) -> list[ScenarioError]:
    """Every line that cannot be played from ``side``, in file order, as errors saying
    ``cannot replay: why`` or ``cannot serve: why``: a ``regex`` line to send, a
    ``#regex`` with no example to send, an example its marker rejects, an unknown marker
    anywhere, a pattern RE2 cannot compile (in a line or a rule)."""
    verb = side_verb(side)
    out: list[ScenarioError] = []
    seen: set[int] = set()

    def note(message: str, pos: m.Pos) -> None:
        out.append(ScenarioError(f"cannot {verb}: {message}", pos))

    def attempt(check: Callable[[], None], pos: m.Pos) -> None:
        try:
            check()
        except ScenarioError as exc:
            note(exc.message, exc.pos)
        except TemplateError as exc:
            note(exc.message, pos)

    for step in program:
        for event in events_of(step):
            if id(event) not in seen:  # a repeat expands to the same line many times
                seen.add(id(event))
                attempt(lambda: _check_event(event, side), event.pos)
        if isinstance(step, m.Connect) and id(step) not in seen:
            seen.add(id(step))
            if side is m.Side.CLIENT:
                attempt(lambda: _check_handshake(step), step.pos)
            for rule in step.rules:
                attempt(lambda: _check_rule(rule, side), rule.pos)
        if first_only and out:
            return out
    return out


def _check_handshake(connect: m.Connect) -> None:
    """Replaying sends the URL, query and headers: a marker in them needs a value to send."""
    for template in (connect.url, *(v for _, v in connect.query),
                     *(v for _, v in connect.headers), *connect.protocols):
        for ph in placeholders(template):
            if ph.marker is not None:
                _sendable(ph.marker, False)


def _check_rule(rule: m.Rule, side: m.Side) -> None:
    for payload, sending in ((rule.match, rule.side is side), (rule.reply, rule.side is not side)):
        if isinstance(payload, m.Regex):
            _check_pattern(payload.pattern, rule.pos)
            if sending and rule.every is not None:
                raise TemplateError("a regex heartbeat only matches; it cannot be sent "
                                    "(write text with a pattern and an example)")
        elif payload is not None and (rule.reply is not None or rule.every is not None):
            _check_payload(payload, sending)


def _check_pattern(pattern: str, pos: m.Pos) -> None:
    try:
        compiled(pattern)
    except PatternError as exc:
        raise ScenarioError(f"bad regex: {exc.message}", pos) from None


def _check_event(event: m.Event, side: m.Side) -> None:
    payload, sending = event.payload, event.side is side
    if isinstance(payload, m.Regex):
        if sending:
            raise TemplateError("a regex line only matches; it cannot be sent (write text "
                                "with a pattern and an example: text {{#regex P like "
                                "EXAMPLE}})")
        _check_pattern(payload.pattern, event.pos)
    _check_payload(payload, sending)


def _check_payload(payload: m.Payload, sending: bool) -> None:
    if isinstance(payload, m.Text):
        for ph in placeholders(payload.text):
            if sending and ph.marker is not None:
                _sendable(ph.marker, False)
    elif isinstance(payload, m.Json):
        value = payload.value if payload.value is not None else json.loads(payload.source)
        for _path, text in json_strings(value):
            js = classify_json_string(text)
            marker = js.marker or (js.placeholder.marker if js.placeholder else None)
            if sending and marker is not None:
                _sendable(marker, True)
            if js.kind == "template":
                for ph in placeholders(js.text):
                    if sending and ph.marker is not None:
                        _sendable(ph.marker, False)


def _sendable(marker, in_json: bool) -> None:
    check_sendable(marker, in_json)
