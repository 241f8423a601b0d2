"""Does a received message (or handshake) satisfy a scenario line? Pure functions.

Every matcher returns a :class:`MatchResult`: ``ok`` with the ``captures`` to store, or a
mismatch with ``path`` (the JSON path of the first difference, ``$`` for the message as a
whole), a short ``reason`` and a ``score`` in 0..1 (how close it came; the report picks the
closest candidate with it). Matching rules are those of ``docs/language.md``, "Matching".
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping

import orjson

from . import model as m
from .codecs import CodecError, decode
from .messages import Handshake, Kind, Message, Request
from .redact import HEADERS, QUERY
from .template import (Marker, TemplateError, compiled_regex, classify_json_string, join_path,
                       lookup, text_pattern)

ReadFile = Callable[[str], bytes]


@dataclass(frozen=True, slots=True)
class MatchResult:
    ok: bool
    captures: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None
    reason: str = ""
    score: float = 1.0

    def __bool__(self) -> bool:
        return self.ok


OK = MatchResult(True)


def _miss(reason: str, path: str | None = "$", score: float = 0.0) -> MatchResult:
    return MatchResult(False, {}, path, reason, score)


def describe(value: Any, limit: int = 40) -> str:
    """A JSON value written short, for reasons: ``"abc"``, ``42``, ``an object``."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- messages -------------------------------------------------------------------------

_KIND_OF = {m.Text: Kind.TEXT, m.Json: Kind.TEXT, m.Regex: Kind.TEXT, m.Binary: Kind.BINARY,
            m.File: Kind.BINARY, m.Ping: Kind.PING, m.Pong: Kind.PONG, m.Close: Kind.CLOSE,
            m.Drop: Kind.DROP}
_NAME_OF = {m.Text: "text", m.Json: "json", m.Regex: "text", m.Binary: "binary",
            m.File: "binary", m.Ping: "ping", m.Pong: "pong", m.Close: "close", m.Drop: "drop"}


def match_message(payload: m.Payload, msg: Message, variables: Mapping[str, Any],
                  read_file: ReadFile | None = None) -> MatchResult:
    """Whether ``msg`` satisfies the expected ``payload`` (not :class:`~model.Silence`,
    which is about time). Raises :class:`TemplateError` when the line itself is wrong
    (undefined variable, bad marker) and ``OSError`` when a ``file`` cannot be read."""
    want = _KIND_OF[type(payload)]
    encoded = isinstance(payload, m.Json) and payload.codec != "json"
    if encoded:
        want = Kind.BINARY
    if msg.kind is not want:
        got = msg.kind.value
        name = f"binary ({payload.codec})" if encoded else _NAME_OF[type(payload)]
        return _miss(f"expected a {name} message, got a {got}"
                     + (" message" if msg.is_data else ""))
    if encoded:
        try:
            value = decode(payload.codec, msg.data)
        except CodecError as exc:
            return _miss(exc.reason)
        return match_json_value(payload, value, variables)
    if want is Kind.TEXT:
        try:
            text = msg.text
        except UnicodeDecodeError:
            return _miss("the text is not valid UTF-8")
        if isinstance(payload, m.Json):
            return match_json(payload, text, variables)
        if isinstance(payload, m.Regex):
            return match_regex(payload.pattern, text)
        return match_text(payload.text, text, variables)
    if isinstance(payload, m.Close):
        return match_close(payload, msg)
    if isinstance(payload, m.Drop):
        return OK
    if isinstance(payload, m.File):
        if read_file is None:
            raise OSError(f"cannot read {payload.path}: no file reader given")
        return match_bytes(read_file(payload.path), msg.data)
    if isinstance(payload, m.Binary) and payload.template is not None:
        from .binary import match  # binary.py builds on this module's MatchResult

        return match(payload.template, msg.data, variables)
    return match_bytes(payload.data, msg.data)


def match_bytes(expected: bytes, got: bytes) -> MatchResult:
    if expected == got:
        return OK
    n = min(len(expected), len(got))
    at = next((i for i in range(n) if expected[i] != got[i]), n)
    score = at / max(len(expected), len(got), 1)
    if at == n:
        return _miss(f"expected {len(expected)} bytes, got {len(got)}", f"byte {at}", score)
    return _miss(f"byte {at}: expected 0x{expected[at]:02x}, got 0x{got[at]:02x}",
                 f"byte {at}", score)


def match_close(payload: m.Close, msg: Message) -> MatchResult:
    got = None if msg.code == 1005 else msg.code  # 1005 is "no status code" on the wire
    if payload.code != got:
        want = payload.code if payload.code is not None else "no code"
        return _miss(f"expected close code {want}, got {got if got is not None else 'none'}",
                     "$", 0.3)
    if payload.reason is not None and payload.reason != (msg.reason or ""):
        return _miss(f"expected close reason {payload.reason!r}, got {msg.reason or ''!r}",
                     "$", 0.6)
    return OK


def match_regex(pattern: str, text: str) -> MatchResult:
    hit = compiled_regex(pattern).fullmatch(text)
    if hit is None:
        return _miss(f"does not match /{pattern}/")
    return MatchResult(True, {k: v for k, v in hit.groupdict().items() if v is not None})


def match_text(source: str, text: str, variables: Mapping[str, Any]) -> MatchResult:
    """A received text against a text template (placeholders and markers allowed)."""
    if "{{" not in source:
        if source == text:
            return OK
        return _text_diff(source, text)
    captures = text_pattern(source, variables).match(text)
    if captures is None:
        return _miss(f"does not match the template {_clip(source)}", "$", _prefix_score(
            source, text))
    return MatchResult(True, captures)


def _clip(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _prefix_score(a: str, b: str) -> float:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n / max(len(a), len(b), 1)


def _text_diff(expected: str, got: str) -> MatchResult:
    n = min(len(expected), len(got))
    at = next((i for i in range(n) if expected[i] != got[i]), n)
    lo = max(0, at - 10)
    return _miss(f"texts differ at character {at}: expected {_clip(expected[lo:at + 20])}, "
                 f"got {_clip(got[lo:at + 20])}", f"char {at}", _prefix_score(expected, got))


# --- JSON -----------------------------------------------------------------------------


@lru_cache(maxsize=2048)
def _expected_json(source: str) -> Any:
    return json.loads(source)


def parse_received_json(text: str) -> Any:
    """A received text as JSON (orjson, falling back to the stdlib for integers orjson
    refuses); raises ``ValueError``."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def match_json(payload: m.Json, text: str, variables: Mapping[str, Any]) -> MatchResult:
    """A received text against a ``json`` line: by meaning, with markers, placeholders,
    ``subset`` and ``ignore`` paths."""
    try:
        got = parse_received_json(text)
    except ValueError as exc:
        return _miss(f"not JSON ({str(exc).splitlines()[0]})")
    return match_json_value(payload, got, variables)


def match_json_value(payload: m.Json, got: Any, variables: Mapping[str, Any]) -> MatchResult:
    """A received value (parsed JSON, or a decoded MessagePack or CBOR frame) against a
    ``json``-like line."""
    walk = _JsonWalk(variables, payload.subset, [parse_ignore_path(p) for p in payload.ignore])
    walk.compare(_expected_json(payload.source), got, ())
    if walk.diffs:
        path, reason = walk.diffs[0]
        score = max(0.0, 1.0 - len(walk.diffs) / max(walk.leaves, 1))
        return MatchResult(False, {}, path, reason, score)
    return MatchResult(True, walk.captures)


_SEGMENT = re.compile(r"""\.(?P<name>[A-Za-z_][\w\-]*)|\.\*|\[\*\]|\[(?P<index>\d+)\]"""
                      r"""|\[(?P<quoted>"(?:[^"\\]|\\.)*"|'[^']*')\]""")
ANY = object()


@lru_cache(maxsize=256)
def parse_ignore_path(path: str) -> tuple:
    """``$.items[*].id`` -> ``("items", ANY, "id")``; raises :class:`TemplateError`."""
    if not path.startswith("$"):
        raise TemplateError(f"an ignore path starts with $: {path!r}")
    out, i = [], 1
    while i < len(path):
        seg = _SEGMENT.match(path, i)
        if seg is None:
            raise TemplateError(f"bad ignore path {path!r} at character {i}", i)
        if seg.group("name"):
            out.append(seg.group("name"))
        elif seg.group("index"):
            out.append(int(seg.group("index")))
        elif seg.group("quoted"):
            q = seg.group("quoted")
            out.append(json.loads(q) if q.startswith('"') else q[1:-1])
        else:
            out.append(ANY)
        i = seg.end()
    return tuple(out)


def _format_path(segments: tuple) -> str:
    path = "$"
    for seg in segments:
        path = join_path(path, seg)
    return path


class _JsonWalk:
    """One comparison: collects every difference (first one first) and the captures."""

    def __init__(self, variables: Mapping[str, Any], subset: bool, ignore: list[tuple]):
        self.variables, self.subset, self.ignore = variables, subset, ignore
        self.diffs: list[tuple[str, str]] = []
        self.captures: dict[str, Any] = {}
        self.leaves = 0

    def ignored(self, path: tuple) -> bool:
        return any(len(p) == len(path) and all(a is ANY or a == b for a, b in zip(p, path))
                   for p in self.ignore)

    def diff(self, path: tuple, reason: str) -> None:
        self.diffs.append((_format_path(path), reason))

    def compare(self, want: Any, got: Any, path: tuple, literal: bool = False) -> None:
        if self.ignore and self.ignored(path):
            return
        if isinstance(want, dict):
            self._object(want, got, path, literal)
        elif isinstance(want, list):
            self._array(want, got, path, literal)
        elif isinstance(want, str) and not literal:
            self.leaves += 1
            self._string(want, got, path)
        else:
            self.leaves += 1
            if not json_equal(want, got):
                self.diff(path, f"expected {describe(want)}, got {describe(got)}")

    def _object(self, want: dict, got: Any, path: tuple, literal: bool) -> None:
        if not isinstance(got, dict):
            self.leaves += 1
            return self.diff(path, f"expected an object, got {describe(got)}")
        for key, value in want.items():
            sub = path + (key,)
            if not literal and value == "#absent":
                self.leaves += 1
                if key in got and not (self.ignore and self.ignored(sub)):
                    self.diff(sub, f"expected no key {key!r}, got {describe(got[key])}")
            elif key not in got:
                self.leaves += 1
                if not (self.ignore and self.ignored(sub)):
                    self.diff(sub, f"missing key {key!r} (expected {describe(value)})")
            else:
                self.compare(value, got[key], sub, literal)
        if not self.subset or literal:
            for key in got:
                if key not in want and not (self.ignore and self.ignored(path + (key,))):
                    self.diff(path + (key,), f"unexpected key {key!r} "
                                             f"(got {describe(got[key])})")

    def _array(self, want: list, got: Any, path: tuple, literal: bool) -> None:
        if not isinstance(got, list):
            self.leaves += 1
            return self.diff(path, f"expected an array, got {describe(got)}")
        for i, value in enumerate(want[: len(got)]):
            self.compare(value, got[i], path + (i,), literal)
        if len(want) != len(got):
            self.leaves += abs(len(want) - len(got))
            self.diff(path, f"expected {len(want)} items, got {len(got)}")

    def _string(self, want: str, got: Any, path: tuple) -> None:
        js = classify_json_string(want)
        if js.kind == "literal":
            if got != js.text or not isinstance(got, str):
                self.diff(path, f"expected {describe(js.text)}, got {describe(got)}")
        elif js.kind == "marker":
            self._marker(js.marker, None, got, path)
        elif js.kind == "single":
            ph = js.placeholder
            if ph.marker is not None:
                self._marker(ph.marker, ph.name, got, path)
            else:
                value = lookup(ph.name, self.variables, ph.start)
                before = len(self.diffs)
                self.compare(value, got, path, literal=True)
                if len(self.diffs) > before:  # name the variable, not just the value
                    self.diffs[before] = (self.diffs[before][0],
                                          f"expected {{{{{ph.name}}}}} = "
                                          f"{describe(value)}, got {describe(got)}")
        elif not isinstance(got, str):
            self.diff(path, f"expected a string like {describe(want)}, got {describe(got)}")
        else:
            caught = text_pattern(js.text, self.variables).match(got)
            if caught is None:
                self.diff(path, f"expected {describe(want)}, got {describe(got)}")
            else:
                self.captures.update(caught)

    def _marker(self, marker: Marker, name: str | None, got: Any, path: tuple) -> None:
        if marker.kind == "absent":
            self.diff(path, f"expected no value here (#absent), got {describe(got)}")
        elif not marker.accepts(got):
            self.diff(path, f"expected {marker}, got {describe(got)}")
        elif name:
            self.captures[name] = got


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality by meaning: ``1 == 1.0``, ``true != 1``, key order ignored."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict):
        return (isinstance(b, dict) and a.keys() == b.keys()
                and all(json_equal(v, b[k]) for k, v in a.items()))
    if isinstance(a, list):
        return (isinstance(b, list) and len(a) == len(b)
                and all(json_equal(x, y) for x, y in zip(a, b)))
    return type(a) is type(b) and a == b


# --- handshakes -----------------------------------------------------------------------


def _header_values(headers: tuple[tuple[str, str], ...], name: str) -> list[str]:
    low = name.lower()
    return [v for k, v in headers if k.lower() == low]


def _match_any(label: str, path: str, template: str, values: list[str],
               variables: Mapping[str, Any], score: float = 0.0,
               missing: str | None = None, secret: bool = False) -> MatchResult:
    """The first of ``values`` (a repeated header or query key) matching ``template``;
    ``label`` (``missing`` when there is none) names it in the reason, ``path`` in the
    report."""
    if not values:
        return _miss(f"missing {missing or label}", path)
    for value in values:
        hit = match_text(template, value, variables)
        if hit.ok:
            return hit
    got = repr(values[0]) if not secret else \
        f"a value not shown ({len(values[0])} characters: a secret's place)"
    return _miss(f"{label}: expected {template!r}, got {got}", path, score)


def match_handshake(connect: m.Connect, hs: Handshake,
                    variables: Mapping[str, Any]) -> MatchResult:
    """The server's answer to a ``conn`` line's handshake, as the client saw it."""
    want = connect.expect_status or 101
    if not hs.status:  # no server answered: the shell says why, once (no "difference")
        return _miss(f"no connection: {hs.error or 'no answer'}", "")
    if hs.status != want:
        return _miss(f"expected status {want}, got {hs.status}", "status")
    if want != 101:
        return OK
    captures: dict[str, Any] = {}
    want_p, got_p = connect.expect_protocol, hs.protocol or ""
    if want_p is not None:
        if want_p and got_p:  # a template: a secret subprotocol is recorded as a variable
            hit = match_text(want_p, got_p, variables)
        else:  # "" is "none", which no template matches
            hit = OK if want_p == got_p else None
        if not hit:
            return _miss(f"expected protocol {want_p or 'no protocol'}, got "
                         f"{got_p or 'no protocol'}", "protocol", 0.5)
        captures.update(hit.captures)
    if connect.expect_compress is not None and hs.compress != connect.expect_compress:
        return _miss(f"expected compress {'on' if connect.expect_compress else 'off'}, got "
                     f"{'on' if hs.compress else 'off'}", "compress", 0.5)
    for name, template in connect.expect_headers:
        hit = _match_any(f"response header {name}", f"header {name}", template,
                         _header_values(hs.headers, name), {**variables, **captures}, 0.5,
                         secret=name.lower() in HEADERS)
        if not hit.ok:
            return hit
        captures.update(hit.captures)
    return MatchResult(True, captures)


def offered_protocol(template: str, offered: Iterable[str],
                     variables: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The first of the ``offered`` subprotocols that the template ``template`` (a ``protocol``
    or ``expect protocol`` entry) matches, with what it captured; None when none does.
    Raises :class:`TemplateError` (e.g. an undefined variable)."""
    for protocol in offered:
        hit = match_text(template, protocol, variables)
        if hit.ok:
            return protocol, hit.captures
    return None


def answer_protocol(connect: m.Connect, req: Request,
                    variables: Mapping[str, Any]) -> str | None:
    """The subprotocol the mock server answers ``req`` with, as the client offered it: the
    one ``expect protocol`` matches, else the first entry of the ``protocol`` line that the
    client offered; None for none."""
    wanted = connect.protocols if connect.expect_protocol is None else (connect.expect_protocol,)
    for template in wanted:
        if not template:  # expect no protocol
            return None
        try:
            found = offered_protocol(template, req.protocols, variables)
        except TemplateError:
            continue
        if found is not None:
            return found[0]
    return None


def split_url(url: str) -> tuple[str, list[tuple[str, str]]]:
    """A URL template's path and query pairs (decoded), placeholders kept as written."""
    from .template import parts

    held: list[str] = []

    def hold(part) -> str:  # keep placeholders out of the URL syntax (#, ?, & in markers)
        if isinstance(part, str):
            return part
        held.append(url[part.start:part.end])
        return f"\x00{len(held) - 1}\x00"

    masked = "".join(hold(p) for p in parts(url))
    rest = masked.split("://", 1)[-1]
    slash, q = rest.find("/"), rest.find("?")
    if slash < 0 or 0 <= q < slash:
        path_q = "/" + (rest[q:] if q >= 0 else "")
    else:
        path_q = rest[slash:]
    path, _, query = path_q.split("#", 1)[0].partition("?")
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)

    def back(text: str) -> str:
        return re.sub("\x00(\\d+)\x00", lambda h: held[int(h.group(1))], text)

    return back(urllib.parse.unquote(path or "/")), [(back(k), back(v)) for k, v in pairs]


def match_request(connect: m.Connect, req: Request,
                  variables: Mapping[str, Any]) -> MatchResult:
    """Whether a client's handshake ``req`` is the one a ``conn`` line describes (for the
    mock server). Required: the path, every ``query`` line, every query value in the URL
    that holds a placeholder, and the subprotocol the server is to choose being offered.
    Preferred (``score`` rises with each one met, so the best of several candidates wins,
    but a client is never refused for them): literal query values in the URL, which are
    examples (a cache buster such as Engine.IO's ``t`` differs each run), and ``header``
    lines (clients differ in User-Agent and the like). Raises :class:`TemplateError`
    (e.g. an undefined variable)."""
    path, pairs = split_url(connect.url)
    hit = match_text(path, req.path, variables)
    if not hit.ok:
        return _miss(f"path: expected {path!r}, got {req.path!r}", "path", 0.0)
    captures = dict(hit.captures)
    examples = [(k, v) for k, v in pairs if "{{" not in v]
    queries = [(k, v) for k, v in pairs if "{{" in v] + list(connect.query)
    for i, (key, template) in enumerate(queries):
        hit = _match_any(f"query {key}", f"query {key}", template,
                         [v for k, v in req.query if k == key], {**variables, **captures},
                         missing=f"query parameter {key}", secret=key.lower() in QUERY)
        if not hit.ok:
            return MatchResult(False, {}, hit.path, hit.reason, 0.1 + 0.4 * i / len(queries))
        captures.update(hit.captures)
    chosen = connect.expect_protocol
    if chosen:
        found = offered_protocol(chosen, req.protocols, {**variables, **captures})
        if found is None:
            return _miss(f"the client did not offer subprotocol {chosen} (offered: "
                         f"{' '.join(req.protocols) or 'none'})", "protocol", 0.5)
        captures.update(found[1])
    matched = sum(value in [v for k, v in req.query if k == key] for key, value in examples)
    for key, template in connect.headers:
        hit = _match_any(f"request header {key}", f"header {key}", template,
                         _header_values(req.headers, key), {**variables, **captures}, 0.5,
                         secret=key.lower() in HEADERS)
        if hit.ok:
            matched += 1
            captures.update(hit.captures)
    wished = len(examples) + len(connect.headers)
    score = 0.6 + 0.4 * (matched / wished if wished else 1.0)
    return MatchResult(True, captures, score=score)
