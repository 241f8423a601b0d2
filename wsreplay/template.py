"""Placeholders (``{{...}}``) and markers (``#string``): parsing, rendering, text patterns.

A *template* is a string that may hold placeholders:

* ``{{name}}`` — a variable's value;
* ``{{#marker}}`` — (expect only) a value the marker accepts;
* ``{{name = #marker}}`` — (expect only) a value the marker accepts, stored in ``name``;
* ``{{'{{'}}`` — a literal ``{{``.

Inside a placeholder, braces balance (so ``{{#regex \\d{2}}}`` ends after the pattern, and
``{"n":{{n}}}`` after ``n``); a backslash escapes the next character. A *marker* is a JSON
string value starting with ``#`` (``"##x"`` is the literal string ``#x``).

Callers get :func:`placeholders` (with offsets, for linting), :func:`render_text` and
:func:`render_json_source` (for sending), :func:`text_pattern` (for matching text) and
:func:`classify_json_string` (for matching JSON). Errors are :class:`TemplateError` with
the offset of the offending placeholder in the string.
"""

from __future__ import annotations

import json
import random
import re
import string
import uuid
from collections import ChainMap
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

from .patterns import Pattern, PatternError, compiled

MARKERS = ("string", "number", "boolean", "null", "array", "object", "uuid", "any", "absent",
           "regex")
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
LITERAL_BRACES = "{{'{{'}}"
UUID_RE = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
NUMBER_RE = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_UUID = re.compile(UUID_RE + r"\Z")


class TemplateError(ValueError):
    """A template or marker is wrong, or cannot be used here; ``offset`` is where, in the
    string (0 when the whole string is at fault)."""

    def __init__(self, message: str, offset: int = 0):
        super().__init__(message)
        self.message = message
        self.offset = offset


class BadPattern(TemplateError):
    """RE2 refuses a pattern (``regex`` line, ``#regex`` marker, text template)."""


@dataclass(frozen=True, slots=True)
class Marker:
    """A typed wildcard: ``kind`` is one of :data:`MARKERS`; ``pattern`` the regex of
    ``#regex``."""

    kind: str
    pattern: str | None = None
    example: str | None = None

    def accepts(self, value: Any) -> bool:
        """Whether the JSON ``value`` is one this marker matches (``#absent`` never does:
        it is about a key, see the matchers)."""
        kind = self.kind
        if kind == "any":
            return True
        if kind == "string":
            return isinstance(value, str)
        if kind == "number":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind == "boolean":
            return isinstance(value, bool)
        if kind == "null":
            return value is None
        if kind == "array":
            return isinstance(value, list)
        if kind == "object":
            return isinstance(value, dict)
        if kind == "uuid":
            return isinstance(value, str) and _UUID.match(value) is not None
        if kind == "regex":
            return isinstance(value, str) and compiled_regex(self.pattern).fullmatch(value) is not None
        return False

    def __str__(self) -> str:
        return f"#{self.kind}" + (f" {self.pattern}" if self.pattern is not None else "")


def compiled_regex(pattern: str) -> Pattern:
    """``pattern`` compiled on RE2 (linear time; ``.`` matches newlines), from the package's
    one cache; raises :class:`TemplateError` for a pattern RE2 refuses."""
    try:
        return compiled(pattern)
    except PatternError as exc:
        raise BadPattern(f"bad pattern: {exc.message}") from None


@lru_cache(maxsize=1024)
def parse_marker(text: str) -> Marker:
    """The marker spelled ``text`` (``#string``, ``#regex ^a+$``...); raises
    :class:`TemplateError` for an unknown marker or a bad pattern."""
    if not text.startswith("#"):
        raise TemplateError(f"not a marker: {text!r}")
    text, example = _split_example(text)
    kind, _, rest = text[1:].partition(" ")
    if kind == "regex":
        if not rest:
            raise TemplateError("#regex needs a pattern: #regex PATTERN")
        try:
            compiled(rest)
        except PatternError as exc:
            raise BadPattern(f"bad pattern in #regex: {exc.message}") from None
        return Marker("regex", rest, example)
    if kind not in MARKERS or rest:
        hint = _did_you_mean(kind)
        raise TemplateError(f"unknown marker #{text[1:]}" + (f" (did you mean #{hint}?)"
                                                             if hint else ""))
    if kind == "absent" and example is not None:
        raise TemplateError("#absent takes no example: sent, it leaves the key out")
    return Marker(kind, None, example)


_LIKE = " like "


def _split_example(text: str) -> tuple[str, str | None]:
    """``#number like 42`` -> ``("#number", "42")``: the last `` like `` starts the example
    (so a ``#regex`` pattern may hold the word itself when an example follows it)."""
    head, sep, tail = text.rpartition(_LIKE)
    if sep and head.strip() and head.lstrip().startswith("#"):
        if not tail.strip():
            raise TemplateError("`like` needs an example: {{#number like 42}}")
        return head.rstrip(), tail.strip()
    if text.rstrip().endswith(" like"):
        raise TemplateError("`like` needs an example: {{#number like 42}}")
    return text, None


def _did_you_mean(word: str) -> str | None:
    import difflib

    close = difflib.get_close_matches(word, MARKERS, n=1)
    return close[0] if close else None


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One ``{{...}}`` at ``start``..``end`` (offsets in its string, ``end`` exclusive).

    Exactly one shape: ``literal`` set (``{{'{{'}}``); ``name`` only (a variable);
    ``marker`` only (a wildcard); ``name`` and ``marker`` (a capture).
    """

    start: int
    end: int
    name: str | None = None
    marker: Marker | None = None
    literal: str | None = None

    @property
    def kind(self) -> str:
        if self.literal is not None:
            return "literal"
        if self.marker is None:
            return "var"
        return "capture" if self.name else "marker"


Part = str | Placeholder


def _closing(source: str, start: int) -> int:
    """The offset just after the ``}}`` closing the placeholder opened at ``start``."""
    depth, i, n = 0, start + 2, len(source)
    while i < n:
        ch = source[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "}" and depth == 0 and source.startswith("}}", i):
            return i + 2
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        i += 1
    raise TemplateError("unclosed placeholder: '{{' without '}}'", start)


def _placeholder(source: str, start: int, end: int) -> Placeholder:
    inner = source[start + 2 : end - 2].strip()
    if inner.startswith("#"):
        return Placeholder(start, end, marker=_marker_at(inner, start))
    name, eq, marker = inner.partition("=")
    name, marker = name.strip(), marker.strip()
    if not NAME_RE.match(name):
        shown = source[start:end]
        raise TemplateError(f"bad placeholder {shown}: expected {{{{name}}}}, {{{{#marker}}}} "
                            f"or {{{{name = #marker}}}}", start)
    if not eq:
        return Placeholder(start, end, name=name)
    if not marker.startswith("#"):
        raise TemplateError(f"a capture needs a marker: {{{{{name} = #string}}}}", start)
    return Placeholder(start, end, name=name, marker=_marker_at(marker, start))


def _marker_at(text: str, offset: int) -> Marker:
    try:
        return parse_marker(text)
    except TemplateError as exc:
        raise TemplateError(exc.message, offset) from None


@lru_cache(maxsize=4096)
def parts(source: str) -> tuple[Part, ...]:
    """The template split into literal strings and :class:`Placeholder` s, in order.
    Raises :class:`TemplateError` for an unclosed or malformed placeholder."""
    out: list[Part] = []
    i = 0
    while True:
        j = source.find("{{", i)
        if j < 0:
            break
        if j > i:
            out.append(source[i:j])
        if source.startswith(LITERAL_BRACES, j):
            end = j + len(LITERAL_BRACES)
            out.append(Placeholder(j, end, literal="{{"))
        else:
            end = _closing(source, j)
            out.append(_placeholder(source, j, end))
        i = end
    if i < len(source):
        out.append(source[i:])
    return tuple(out)


def placeholders(source: str) -> list[Placeholder]:
    """Every placeholder in ``source`` with its offsets (for ``wsreplay check``)."""
    return [p for p in parts(source) if isinstance(p, Placeholder)]


def has_placeholders(source: str) -> bool:
    return "{{" in source


def value_as_text(value: Any) -> str:
    """How a variable's value is written into text: strings as they are, others as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _lookup(ph: Placeholder, variables: Mapping[str, Any]) -> Any:
    return lookup(ph.name, variables, ph.start)


def lookup(name: str, variables: Mapping[str, Any], offset: int = 0) -> Any:
    """A variable's value in text and JSON: bytes (captured from a ``hex`` template) read as
    their UTF-8 text. Raises :class:`TemplateError` (undefined, or bytes not UTF-8)."""
    if name not in variables:
        raise TemplateError(f"undefined variable {name!r}", offset)
    value = variables[name]
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise TemplateError(f"variable {name!r} holds bytes that are not UTF-8 text "
                                f"({bytes(value)[:16].hex()}): use it in a hex line",
                                offset) from None
    return value


# --- sending: the value a marker or a capture sends -----------------------------------

ABSENT = object()  # what ``"#absent"`` sends: the key is left out
_RNG = random.Random()
_ALNUM = string.ascii_letters + string.digits
_JSON_EXAMPLES = ("number", "boolean", "null", "array", "object")


def example_value(marker: Marker, in_json: bool) -> tuple[Any, str]:
    """What ``marker``'s example (``like EXAMPLE``) sends: ``(value, text)``, the value a
    capture binds and the text written into a text template. In a JSON value, examples of
    ``#number #boolean #null #array #object`` are JSON (``#any``'s too when they parse);
    the others are strings. Raises :class:`TemplateError` when the marker rejects it."""
    raw = marker.example
    if in_json:
        value: Any = raw
        if marker.kind in _JSON_EXAMPLES or marker.kind == "any":
            try:
                value = json.loads(raw)
            except ValueError:
                if marker.kind != "any":
                    raise TemplateError(f"the example of #{marker.kind} is JSON: {raw!r} is "
                                        f"not (write {{{{#{marker.kind} like 42}}}})") from None
        if not marker.accepts(value):
            raise TemplateError(f"{marker} does not accept its example {raw!r}")
        return value, value_as_text(value)
    if marker.kind == "any":
        return raw, raw
    if compiled_regex(_marker_regex(marker, 0)).fullmatch(raw) is None:
        raise TemplateError(f"{marker} does not accept its example {raw!r}")
    return _typed(raw, marker), raw


def fresh_value(marker: Marker, rng: random.Random | None = None,
                in_json: bool = True) -> Any:
    """A value of ``marker``'s type to send, new each time: 12 random letters and digits for
    ``#string``, an integer in 1..2**31-1 for ``#number``, a random UUID4 for ``#uuid``,
    ``true``, ``null``, ``[]``, ``{}``; ``#any`` sends ``null`` (in text: nothing) and
    ``#absent`` :data:`ABSENT`. Raises :class:`TemplateError` for ``#regex`` (no example:
    nothing can be made up that surely matches) and for what text cannot hold."""
    rng = rng or _RNG
    kind = marker.kind
    if not in_json and kind in ("array", "object", "absent"):
        raise TemplateError(f"#{kind} cannot be written in text (use a json line)")
    if kind == "string":
        return "".join(rng.choice(_ALNUM) for _ in range(12))
    if kind == "number":
        return rng.randint(1, 2**31 - 1)
    if kind == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if kind == "regex":
        raise TemplateError(f"{marker} cannot be sent without an example: add one, as in "
                            f"{{{{#regex {marker.pattern} like EXAMPLE}}}}")
    return {"boolean": True, "null": None, "array": [], "object": {}, "absent": ABSENT,
            "any": None if in_json else ""}[kind]


def sent_value(marker: Marker, name: str | None, rng: random.Random | None,
               overrides: Mapping[str, Any] | None, in_json: bool) -> tuple[Any, str]:
    """``(value, text)`` a marker or capture sends: the command line's value of ``name``
    (``--var``), else the example, else a fresh value."""
    if name and overrides and name in overrides:
        value = overrides[name]
        return value, value_as_text(value)
    if marker.example is not None:
        return example_value(marker, in_json)
    value = fresh_value(marker, rng, in_json)
    return value, "" if value is ABSENT else value_as_text(value)


def check_sendable(marker: Marker, in_json: bool) -> None:
    """Raise :class:`TemplateError` when ``marker`` cannot be sent (``#regex`` with no
    example, an example the marker rejects, a type text cannot hold)."""
    if marker.example is not None:
        example_value(marker, in_json)
    else:
        fresh_value(marker, random.Random(0), in_json)


def render_text(source: str, variables: Mapping[str, Any], bind: dict | None = None,
                rng: random.Random | None = None,
                overrides: Mapping[str, Any] | None = None) -> str:
    """``source`` with every placeholder replaced (for sending): a variable's value, and
    for a marker or a capture the value :func:`sent_value` gives; a capture's value goes
    into ``bind`` (when given) and is visible to the rest of the template. Raises
    :class:`TemplateError` for an undefined variable or a marker that cannot be sent."""
    if "{{" not in source:
        return source
    scope = variables if bind is None else ChainMap(bind, variables)
    out = []
    for part in parts(source):
        if isinstance(part, str):
            out.append(part)
        elif part.literal is not None:
            out.append(part.literal)
        elif part.marker is None:
            out.append(value_as_text(_lookup(part, scope)))
        else:
            try:
                value, text = sent_value(part.marker, part.name, rng, overrides, False)
            except TemplateError as exc:
                raise TemplateError(exc.message, part.start) from None
            out.append(text)
            if part.name and bind is not None:
                bind[part.name] = value
    return "".join(out)


# --- matching text --------------------------------------------------------------------

_TEXT_MARKER_RE = {
    "number": NUMBER_RE,
    "boolean": "true|false",
    "null": "null",
    "uuid": UUID_RE,
    "string": r'(?:[^"\\\n]|\\.)*?',
    "any": ".*?",
}


def _marker_regex(marker: Marker, offset: int) -> str:
    if marker.kind == "regex":
        return marker.pattern or ""
    if marker.kind not in _TEXT_MARKER_RE:
        raise TemplateError(f"#{marker.kind} cannot be matched in text (use #any, or a json "
                            "line)", offset)
    return _TEXT_MARKER_RE[marker.kind]


@dataclass(frozen=True, slots=True)
class TextPattern:
    """A compiled text template: ``regex`` (RE2, fullmatch, ``.`` matching newlines) and
    ``captures``, the regex group name -> (variable name, marker) of each capture."""

    regex: Pattern
    captures: tuple[tuple[str, str, Marker], ...]

    def match(self, text: str) -> dict[str, Any] | None:
        """The captured variables (typed: ``#number`` gives a number) when ``text`` matches
        as a whole, else None."""
        m = self.regex.fullmatch(text)
        if m is None:
            return None
        return {name: _typed(m.group(group), marker) for group, name, marker in self.captures}


def _typed(raw: str, marker: Marker) -> Any:
    if marker.kind in ("number", "boolean", "null"):
        return json.loads(raw)
    return raw


def text_pattern(source: str, variables: Mapping[str, Any]) -> TextPattern:
    """The pattern a received text must match for template ``source``, with variables'
    current values. Raises :class:`TemplateError` (undefined variable, bad marker).

    Literal text is escaped with ``re.escape``, whose output RE2 reads as the same literal;
    the whole template is one RE2 pattern, so matching is linear in the text however many
    ``#any`` it holds."""
    regex, captures = [], []
    for part in parts(source):
        if isinstance(part, str):
            regex.append(re.escape(part))
        elif part.literal is not None:
            regex.append(re.escape(part.literal))
        elif part.marker is None:
            regex.append(re.escape(value_as_text(_lookup(part, variables))))
        else:
            body = _marker_regex(part.marker, part.start)
            if part.name:
                group = f"_wsr{len(captures)}"
                captures.append((group, part.name, part.marker))
                regex.append(f"(?P<{group}>{body})")
            else:
                regex.append(f"(?:{body})")
    return TextPattern(compiled_regex("".join(regex)), tuple(captures))


# --- JSON strings ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JsonString:
    """What a JSON string value in a scenario means: ``kind`` is ``"literal"`` (``text`` is
    the plain string), ``"marker"`` (``marker``), ``"single"`` (exactly one placeholder,
    ``placeholder``: the value replaces the whole string) or ``"template"`` (``text`` is a
    text template)."""

    kind: str
    text: str = ""
    marker: Marker | None = None
    placeholder: Placeholder | None = None


@lru_cache(maxsize=4096)
def classify_json_string(value: str) -> JsonString:
    """Classify a JSON string value from a scenario; raises :class:`TemplateError`."""
    if value.startswith("#"):
        if value.startswith("##"):
            value = value[1:]
        else:
            return JsonString("marker", marker=parse_marker(value))
    if "{{" not in value:
        return JsonString("literal", value)
    ps = parts(value)
    if len(ps) == 1 and isinstance(ps[0], Placeholder) and ps[0].literal is None:
        return JsonString("single", value, placeholder=ps[0])
    if all(isinstance(p, str) or p.literal is not None for p in ps):
        return JsonString("literal", "".join(p if isinstance(p, str) else p.literal
                                             for p in ps))
    return JsonString("template", value)


def render_json_value(value: Any, variables: Mapping[str, Any], bind: dict | None = None,
                      rng: random.Random | None = None,
                      overrides: Mapping[str, Any] | None = None) -> Any:
    """A parsed JSON value with its placeholders and markers replaced (for sending), as
    :func:`render_text` does; ``"#absent"`` leaves its key out. Object keys are literal.
    Raises :class:`TemplateError` for undefined variables and markers that cannot be
    sent."""
    if bind is None:
        bind = {}
    out = _render_json(value, variables, bind, rng, overrides)
    if out is ABSENT:
        raise TemplateError("#absent stands for a key left out: it is an object value only")
    return out


def _render_json(value: Any, variables: Mapping[str, Any], bind: dict,
                 rng: random.Random | None, overrides: Mapping[str, Any] | None) -> Any:
    if isinstance(value, str):
        js = classify_json_string(value)
        if js.kind == "marker":
            return sent_value(js.marker, None, rng, overrides, True)[0]
        if js.kind == "single":
            ph = js.placeholder
            if ph.marker is None:
                return _lookup(ph, ChainMap(bind, variables))
            sent = sent_value(ph.marker, ph.name, rng, overrides, True)[0]
            if ph.name:
                bind[ph.name] = sent
            return sent
        if js.kind == "literal":
            return js.text
        return render_text(js.text, variables, bind, rng, overrides)
    if isinstance(value, list):
        items = [_render_json(v, variables, bind, rng, overrides) for v in value]
        if any(item is ABSENT for item in items):
            raise TemplateError("#absent stands for a key left out: it is an object value "
                                "only")
        return items
    if isinstance(value, dict):
        rendered = ((k, _render_json(v, variables, bind, rng, overrides))
                    for k, v in value.items())
        return {k: v for k, v in rendered if v is not ABSENT}
    return value


_STRING_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_AFTER_KEY = re.compile(r"\s*:")


def render_json_source(source: str, variables: Mapping[str, Any], bind: dict | None = None,
                       rng: random.Random | None = None,
                       overrides: Mapping[str, Any] | None = None) -> str:
    """The JSON text to send for ``source``: the source itself, byte for byte, where it
    holds no placeholder and no ``#``-string; otherwise the source with only those string
    tokens rewritten (formatting kept), or, when an ``"#absent"`` leaves a key out, the
    value written compactly. Captures go into ``bind``, as :func:`render_text` says.
    Raises :class:`TemplateError` (undefined variables, markers that cannot be sent)."""
    if "{{" not in source and '"#' not in source:
        return source
    if bind is None:
        bind = {}
    if '"#absent' in source:
        value = render_json_value(json.loads(source), variables, bind, rng, overrides)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    out, last = [], 0
    for m in _STRING_TOKEN.finditer(source):
        if _AFTER_KEY.match(source, m.end()):
            continue  # object keys are literal
        token = m.group()
        if "{{" not in token and not token.startswith('"#'):
            continue
        try:
            value = json.loads(token)
        except ValueError:
            continue
        try:
            rendered = render_json_value(value, variables, bind, rng, overrides)
        except TemplateError as exc:
            raise TemplateError(exc.message, m.start() + 1 + exc.offset) from None
        out.append(source[last : m.start()])
        out.append(json.dumps(rendered, ensure_ascii=False, separators=(",", ":")))
        last = m.end()
    out.append(source[last:])
    return "".join(out)


def json_strings(value: Any, path: str = "$"):
    """Yield ``(path, string)`` for every string value (not key) in a parsed JSON value,
    so a linter can check markers and placeholders."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from json_strings(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from json_strings(item, join_path(path, key))


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def join_path(path: str, key: str | int) -> str:
    """``$.a`` + ``b`` -> ``$.a.b``; odd keys are quoted (``$["a b"]``), indexes
    bracketed."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENT.match(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"
