"""Generalizing a recording so it replays and serves as it is: pure (issue 11, first part).

A recording pins every value as it was. :func:`generalize` rewrites, in the language itself,
the values that cannot be the same in the next run:

* a value that comes back -- issued by one side and sent again later, by either side (a
  session id the server hands out and repeats, a subscription id the client picks and the
  server echoes) -- becomes a capture where it first appears, keeping the recorded value as
  the example to send (``"{{sid = #string like X}}"``), and a use (``{{sid}}``) where it comes
  back;
* a value that appears once and looks random (a UUID; 16 or more characters mixing letters and
  digits) becomes a marker with the recorded value as its example (``"#uuid like X"``);
* a number that is a timestamp within a day of the recording's start (seconds or
  milliseconds) becomes ``"#number like N"``.

Everything else stays literal: the rewrite is conservative, since a false capture can make a
real regression pass. Only whole JSON string values (in ``json``, ``msgpack`` and ``cbor``
lines, and in the quoted strings of ``text`` lines, as Socket.IO writes them) are considered;
binary payloads, handshakes and blocks are left as they are. Every rewrite is returned as an
:class:`Inference`, so a person can see what was generalized and why.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, replace
from typing import Any, Iterator

import orjson

from . import model as m
from .template import NAME_RE, UUID_RE

_UUID = re.compile(UUID_RE + r"\Z")
_TOKEN = re.compile(r"[A-Za-z0-9_\-.:~+/=]+\Z")
_PARTS = re.compile(r"[-_.:~+/=]+")
_QUOTED = re.compile(r'"((?:[^"\\{}]|\\.)*)"')
_STARTED = re.compile(r"@0\.000 is (\S+)")
_KEY_BEFORE = re.compile(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*:\s*\Z')
DAY = 86_400


@dataclass(frozen=True)
class Inference:
    """One rewrite: at ``pos``, ``what`` (``capture sid``, ``use sid``, ``marker #uuid``)
    for the recorded ``value``, because ``why``."""

    pos: m.Pos
    what: str
    value: Any
    why: str

    def __str__(self) -> str:
        return f"{self.pos}: {self.what} ({self.why}): {json.dumps(self.value)}"


def looks_like_id(value: str) -> bool:
    """Whether a string could be an identifier a peer issued: a UUID, or 8+ characters of a
    token alphabet where some part (between ``-``, ``_``, ``.``, ``:``) mixes letters and
    digits, or 16+ that look scrambled (see :func:`_scrambled`). Words, numbers and names
    made of them (``eu-west-1``, ``room-12``, ``v2.1.0``, ``EuropeWestRegion``) are not: they
    are how people name constants."""
    if _UUID.match(value):
        return True
    if len(value) < 8 or _TOKEN.match(value) is None:
        return False
    return any(any(c.isdigit() for c in part) and any(c.isalpha() for c in part)
               for part in _PARTS.split(value)) or _scrambled(value)


def _scrambled(value: str) -> bool:
    """16+ characters whose character class (upper, lower, digit, other) changes at 40% of
    the places or more: random base64 does (a Socket.IO sid drawn with no digit still does,
    at about 60%); words, even in CamelCase (``EuropeWestRegion``: 31%), do not."""
    if len(value) < 16:
        return False
    classes = [c.isupper() * 1 or c.islower() * 2 or c.isdigit() * 3 for c in value]
    changes = sum(a != b for a, b in zip(classes, classes[1:]))
    return changes >= 0.4 * len(value)


def looks_random(value: str) -> bool:
    """Whether a string that appears once is likely new every run: a UUID, or 16+ token
    characters mixing letters and digits."""
    return bool(_UUID.match(value)) or (len(value) >= 16 and looks_like_id(value))


def recording_start(scenario: m.Scenario) -> float | None:
    """The wall-clock start the recorder wrote in its header comment, as a POSIX time."""
    for step in scenario.steps[:4]:
        if isinstance(step, m.Comment):
            hit = _STARTED.search(step.text)
            if hit:
                try:
                    return _dt.datetime.fromisoformat(hit.group(1)).timestamp()
                except ValueError:
                    return None
    return None


# --- finding the values -----------------------------------------------------------------------


def _json_strings(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))


def _strings_of(payload: m.Payload) -> list[str]:
    if isinstance(payload, m.Json):
        return list(_json_strings(orjson.loads(payload.source)))
    if isinstance(payload, m.Text):
        return [json.loads(f'"{raw}"') for raw in _QUOTED.findall(payload.text)
                if "\\" not in raw]
    return []


def _events(scenario: m.Scenario) -> list[tuple[int, m.Event]]:
    return [(i, s) for i, s in enumerate(scenario.steps) if isinstance(s, m.Event)]


# --- rewriting ---------------------------------------------------------------------------------


class _Names:
    def __init__(self, scenario: m.Scenario):
        self.taken = {s.name for s in m.walk(scenario.steps) if isinstance(s, (m.Var, m.Env))}
        self.of: dict[str, str] = {}

    def name(self, value: str, hint: str | None) -> str:
        if value in self.of:
            return self.of[value]
        stem = hint if hint and NAME_RE.match(hint) and not hint[0].isdigit() else "id"
        name, n = stem, 1
        while name in self.taken:
            n += 1
            name = f"{stem}_{n}"
        self.taken.add(name)
        self.of[value] = name
        return name


def generalize(scenario: m.Scenario) -> tuple[m.Scenario, list[Inference]]:
    """``scenario`` with the values that change between runs generalized (see the module),
    and what was done. Top-level message lines only; the rest is kept as it is."""
    events = _events(scenario)
    seen: dict[str, list[int]] = {}
    for i, event in events:
        for value in dict.fromkeys(_strings_of(event.payload)):
            if looks_like_id(value):
                seen.setdefault(value, []).append(i)
    again = {v for v, where in seen.items() if len(where) > 1}
    once = {v for v, where in seen.items() if len(where) == 1 and looks_random(v)}
    started = recording_start(scenario)
    names = _Names(scenario)
    captured: set[str] = set()
    notes: list[Inference] = []
    steps = list(scenario.steps)
    for i, event in events:
        rewrite = _Rewrite(event, again, once, captured, names, started, notes)
        payload = rewrite.payload()
        if payload is not event.payload:
            steps[i] = replace(event, payload=payload)
    return replace(scenario, steps=tuple(steps)), notes


class _Rewrite:
    def __init__(self, event, again, once, captured, names, started, notes):
        self.event, self.again, self.once = event, again, once
        self.captured, self.names, self.started, self.notes = captured, names, started, notes

    def note(self, what: str, value: Any, why: str) -> None:
        self.notes.append(Inference(self.event.pos, what, value, why))

    def payload(self) -> m.Payload:
        p = self.event.payload
        if isinstance(p, m.Json):
            if "{{" in p.source or '"#' in p.source:
                return p  # already a template: a person's work, left alone
            value = orjson.loads(p.source)
            new = self.value(value, None)
            if self.changed:
                source = orjson.dumps(new).decode("utf-8")
                return replace(p, source=source, value=new)
            return p
        if isinstance(p, m.Text) and "{{" not in p.text:
            text = _QUOTED.sub(self._quoted, p.text)
            return m.Text(text) if text != p.text else p
        return p

    changed = False

    def _whole(self, value: str, key: str | None) -> str | None:
        """The template standing for the whole string ``value`` (None: keep it)."""
        if value in self.again:
            name = self.names.name(value, key)
            self.changed = True
            if value in self.captured:
                self.note(f"use {name}", value, "the value came back")
                return "{{" + name + "}}"
            self.captured.add(value)
            marker = "#uuid" if _UUID.match(value) else "#string"
            self.note(f"capture {name}", value, "sent again later")
            return "{{" + f"{name} = {marker} like {value}" + "}}"
        if value in self.once:
            self.changed = True
            marker = "#uuid" if _UUID.match(value) else "#string"
            self.note(f"marker {marker}", value, "looks random, used once")
            return f"{marker} like {value}"
        return None

    def value(self, value: Any, key: str | None) -> Any:
        if isinstance(value, str):
            new = self._whole(value, key)
            return value if new is None else new
        if isinstance(value, list):
            return [self.value(v, key) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v, k) for k, v in value.items()}
        if (isinstance(value, (int, float)) and not isinstance(value, bool)
                and self._timestamp(value)):
            self.changed = True
            self.note("marker #number", value, "a timestamp of the recording's day")
            return f"#number like {json.dumps(value)}"
        return value

    def _timestamp(self, number: float) -> bool:
        if self.started is None or number <= 0:
            return False
        return any(abs(number / scale - self.started) < DAY for scale in (1, 1000))

    def _quoted(self, hit: re.Match) -> str:
        raw = hit.group(1)
        if "\\" in raw:
            return hit.group()
        key = _KEY_BEFORE.search(hit.string, 0, hit.start())
        new = self._whole(raw, key.group(1) if key else None)
        if new is None:
            return hit.group()
        if new.startswith("#"):  # a marker in text is a placeholder
            new = "{{" + new + "}}"
        return f'"{new}"'
