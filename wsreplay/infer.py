"""Generalizing a recording so it replays and serves as it is: pure (issue 11).

A recording pins every value as it was. :func:`generalize` rewrites, in the language itself,
what cannot be the same in the next run:

* **heartbeats** -- the same frame sent again and again on a steady period by one side on a
  connection (3+ times, every gap within 25% of the median), each time answered with the same
  frame by the other (Engine.IO's ``2``/``3``, graphql-ws's ping/pong), or never answered (4+
  times, within 10%) -- leave the sequence and become the connection's
  rules: ``on`` … ``reply`` for the answer and ``every PERIOD`` for the heartbeat, so a replay
  answers the server's pings wherever they fall and a mock pings its client on the period.
  WebSocket ping frames (whose payloads differ) become ``ignore`` rules;
* **a value that comes back** -- issued by one side and sent again later, by either side, in a
  message or a URL (a session id the server hands out and repeats, a subscription id the client
  picks and the server echoes) -- becomes a capture where it first appears, keeping the
  recorded value as the example to send (``"{{sid = #string like X}}"``), and a use
  (``{{sid}}``) where it comes back. A number comes back as an id only under an id-like key
  (``id``, ``requestId``, ``sub_id``...), on the other side, and -- when the server issued it
  -- with 5 digits or more: JSON-RPC's request ids echoed in answers are the common case;
* **a value that appears once and looks random** becomes a marker with the recorded value as
  its example (``"#uuid like X"``). What the server sends must look very random (a UUID, 16
  or more scrambled characters): a marker there loosens what a replay checks. What the client
  sends (messages, path segments) may look less so (a part of 8 or more characters mixing
  letters and digits, see :func:`looks_generated`): a marker
  there only lets the mock accept the client's own value, a replay sends the example;
* **a number that is a timestamp** within a day of the recording's start (seconds or
  milliseconds) becomes ``"#number like N"``.

Values are whole JSON strings and numbers (``json``, ``msgpack``, ``cbor``), quoted strings,
id-like tokens and timestamps in ``text``, runs of 8+ printable id characters in binary messages of up to
4 KiB (``{{name = #bytes N like "X"}}``), and the path segments and query values of ``conn``
URLs. Everything else stays literal: the rewrite is conservative, since a false capture can
make a real regression pass. A value already written as a template is a person's work and left
as it is. Every rewrite is returned as an :class:`Inference`.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import statistics
from dataclasses import dataclass, replace
from typing import Any, Iterator

import orjson

from . import model as m
from .template import NAME_RE, UUID_RE
from .writer import format_duration, format_payload

_UUID = re.compile(UUID_RE + r"\Z")
_TOKEN = re.compile(r"[A-Za-z0-9_\-.:~+/=]+\Z")
_PARTS = re.compile(r"[-_.:~+/=]+")
# In text: a JSON-style quoted string (group 1), or else a bare token (group 2) -- ``:`` ``/``
# and ``=`` inside are the delimiters of text protocols (``id:sub-0``, ``k=v``), not part of it.
_TEXT_VALUE = re.compile(r'"((?:[^"\\{}]|\\.)*)"'
                         r'|(?<![\w\-.~+])(\d{10,13}(?:\.\d+)?)(?![\w\-.~+=])'  # a time?
                         r'|(?<![\w\-.~+])([\w\-.~+]{8,}=*)(?![\w\-.~+=])', re.ASCII)
_BINARY_RUN = re.compile(rb"[A-Za-z0-9_\-.~+]{8,}=*")
_STARTED = re.compile(r"@0\.000 is (\S+)")
_KEY_BEFORE = re.compile(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*:\s*\Z')
# Keys that name ids: id, requestId, request_id, sub-id, ref ... (not "paid", "valid").
_ID_KEY = re.compile(r"(?:^|[a-z0-9])(?:Id|ID|Ref)\Z|(?:^|[_\-])(?:id|ID|ref)\Z"
                     r"|\A(?:sid|uid|subscription|session|handle|nonce)\Z")
_URL = re.compile(r"(?P<head>[a-z]+://[^/?#]*)(?P<path>[^?#]*)"
                  r"(?:\?(?P<query>[^#]*))?(?P<tail>.*)\Z", re.S)
DAY = 86_400
BINARY_MAX = 4096  # binary messages looked into for id runs
BIG_SERVER_NUMBER = 10_000  # a server-issued number must be this big to be taken for an id
# Heartbeats: at least this many, each interval within this share of the median (or 20 ms).
BEATS_MIN, BEAT_SLACK, BEAT_SLACK_US = 3, 0.25, 20_000
LONE_BEATS_MIN, LONE_SLACK = 4, 0.1  # a heartbeat nobody answers: 4+, within 10%
BEAT_MAX_SIZE = 256  # bytes of payload
_MESSAGES = (m.Text, m.Json, m.Binary, m.Ping, m.Pong, m.Regex, m.File)


@dataclass(frozen=True)
class Inference:
    """One rewrite: at ``pos``, ``what`` (``capture sid``, ``use sid``, ``marker #uuid``,
    ``heartbeat every 25000ms``) for the recorded ``value``, because ``why``."""

    pos: m.Pos
    what: str
    value: Any
    why: str

    def __str__(self) -> str:
        value = self.value if isinstance(self.value, str) and self.what.startswith(
            ("heartbeat", "ping")) else json.dumps(self.value)
        return f"{self.pos}: {self.what} ({self.why}): {value}"


def looks_like_id(value: str) -> bool:
    """Whether a string could be an identifier a peer issued: a UUID, or 8+ characters of a
    token alphabet where some part (between ``-``, ``_``, ``.``, ``:``) mixes letters and
    digits, or 16+ that look scrambled (see :func:`_scrambled`). Words, numbers, URLs and
    names made of them (``eu-west-1``, ``room-12``, ``v2.1.0``, ``EuropeWestRegion``) are
    not: they are how people name constants."""
    if _UUID.match(value):
        return True
    if len(value) < 8 or _TOKEN.match(value) is None or "://" in value:
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


def looks_generated(value: str) -> bool:
    """Whether a value the client sends once is likely its own fresh draw: random-looking
    (:func:`looks_random`), or holding a part of 8+ characters mixing letters and digits
    (``mqttjs_3f2a1b4c``; not ``room-12x`` nor ``build42``)."""
    return looks_random(value) or (looks_like_id(value) and any(
        len(part) >= 8 and any(c.isdigit() for c in part) and any(c.isalpha() for c in part)
        for part in _PARTS.split(value)))


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


def _is_template(value: str) -> bool:
    """A JSON string a person (or the recorder's redaction) wrote as a template or an escaped
    literal: ``{{...}}``, a marker, ``##...``."""
    return value.startswith("#") or "{{" in value


# --- where the values are ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Seen:
    step: int  # index in scenario.steps
    side: m.Side
    key: str | None  # the JSON key (or query key) it stood under


def _json_values(value: Any, key: str | None = None) -> Iterator[tuple[Any, str | None]]:
    """Every string and integer in a JSON value with the key it stands under, in order."""
    stack: list[tuple[Any, str | None]] = [(value, key)]
    while stack:
        item, k = stack.pop()
        if isinstance(item, str):
            yield item, k
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            yield item, k
        elif isinstance(item, list):
            stack.extend((v, k) for v in reversed(item))
        elif isinstance(item, dict):
            stack.extend((v, kk) for kk, v in reversed(list(item.items())))


def _text_values(text: str) -> Iterator[tuple[re.Match, str, str | None]]:
    """The quoted strings and bare tokens of a text message: (match, value, key)."""
    for hit in _TEXT_VALUE.finditer(text):
        if hit.group(2) is not None:
            continue  # a number: only ever a timestamp (see _Rewrite._text)
        if hit.group(1) is not None:
            raw = hit.group(1)
            if "\\" in raw:
                continue
            key = _KEY_BEFORE.search(text, 0, hit.start())
            yield hit, raw, key.group(1) if key else None
        else:
            yield hit, hit.group(3), None


def _binary_runs(data: bytes) -> Iterator[re.Match]:
    if len(data) <= BINARY_MAX:
        yield from _BINARY_RUN.finditer(data)


def _url_parts(url: str) -> tuple[re.Match | None, list[str], list[tuple[str, str, str]]]:
    """``url`` split: (match, path segments, query pairs as (key, '=', value))."""
    hit = _URL.match(url)
    if hit is None:
        return None, [], []
    segments = hit["path"].split("/")
    pairs = [tuple(p.partition("=")) for p in hit["query"].split("&")] if hit["query"] else []
    return hit, segments, pairs


class _Values:
    """Where every candidate value appears: ``("s", text)`` for strings (messages, text,
    URLs), ``("b", text)`` for runs in binary messages, ``("n", int)`` for numbers."""

    def __init__(self, steps: tuple, removed: set[int]):
        self.at: dict[tuple, list[_Seen]] = {}
        for i, step in enumerate(steps):
            if i in removed:
                continue
            if isinstance(step, m.Connect):
                self.connect(i, step)
            elif isinstance(step, m.Event):
                self.event(i, step)

    def add(self, kind: str, value: Any, seen: _Seen) -> None:
        where = self.at.setdefault((kind, value), [])
        if not where or where[-1].step != seen.step:
            where.append(seen)

    def connect(self, i: int, c: m.Connect) -> None:
        _, segments, pairs = _url_parts(c.url)
        for seg in segments:
            if "{{" not in seg and looks_like_id(seg):
                self.add("s", seg, _Seen(i, m.Side.CLIENT, None))
        for key, _, value in pairs:
            if "{{" not in value and looks_like_id(value):
                self.add("s", value, _Seen(i, m.Side.CLIENT, key))

    def event(self, i: int, e: m.Event) -> None:
        p = e.payload
        if isinstance(p, m.Json):
            for value, key in _json_values(p.value if p.value is not None
                                           else orjson.loads(p.source)):
                if isinstance(value, str):
                    if not _is_template(value) and looks_like_id(value):
                        self.add("s", value, _Seen(i, e.side, key))
                else:
                    self.add("n", value, _Seen(i, e.side, key))
        elif isinstance(p, m.Text) and "{{" not in p.text:
            for _, value, key in _text_values(p.text):
                if looks_like_id(value):
                    self.add("s", value, _Seen(i, e.side, key))
        elif isinstance(p, m.Binary) and p.template is None:
            for hit in _binary_runs(p.data):
                value = hit.group().decode("ascii")
                if looks_like_id(value):
                    self.add("b", value, _Seen(i, e.side, None))


# --- deciding ----------------------------------------------------------------------------------


def _id_number(value: int, where: list[_Seen], started: float | None) -> bool:
    """A number that came back as an id (see the module docstring)."""
    first = where[0]
    if _timestamp(value, started) or first.key is None or not _ID_KEY.search(first.key):
        return False
    if not any(s.side is not first.side for s in where[1:]):
        return False
    return first.side is m.Side.CLIENT or abs(value) >= BIG_SERVER_NUMBER


def _string_marker(value: str) -> str:
    return "#uuid" if _UUID.match(value) else "#string"


def _timestamp(number: float, started: float | None) -> bool:
    if started is None or number <= 0:
        return False
    return any(abs(number / scale - started) < DAY for scale in (1, 1000))


class _Names:
    def __init__(self, scenario: m.Scenario):
        self.taken = {s.name for s in m.walk(scenario.steps) if isinstance(s, (m.Var, m.Env))}
        for step in m.walk(scenario.steps):  # names the file already captures
            if isinstance(step, m.Event) and isinstance(step.payload, (m.Text, m.Json)):
                source = step.payload.text if isinstance(step.payload, m.Text) \
                    else step.payload.source
                self.taken.update(re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*=", source))
        self.of: dict[tuple, str] = {}
        self.last: dict[str, int] = {}  # stem → the last number tried (no quadratic search)

    def name(self, key: tuple, hint: str | None) -> str:
        if key in self.of:
            return self.of[key]
        stem = hint if hint and NAME_RE.match(hint) and not hint[0].isdigit() else "id"
        name, n = stem, self.last.get(stem, 1)
        if n > 1:
            name = f"{stem}_{n}"
        while name in self.taken:
            n += 1
            name = f"{stem}_{n}"
        self.last[stem] = n
        self.taken.add(name)
        self.of[key] = name
        return name


def generalize(scenario: m.Scenario) -> tuple[m.Scenario, list[Inference]]:
    """``scenario`` with the values that change between runs generalized and its heartbeats
    made rules (see the module), and what was done. Top-level lines only."""
    steps = list(scenario.steps)
    notes: list[Inference] = []
    removed = _heartbeats(steps, notes)
    values = _Values(tuple(steps), removed)
    started = recording_start(scenario)
    again, once = set(), set()
    for key, where in values.at.items():
        kind, value = key
        if kind == "n":
            if _id_number(value, where, started):
                again.add(key)
        elif len(where) > 1:
            again.add(key)
        elif looks_random(value) or (where[0].side is m.Side.CLIENT and looks_generated(value)):
            once.add(key)
    # a capture is named after the most telling key it stands under: an id key where there
    # is one ("subscription" rather than "result"), else the first
    hints = {key: next((s.key for s in where if s.key and _ID_KEY.search(s.key)),
                       next((s.key for s in where if s.key), None))
             for key, where in values.at.items() if key in again}
    rewrite = _Rewrite(again, once, _Names(scenario), started, notes, hints)
    out = []
    for i, step in enumerate(steps):
        if i in removed:
            continue
        if isinstance(step, m.Event):
            step = rewrite.event(step)
        elif isinstance(step, m.Connect):
            step = rewrite.connect(step)
        out.append(step)
    notes.sort(key=lambda n: (n.pos.line, n.pos.col))
    return replace(scenario, steps=tuple(out)), notes


# --- heartbeats ----------------------------------------------------------------------------------


def _beat_key(p: m.Payload) -> str | None:
    """What makes two messages the same heartbeat (None: cannot be one)."""
    if isinstance(p, (m.Ping, m.Pong)):
        return type(p).__name__.lower()  # control frames: any payload (often a counter)
    if isinstance(p, m.Text) and len(p.text) <= BEAT_MAX_SIZE and "{{" not in p.text:
        return "text " + p.text
    if isinstance(p, m.Json) and len(p.source) <= BEAT_MAX_SIZE and "{{" not in p.source:
        value = orjson.loads(p.source)
        return f"{p.codec} " + orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if isinstance(p, m.Binary) and p.template is None and len(p.data) <= BEAT_MAX_SIZE:
        return "bytes " + p.data.hex()
    return None


def _heartbeats(steps: list, notes: list[Inference]) -> set[int]:
    """Find the heartbeats of each connection, put their rules on its ``conn`` line (in
    ``steps``) and return the indices of the events they replace."""
    by_conn: dict[str, list[tuple[int, m.Event]]] = {}
    opened: dict[str, int] = {}
    for i, step in enumerate(steps):
        if isinstance(step, m.Connect):
            if step.name in opened:
                return set()  # a name reused: keep it simple, leave the file as it is
            opened[step.name] = i
        elif isinstance(step, m.Event) and step.conn in opened:
            by_conn.setdefault(step.conn, []).append((i, step))
    removed: set[int] = set()
    for conn, events in by_conn.items():
        rules: list[m.Rule] = []
        groups: dict[tuple, list[int]] = {}
        for k, (_, e) in enumerate(events):
            key = _beat_key(e.payload)
            if key is not None and e.at is not None:
                groups.setdefault((e.side, key), []).append(k)
        for (side, key), ks in sorted(groups.items(), key=lambda item: item[1][0]):
            if len(ks) < BEATS_MIN or any(events[k][0] in removed for k in ks):
                continue
            times = [events[k][1].at for k in ks]
            gaps = [b - a for a, b in zip(times, times[1:])]
            period = statistics.median(gaps)
            spread = max(abs(g - period) for g in gaps)
            if period < 1000 or spread > max(BEAT_SLACK * period, BEAT_SLACK_US):
                continue
            answers = [_answer(events, k, period) for k in ks]
            if answers[-1] is None and _last_word(events, ks[-1]):
                answers.pop()  # the connection ended before the last one could be answered
            first = events[ks[0]][1]
            answered = [a for a in answers if a is not None]
            answer_keys = {_beat_key(events[a][1].payload) for a in answered}
            control = isinstance(first.payload, (m.Ping, m.Pong))
            if all(_answers_one(events, k, period) for k in ks):
                continue  # each one answers the other side at once: the answer of a heartbeat
            if len(answered) == len(answers) and len(answer_keys) == 1 and None not in answer_keys:
                reply = events[answered[0]][1].payload
                gone = [events[k][0] for k in ks] + [events[a][0] for a in answered]
            elif (len(answered) * 3 <= len(ks) and not control and len(ks) >= LONE_BEATS_MIN
                  and spread <= max(LONE_SLACK * period, BEAT_SLACK_US)):
                # never answered: only a steadier, longer run passes for a heartbeat
                reply, gone = None, [events[k][0] for k in ks]
            else:
                continue  # answered differently each time: a poll, not a heartbeat
            every = max(1000, round(period / 1000) * 1000)
            if control:  # a ping frame is answered by the protocol itself
                rules.append(m.Rule(side, m.Ping(b"")))
                if reply is not None:
                    rules.append(m.Rule(side.other, m.Pong(b"")))
                what = f"ping frames ignored ({len(ks)} seen)"
            else:
                if reply is not None:
                    rules.append(m.Rule(side, first.payload, reply))
                rules.append(m.Rule(side, first.payload, None, every=every))
                what = f"heartbeat every {format_duration(every)}" + \
                    (f", answered {format_payload(reply)}" if reply is not None else "")
            removed.update(gone)
            notes.append(Inference(first.pos, what, format_payload(first.payload),
                                   f"sent {len(ks)} times, {format_duration(every)} apart"))
        if rules:
            at = opened[conn]
            steps[at] = replace(steps[at], rules=steps[at].rules + tuple(rules))
    return removed


def _last_word(events: list[tuple[int, m.Event]], k: int) -> bool:
    """Whether the other side sends no message after ``events[k]`` (at most its close)."""
    side = events[k][1].side
    return not any(e.side is not side and isinstance(e.payload, _MESSAGES)
                   for _, e in events[k + 1:])


def _answers_one(events: list[tuple[int, m.Event]], k: int, period: float) -> bool:
    """Whether ``events[k]`` follows a message of the other side at once (as a pong does)."""
    e = events[k][1]
    for j in range(k - 1, -1, -1):
        before = events[j][1]
        if before.at is not None and e.at is not None and e.at - before.at > min(period / 4,
                                                                                 1_000_000):
            return False
        if before.side is not e.side:
            return isinstance(before.payload, _MESSAGES) and _answer(events, j, period) == k
    return False


def _answer(events: list[tuple[int, m.Event]], k: int, period: float) -> int | None:
    """The index (in ``events``) of the other side's first message after heartbeat ``k``,
    if it came soon (within a quarter of the period, at most a second)."""
    beat = events[k][1]
    soon = min(period / 4, 1_000_000)
    for j in range(k + 1, len(events)):
        e = events[j][1]
        if e.at is not None and beat.at is not None and e.at - beat.at > soon:
            return None
        if e.side is not beat.side:
            return j if isinstance(e.payload, _MESSAGES) else None
    return None


# --- rewriting ---------------------------------------------------------------------------------


class _Rewrite:
    def __init__(self, again: set, once: set, names: _Names, started: float | None,
                 notes: list[Inference], hints: dict[tuple, str | None]):
        self.again, self.once, self.names, self.hints = again, once, names, hints
        self.started, self.notes = started, notes
        self.captured: set[tuple] = set()
        self.pos = m.NOWHERE
        self.side = m.Side.CLIENT

    def note(self, what: str, value: Any, why: str) -> None:
        self.notes.append(Inference(self.pos, what, value, why))

    def _placeholder(self, key: tuple, hint: str | None, marker: str,
                     example: str) -> tuple[str, str] | None:
        """("use" | "capture" | "marker", the text between ``{{`` and ``}}``) standing for
        the value ``key``, written with ``marker`` and ``example``; None: keep it."""
        kind, value = key
        if key in self.again:
            name = self.names.name(key, self.hints.get(key) or hint)
            if key in self.captured:
                self.note(f"use {name}", value, "the value came back")
                return "use", name
            self.captured.add(key)
            why = "the other side echoes it" if kind == "n" else "sent again later"
            self.note(f"capture {name}", value, why)
            return "capture", f"{name} = {marker} like {example}"
        if key in self.once:
            why = "looks random, used once" if looks_random(value) else \
                "looks like an id the client makes, used once"
            self.note(f"marker {marker.split()[0]}", value, why)
            return "marker", f"{marker} like {example}"
        return None

    # -- connections ---------------------------------------------------------------------

    def connect(self, c: m.Connect) -> m.Connect:
        self.pos, self.side = c.pos, m.Side.CLIENT
        hit, segments, pairs = _url_parts(c.url)
        if hit is None or "{{" in hit["head"]:
            return c
        changed = False
        for n, seg in enumerate(segments):
            if "{{" not in seg and looks_like_id(seg):
                new = self._text_template(("s", seg), None)
                if new is not None:
                    segments[n], changed = new, True
        for n, (key, eq, value) in enumerate(pairs):
            if "{{" in value or not looks_like_id(value):
                continue
            if ("s", value) in self.once:
                continue  # a literal query value is an example already: the mock accepts any
            new = self._text_template(("s", value), key)
            if new is not None:
                pairs[n], changed = (key, eq, new), True
        if not changed:
            return c
        query = "?" + "&".join("".join(p) for p in pairs) if hit["query"] is not None else ""
        return replace(c, url=hit["head"] + "/".join(segments) + query + hit["tail"])

    def _text_template(self, key: tuple, hint: str | None) -> str | None:
        found = self._placeholder(key, hint, _string_marker(key[1]), key[1])
        return None if found is None else "{{" + found[1] + "}}"

    # -- messages ------------------------------------------------------------------------

    def event(self, e: m.Event) -> m.Event:
        self.pos, self.side = e.pos, e.side
        p = e.payload
        if isinstance(p, m.Json):
            value = p.value if p.value is not None else orjson.loads(p.source)
            self.changed = False
            new = self._json(value, None)
            if not self.changed:
                return e
            source = orjson.dumps(new).decode("utf-8")
            return replace(e, payload=replace(p, source=source, value=new))
        if isinstance(p, m.Text) and "{{" not in p.text:
            text = _TEXT_VALUE.sub(self._text, p.text)
            return e if text == p.text else replace(e, payload=m.Text(text))
        if isinstance(p, m.Binary) and p.template is None:
            template = self._binary(p.data)
            return e if template is None else replace(e, payload=m.Binary(b"", m.BinaryNotation.HEX,
                                                                           template))
        return e

    changed = False

    def _json(self, value: Any, key: str | None) -> Any:
        if isinstance(value, str):
            if _is_template(value) or not looks_like_id(value):
                return value
            found = self._placeholder(("s", value), key, _string_marker(value), value)
            if found is None:
                return value
            self.changed = True
            what, body = found
            return body if what == "marker" else "{{" + body + "}}"  # a JSON marker is bare
        if isinstance(value, list):
            return [self._json(v, key) for v in value]
        if isinstance(value, dict):
            return {k: self._json(v, k) for k, v in value.items()}
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value
        if _timestamp(value, self.started):
            self.changed = True
            self.note("marker #number", value, "a timestamp of the recording's day")
            return f"#number like {json.dumps(value)}"
        if isinstance(value, int) and ("n", value) in self.again and (
                ("n", value) not in self.captured or abs(value) >= BIG_SERVER_NUMBER
                or (key is not None and _ID_KEY.search(key))):
            # a small number comes back only as an id (``"params":[2]`` is not request 2)
            self.changed = True
            return "{{" + self._placeholder(("n", value), key, "#number", str(value))[1] + "}}"
        return value

    def _text(self, hit: re.Match) -> str:
        if hit.group(2) is not None:
            number = float(hit.group(2)) if "." in hit.group(2) else int(hit.group(2))
            if not _timestamp(number, self.started):
                return hit.group()
            self.note("marker #number", number, "a timestamp of the recording's day")
            return "{{#number like " + hit.group(2) + "}}"
        quoted = hit.group(1) is not None
        raw = hit.group(1) if quoted else hit.group(3)
        if (quoted and "\\" in raw) or not looks_like_id(raw):
            return hit.group()
        key = _KEY_BEFORE.search(hit.string, 0, hit.start()) if quoted else None
        new = self._text_template(("s", raw), key.group(1) if key else None)
        if new is None:
            return hit.group()
        return f'"{new}"' if quoted else new

    def _binary(self, data: bytes) -> str | None:
        parts, at, changed = [], 0, False
        for hit in _binary_runs(data):
            value = hit.group().decode("ascii")
            if not looks_like_id(value):
                continue
            found = self._placeholder(("b", value), None, f"#bytes {len(value)}", f'"{value}"')
            if found is None:
                continue
            if hit.start() > at:
                parts.append(data[at:hit.start()].hex())
            parts.append("{{" + found[1] + "}}")
            at, changed = hit.end(), True
        if not changed:
            return None
        if at < len(data):
            parts.append(data[at:].hex())
        return " ".join(parts)
