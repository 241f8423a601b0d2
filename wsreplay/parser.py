"""Scenario text → :class:`~wsreplay.model.Scenario`.

``parse(text, path)`` is pure: it reads no files (``include`` and ``file`` stay as paths; see
:mod:`wsreplay.loader`). Any input either parses or raises :class:`ScenarioSyntaxError` with
``path:line:col``, the line and a caret, never another exception.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gc
import hashlib
import os
import re
import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path

import orjson
from lark import Lark, Token, Transformer
from lark import __version__ as lark_version
from lark.exceptions import LarkError, UnexpectedInput

from . import model as m
from .binary import FORMS, parse_template
from .errors import FormatVersionError, ScenarioError, ScenarioSyntaxError
from .hints import hint_for
from .template import TemplateError
from .program import MAX_NESTING

_US = 1_000_000
_UNITS = {"us": 1, "ms": 1000, "s": _US, "m": 60 * _US}
_DURATION = re.compile(r"[0-9]+(\.[0-9]+)?(us|ms|s|m)")


def _grammar_text() -> str:
    # A checkout keeps the grammar in the top-level grammar/ folder; a wheel ships the same
    # file as the wsreplay.grammar package.
    here = Path(__file__).resolve().parent.parent / "grammar" / "wsreplay.lark"
    if here.is_file():
        return here.read_text(encoding="utf-8")
    return resources.files("wsreplay.grammar").joinpath("wsreplay.lark").read_text("utf-8")


class _Fail(Exception):
    """Raised inside the transformer; turned into ScenarioSyntaxError by ``parse``."""

    def __init__(self, message: str, token: Token | None, offset: tuple[int, int] = (0, 0),
                 hint: str | None = None):
        super().__init__(message)
        self.message, self.token, self.offset, self.hint = message, token, offset, hint


def _fail(message: str, token: Token | None = None, hint: str | None = None):
    raise _Fail(message, token, hint=hint)


# --- token conversions --------------------------------------------------------------------


def parse_time(raw: str, token: Token | None = None) -> int:
    """``1.250`` (seconds, up to 6 decimals) → microseconds."""
    whole, _, frac = raw.partition(".")
    if len(frac) > 6:
        _fail("times have at most 6 decimals (microseconds)", token)
    return int(whole) * _US + int(frac.ljust(6, "0") or 0)


def parse_duration(raw: str) -> int:
    """``250ms``, ``1.5s``, ``1m``, ``100us`` → microseconds; ValueError for anything else."""
    hit = _DURATION.fullmatch(raw)
    if hit is None:
        raise ValueError(f"bad duration {raw!r} (write 250ms, 2s, 1.5s, 1m or 100us)")
    scale = _UNITS[hit.group(2)]
    whole, _, frac = raw[: hit.start(2)].partition(".")
    exact, rest = divmod(int(frac or 0) * scale, 10 ** len(frac))
    if rest:
        raise ValueError(f"bad duration {raw!r}: not a whole number of microseconds")
    return int(whole) * scale + exact


def _duration(raw: str, token: Token | None) -> int:
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise _Fail(str(exc), token) from None


def _text_value(token: Token | None) -> str:
    """A text position: inline (exact), quoted (a JSON string) or a fenced block."""
    if token is None:
        return ""
    raw = str(token)
    if _is_block(raw):
        return _block_content(raw)
    if raw.startswith("```"):
        _fail("this fenced block is never closed: no line holding exactly "
              f"{raw.split()[0]!r} follows", token,
              hint="close the block with a line holding the same fence, or quote the payload")
    if raw.startswith('"'):
        if len(raw.rstrip()) < 2 or not raw.rstrip().endswith('"'):
            _fail("this quoted text is never closed", token,
                  hint='a payload starting with " is a JSON string: close it with "')
        value = _json(token)
        if not isinstance(value, str):
            _fail("a payload starting with \" is a JSON string, and this is not one", token,
                  hint='to send text that starts with a quote, quote it: "\\"..."')
        return value
    return raw


def _is_block(raw: str) -> bool:
    return raw.startswith("```") and "\n" in raw


def _block_content(raw: str) -> str:
    first_nl = raw.index("\n")
    body = raw[first_nl + 1:]
    last_nl = body.rfind("\n")
    return body[:last_nl] if last_nl >= 0 else ""


def _json(token: Token):
    """Parse a JSON payload with orjson, mapping its error offset back into the file."""
    raw = str(token)
    block = _is_block(raw)
    text = _block_content(raw) if block else raw
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        msg = exc.msg if hasattr(exc, "msg") else str(exc)
        if block:
            line_off, col = exc.lineno, exc.colno  # content starts on the next line, column 1
        else:
            line_off, col = 0, token.column + exc.colno - 1
        hint = None
        bare = _BARE_PLACEHOLDER.search(text)
        if bare is not None:
            shown = bare.group().strip()
            hint = (f"a placeholder in JSON is written inside a string: \"{shown}\" (the "
                    "value keeps its type)")
        raise _Fail(f"invalid JSON: {msg}", token, (line_off, col), hint) from None


# ``{"id":{{n}}}``: a placeholder outside a JSON string (after `:`, `[` or `,`)
_BARE_PLACEHOLDER = re.compile(r"(?<=[:\[,])\s*\{\{[^{}]*\}\}")


def _json_value(token: Token):
    """A variable's value: JSON, with a hint for the common bare-word mistake."""
    try:
        return _json(token)
    except _Fail as exc:
        exc.hint = f'variable values are JSON: a string is quoted, as in "{token}"'
        raise


def _json_source(token: Token) -> str:
    raw = str(token)
    return _block_content(raw) if _is_block(raw) else raw


_HEX_JUNK = re.compile(r"[^0-9a-fA-F \t\n]")
_B64_JUNK = re.compile(r"[^A-Za-z0-9+/= \t\n]")


def _bytes(token: Token | None, encoding: str) -> bytes:
    if token is None:
        return b""
    raw = str(token)
    block = _is_block(raw)
    text = _block_content(raw) if block else raw
    junk = (_HEX_JUNK if encoding == "hex" else _B64_JUNK).search(text)
    what = "a hex digit" if encoding == "hex" else "a base64 character"
    if junk is not None:
        where = (0, token.column + junk.start()) if not block else \
            (text.count("\n", 0, junk.start()) + 1,
             junk.start() - text.rfind("\n", 0, junk.start()))
        raise _Fail(f"{junk.group()!r} is not {what}", token, where)
    compact = re.sub(r"[ \t\n]", "", text)
    if encoding == "hex":
        if len(compact) % 2:
            _fail(f"an odd number of hex digits ({len(compact)}): each byte is two", token)
        return bytes.fromhex(compact)
    try:
        return base64.b64decode(compact, validate=True)
    except (ValueError, binascii.Error) as exc:
        _fail(f"invalid base64: {exc}", token)


def _binary_template(token: Token | None) -> str | None:
    """A ``hex`` payload holding more than hex digits and blanks: the binary template (blanks
    around it trimmed), checked here so an error points at its column; else None."""
    if token is None:
        return None
    raw = str(token)
    block = _is_block(raw)
    text = _block_content(raw) if block else raw
    if _HEX_JUNK.search(text) is None:
        return None
    try:
        parse_template(text)
    except TemplateError as exc:
        at = exc.offset
        where = (0, token.column + at) if not block else \
            (text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at))
        hint = FORMS if exc.message.endswith("is not a hex digit") else None
        raise _Fail(exc.message, token, where, hint) from None
    return text.strip()


def _pos(transformer: "_Build", token: Token) -> m.Pos:
    return m.Pos(transformer.path, token.line, token.column)


# --- the transformer ------------------------------------------------------------------------


class _Build(Transformer):
    """Builds the model while LALR parses (no tree is built). Rule methods get children lists."""

    def __init__(self):
        super().__init__(visit_tokens=False)
        self.path = "<memory>"

    # statements

    def start(self, c):
        return c

    def version(self, c):
        return c[0]

    def comment(self, c):
        return [m.Comment(str(c[0])[1:], _pos(self, c[0])), c[1]]

    def var(self, c):
        name, value, nl = c
        return [m.Var(str(name), _json_source(value), _json_value(value), _pos(self, name)), nl]

    def env(self, c):
        name, value, nl = c
        if value is None:
            return [m.Env(str(name), None, None, _pos(self, name)), nl]
        return [m.Env(str(name), _json_source(value), _json_value(value), _pos(self, name)), nl]

    def setting(self, c):
        name, value, nl = c
        key, val = str(name), str(value)
        if key == "timeout":
            _duration(val, value) if _is_duration(val) else _fail(
                "set timeout takes a duration such as 5s or 500ms", value)
        elif key == "leftover":
            if val not in ("fail", "warn"):
                _fail("set leftover takes fail or warn", value)
        else:
            _fail(f"unknown setting `{key}`", name, hint=hint_for(key, sorted(m.SETTINGS)))
        return [m.Setting(key, val, _pos(self, name)), nl]

    def include(self, c):
        return [m.Include(str(c[0]), _pos(self, c[0])), c[1]]

    def unordered(self, c):
        within, nl, *body, end_nl = c
        steps = _steps(body, nl)
        dur = _within(within)
        return [m.Unordered(steps, dur, m.Pos(self.path, nl.line, 1)), end_nl]

    def repeat(self, c):
        count, nl, *body, end_nl = c
        return [m.Repeat(int(count), _steps(body, nl), _pos(self, count)), end_nl]

    # connections

    def conn(self, c):
        time, name, url, nl, *attrs = c
        fields: dict = {"query": [], "headers": [], "expect_headers": [], "rules": []}
        last_nl = nl
        for key, value, attr_nl in attrs:
            last_nl = attr_nl
            if key in ("query", "headers", "expect_headers", "rules"):
                fields[key].append(value)
            else:
                fields[key] = value
        for key in ("query", "headers", "expect_headers", "rules"):
            fields[key] = tuple(fields[key])
        at = parse_time(str(time)[1:], time) if time is not None else None
        return [m.Connect(str(name), str(url), at, pos=_pos(self, time or name), **fields), last_nl]

    def query(self, c):
        return ("query", (str(c[0]), _text_value(c[1])), c[2])

    def header(self, c):
        return ("headers", (str(c[0]), _text_value(c[1])), c[2])

    def protocols(self, c):
        return ("protocols", tuple(str(t) for t in c[:-1]), c[-1])

    def compress(self, c):
        return ("compress", True, c[0])

    def expect_status(self, c):
        return ("expect_status", int(c[0]), c[1])

    def expect_protocol(self, c):
        return ("expect_protocol", str(c[0]), c[1])

    def expect_no_protocol(self, c):
        return ("expect_protocol", "", c[0])

    def expect_header(self, c):
        return ("expect_headers", (str(c[0]), _text_value(c[1])), c[2])

    def expect_compress(self, c):
        return ("expect_compress", True, c[0])

    def expect_no_compress(self, c):
        return ("expect_compress", False, c[0])

    def ignore_rule(self, c):
        d, payload, nl = c
        return ("rules", m.Rule(m.Side(str(d)), payload[0], None, _pos(self, d)), nl)

    def reply_rule(self, c):
        d, payload, _, rd, reply, nl = c
        if str(rd) == str(d):
            _fail("a reply goes the other way: `on <` is answered by `reply >`", rd)
        return ("rules", m.Rule(m.Side(str(d)), payload[0], reply[0], _pos(self, d)), nl)

    def every_rule(self, c):
        period, d, payload, nl = c
        every = _duration(str(period), period)
        if every < 1000:
            _fail("a heartbeat period is at least 1ms", period)
        if payload[0].__class__ in (m.Close, m.Drop, m.Silence):
            _fail("a heartbeat is a message: text, json, binary, ping or pong", d)
        return ("rules", m.Rule(m.Side(str(d)), payload[0], None, _pos(self, d), every), nl)

    def leftover(self, c):
        if str(c[0]) not in ("fail", "warn"):
            _fail("leftover takes fail or warn", c[0])
        return ("leftover", str(c[0]), c[1])

    # events

    def event(self, c):
        head, within, payload, nl = c
        raw = str(head)
        at = None
        if raw.startswith("@"):
            stamp, raw = raw[1:].split(None, 1)
            at = parse_time(stamp, head)
        name, side = raw[:-1].rstrip(), m.Side(raw[-1])
        dur = _within(within)
        return [m.Event(name, side, payload[0], at, dur, _pos(self, head)), nl]

    def event_line(self, c):
        tok = c[0]
        match = _EVENT_LINE.match(tok)
        at, conn, side, within, kind, value, nl = match.groups()
        if value is not None:
            value = _Value(value, tok.line, tok.column + match.start(6))
        if kind == "text" and value is not None and value[0] != '"':
            payload = m.Text(str(value))  # the bulk of recordings: plain inline text
        elif kind in _JSON_KINDS:
            payload = m.Json(str(value), _json(value), codec=kind)
        elif kind == "close":
            payload = self.close(_close_parts(value))[0]
        else:
            payload = getattr(self, kind)([value])[0]
        event = m.Event(conn, _SIDES[side], payload,
                        None if at is None else parse_time(at, tok),
                        None if within is None else _duration(within, tok),
                        m.Pos(self.path, tok.line, tok.column))
        return [event, nl]

    # payloads: each returns a 1-tuple so a payload is never mistaken for a list of steps

    def text(self, c):
        return (m.Text(_text_value(c[0])),)

    def regex(self, c):
        return (m.Regex(_text_value(c[0])),)

    def json(self, c, codec: str = "json"):
        subset, ignore, paths, value = c
        ignored = tuple(p for p in str(paths).split(",") if p) if paths is not None else ()
        if ignore is not None and not ignored:
            _fail("ignore takes JSONPath-like paths such as $.ts,$.items[*].id", ignore)
        return (m.Json(_json_source(value), _json(value), subset is not None, ignored,
                       codec),)

    def msgpack(self, c):
        return self.json(c, "msgpack")

    def cbor(self, c):
        return self.json(c, "cbor")

    def hex(self, c):
        template = _binary_template(c[0])
        if template is not None:
            return (m.Binary(b"", m.BinaryNotation.HEX, template),)
        return (m.Binary(_bytes(c[0], "hex"), m.BinaryNotation.HEX),)

    def b64(self, c):
        return (m.Binary(_bytes(c[0], "b64"), m.BinaryNotation.B64),)

    def file(self, c):
        return (m.File(str(c[0])),)

    def ping(self, c):
        return (m.Ping(_control(c)),)

    def pong(self, c):
        return (m.Pong(_control(c)),)

    def close(self, c):
        code, reason = c
        if code is None:
            return (m.Close(None, None),)
        number = int(code)
        if number > 65535:
            _fail("a close code is a number from 0 to 65535", code)
        return (m.Close(number, _text_value(reason) if reason is not None else None),)

    def drop(self, c):
        return (m.Drop(),)

    def silence(self, c):
        return (m.Silence(_duration(str(c[0]), c[0])),)


_SIDES = {">": m.Side.CLIENT, "<": m.Side.SERVER}
_JSON_KINDS = ("json", "msgpack", "cbor")


class _Value(str):
    """A payload cut out of an EVENT_LINE token: a str with the position lark tokens have
    (much cheaper to make than a lark Token)."""

    type = "VALUE"

    def __new__(cls, value: str, line: int, column: int):
        self = super().__new__(cls, value)
        self.line, self.column = line, column
        return self


_EVENT_LINE = re.compile(
    r"(?:@([0-9]+(?:\.[0-9]+)?)[ \t]+)?([A-Za-z_][A-Za-z0-9_.\-]*)[ \t]*([<>])[ \t]+"
    r"(?:within[ \t]+([^ \t]+)[ \t]+)?([a-z0-9]+)(?:[ \t]+([^ \t\r\n][^\r\n]*))?[ \t]*"
    r"((?:\n[ \t]*)+)")


_CLOSE_VALUE = re.compile(r"([0-9]+)(?:[ \t]+(.+))?")


def _close_parts(value: "_Value | None") -> list:
    """``1000 bye`` cut out of an EVENT_LINE: the code and reason as the rule gets them."""
    if value is None:
        return [None, None]
    hit = _CLOSE_VALUE.fullmatch(value)
    reason = hit.group(2)
    return [_Value(hit.group(1), value.line, value.column),
            None if reason is None else _Value(reason, value.line, value.column + hit.start(2))]


def _within(token: Token | None) -> int | None:
    return _duration(token.split()[1], token) if token is not None else None


def _control(c) -> bytes:
    c = [t for t in c if t is not None]
    if not c:
        return b""
    first = c[0]
    if first.type == "CTL_HEX":
        return _bytes(c[1] if len(c) > 1 else None, "hex")
    if first.type == "CTL_B64":
        return _bytes(c[1] if len(c) > 1 else None, "b64")
    data = _text_value(first).encode("utf-8")
    if len(data) > 125:
        _fail("a control frame payload is at most 125 bytes", first)
    return data


def _is_duration(raw: str) -> bool:
    return _DURATION.fullmatch(raw) is not None


def _steps(items: list, first_nl: Token) -> tuple:
    """Flatten [step, NL] pairs into steps, turning a NL that spans a blank line into Blank."""
    steps: list = []
    if first_nl.count("\n") > 1 and items:
        steps.append(m.Blank())
    for step, nl in items:
        steps.append(step)
        if nl.count("\n") > 1:
            steps.append(m.Blank())
    if steps and isinstance(steps[-1], m.Blank) and items:
        steps.pop()  # a blank line right before `end` or the end of file is not kept
    return tuple(steps)


# --- entry point ------------------------------------------------------------------------------

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _parser() -> tuple[Lark, _Build]:
    build = _Build()
    grammar = _grammar_text()
    lark = Lark(grammar, parser="lalr", lexer="contextual", transformer=build,
                maybe_placeholders=True, cache=_cache_file(grammar))
    return lark, build


def _cache_file(grammar: str) -> str | bool:
    """Where lark keeps the built parser between runs (45 ms to build, 4 ms to load): the
    user's own cache folder, ``$XDG_CACHE_HOME/wsreplay`` or ``~/.cache/wsreplay``, created
    0700. Lark's cache is a pickle, so a folder that is not the user's alone is not used
    (the parser is then built every run). ``WSREPLAY_NO_CACHE`` set: never cached."""
    if os.environ.get("WSREPLAY_NO_CACHE"):
        return False
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "wsreplay")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.stat(folder)
    except OSError:
        return False
    if info.st_mode & 0o022 or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
        return False
    key = hashlib.sha256(f"{lark_version}\0{grammar}".encode()).hexdigest()[:16]
    return os.path.join(folder, f"grammar-{key}.lark-cache")


def parse(text: str, path: str = "<memory>") -> m.Scenario:
    """Parse scenario ``text`` (read from ``path``, used in positions and messages).

    Returns the :class:`Scenario`; raises :class:`ScenarioSyntaxError` (or
    :class:`FormatVersionError`) with the position, the line and a caret.
    """
    source = text[1:] if text.startswith("\ufeff") else text
    source = source.replace("\r\n", "\n")
    if not source.endswith("\n"):
        source += "\n"
    _check_header(source, path)
    lark, build = _parser()
    with _lock, _no_gc():
        build.path = path
        try:
            version, first_nl, *items = lark.parse(source)
        except _Fail as exc:
            raise _error_from_fail(exc, source, path) from None
        except UnexpectedInput as exc:
            raise _error_from_lark(exc, source, path) from None
        except LarkError as exc:  # an exception from a callback, wrapped by lark
            inner = getattr(exc, "orig_exc", None)
            if isinstance(inner, _Fail):
                raise _error_from_fail(inner, source, path) from None
            raise ScenarioSyntaxError(str(exc), m.Pos(path, 1, 1)) from None
    steps = _steps(items, first_nl)
    _check_nesting(steps, source, path)
    return m.Scenario(steps, int(version), path)


def _check_nesting(steps: tuple, source: str, path: str) -> None:
    """Refuse blocks nested deeper than :data:`~wsreplay.program.MAX_NESTING`, at the first
    such block in the file: everything that walks the model (the writer, ``walk``,
    ``flatten``, the linter) recurses once per block, so this keeps them off Python's
    recursion limit. Iterative itself: the parser builds any depth without recursing."""
    first = None
    stack = [(steps, 1)]
    while stack:
        body, depth = stack.pop()
        for step in body:
            if not isinstance(step, (m.Repeat, m.Unordered)):
                continue
            if depth > MAX_NESTING:
                if first is None or step.pos.line < first.pos.line:
                    first = step
            else:
                stack.append((step.steps, depth + 1))
    if first is not None:
        line = _line(source, first.pos.line)
        col = len(line) - len(line.lstrip(" \t")) + 1
        raise ScenarioSyntaxError(
            f"blocks nest more than {MAX_NESTING} deep here: repeat and unordered blocks nest "
            f"at most {MAX_NESTING} deep", m.Pos(path, first.pos.line, col),
            source_line=line, hint="merge nested blocks (repeat 2 around repeat 3 is repeat 6)")


@contextlib.contextmanager
def _no_gc():
    # Parsing allocates many small acyclic objects; the cyclic collector would walk them again
    # and again for nothing (a third of the time on a large recording).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _check_header(source: str, path: str) -> None:
    first = source.split("\n", 1)[0]
    words = first.split()
    if len(words) != 2 or words[0] != "wsreplay" or not re.fullmatch("[0-9]+", words[1]):
        raise ScenarioSyntaxError(
            "a scenario file starts with the line `wsreplay 1`", m.Pos(path, 1, 1),
            source_line=first, hint="add `wsreplay 1` as the first line")
    if int(words[1]) > m.FORMAT_VERSION:
        raise FormatVersionError(
            f"this file is in scenario format {words[1]}; this wsreplay reads format "
            f"{m.FORMAT_VERSION} and older", m.Pos(path, 1, 10), source_line=first,
            hint="upgrade wsreplay: pip install --upgrade wsreplay")
    if int(words[1]) < 1:
        raise ScenarioSyntaxError("the format version starts at 1", m.Pos(path, 1, 10),
                                  source_line=first)


def _line(source: str, number: int) -> str:
    lines = source.split("\n")
    return lines[number - 1] if 0 < number <= len(lines) else ""


def _error_from_fail(exc: _Fail, source: str, path: str) -> ScenarioSyntaxError:
    tok = exc.token
    if tok is None:
        return ScenarioSyntaxError(exc.message, m.Pos(path, 1, 1), hint=exc.hint)
    line_off, col = exc.offset
    line = tok.line + line_off
    column = col if (line_off or col) else tok.column
    return ScenarioSyntaxError(exc.message, m.Pos(path, line, max(column, 1)),
                               source_line=_line(source, line), hint=exc.hint)


def _error_from_lark(exc: UnexpectedInput, source: str, path: str) -> ScenarioSyntaxError:
    line, col = max(getattr(exc, "line", 1) or 1, 1), max(getattr(exc, "column", 1) or 1, 1)
    text = _line(source, line)
    from .hints import explain  # deferred: only errors need it

    message, hint = explain(exc, text, col)
    if getattr(getattr(exc, "token", None), "type", None) == "$END" or \
            type(exc).__name__ == "UnexpectedEOF":
        opened = _unclosed_block(source)
        if opened:
            line, col, text = opened, 1, _line(source, opened)
            message = f"this `{text.split()[0]}` block is never closed"
    return ScenarioSyntaxError(message, m.Pos(path, line, col), source_line=text, hint=hint)


_BLOCK_LINE = re.compile(r"[ \t]*(unordered|repeat|end)\b")


def _unclosed_block(source: str) -> int | None:
    """The line of the innermost ``unordered``/``repeat`` with no ``end`` (fenced payloads
    skipped), for the error at the end of the file."""
    stack: list[int] = []
    fence = None
    for number, line in enumerate(source.split("\n"), 1):
        stripped = line.strip()
        if fence is not None:
            fence = None if stripped == fence else fence
            continue
        tail = stripped.rsplit(" ", 1)[-1]
        if tail.startswith("```") and set(tail) == {"`"} and stripped != tail:
            fence = tail
            continue
        hit = _BLOCK_LINE.match(line)
        if hit and hit.group(1) == "end":
            if stack:
                stack.pop()
        elif hit:
            stack.append(number)
    return stack[-1] if stack else None


__all__ = ["parse", "parse_time", "parse_duration", "ScenarioError"]
