"""Payloads as the language writes them: observed message bytes → ``text``, ``json`` or binary
payloads whose templates stand for exactly those bytes.

Everything that turns recorded text into template text goes through :func:`escape_template`
(text, URLs, header values) and :func:`json_template` (JSON payloads): a literal ``{{`` becomes
``{{'{{'}}`` and a JSON string value starting with ``#`` gets its ``#`` doubled, so a recorded
message is never read back as a placeholder or a marker. Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Callable

import orjson

from . import model as m
from .codecs import CODECS, decoded
from .redact import Redaction, credentials

HEX_MAX = 64  # binary messages up to this size are written in hex, larger ones in base64


# --- template escaping (the one place that knows it) ----------------------------------------

_PLACEHOLDER_ESCAPE = "{{'{{'}}"


def escape_template(text: str) -> str:
    """``text`` as a template that stands for exactly ``text``: every ``{{`` escaped."""
    return text.replace("{{", _PLACEHOLDER_ESCAPE) if "{{" in text else text


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
# A raw JSON string token that might decode to something needing an escape.
_MAYBE_SPECIAL = re.compile(r'^"(?:#|\\u0023)|\{\{|\\u007[bB]')
_ESCAPED_SPECIAL = re.compile(r"\\u00(?:23|7[bB])")
_JSON_WS = " \t\r\n"


def json_template(source: str, name_for: Callable[[str, str], str] | None = None,
                  redaction: Redaction | None = None) -> str:
    """JSON text → the same JSON as a ``json`` payload template.

    String values starting with ``#`` get the ``#`` doubled (a literal, not a marker), ``{{``
    inside string values is escaped. With ``redaction``, the string value of an object key it
    names becomes ``"{{NAME}}"``, and credentials inside other string values (a JWT, a bearer
    token...) become placeholders where they stand, ``NAME`` from ``name_for(key, value)``.
    Everything else keeps its exact bytes. ``source`` must be valid JSON.
    """
    secrets = redaction is not None and redaction.enabled and redaction.might_hold(source)
    if not secrets and "#" not in source and "{{" not in source \
            and not _ESCAPED_SPECIAL.search(source):
        return source
    out, last, key = [], 0, None
    for match in _JSON_STRING.finditer(source):
        start, end = match.span()
        raw = match.group()
        if _next_char(source, end) == ":":
            key = orjson.loads(raw) if secrets else None
            continue
        new = raw
        if secrets and key is not None and redaction.field(key) \
                and _prev_char(source, start) == ":" and len(raw) > 2:
            new = '"{{' + name_for(key, orjson.loads(raw)) + '}}"'
        elif secrets and redaction.shapes and "\\" not in raw and credentials(
                raw[1:-1], redaction.text_keys):
            inner = redaction.text(raw[1:-1], name_for, _escape_json_piece)
            if raw.startswith('"#') and not inner.startswith("##"):
                inner = "#" + inner  # a literal leading #, as _escape_json_string spells it
            new = '"' + inner + '"'
        elif _MAYBE_SPECIAL.search(raw):
            new = _escape_json_string(raw)
        if new is not raw:
            out += (source[last:start], new)
            last = end
    if not out:
        return source
    out.append(source[last:])
    return "".join(out)


def _escape_json_piece(raw: str) -> str:
    """A piece of a raw JSON string (no backslashes) between placeholders: ``{{`` escaped, and
    a leading ``#`` doubled where it starts the string."""
    return raw.replace("{{", _PLACEHOLDER_ESCAPE) if "{{" in raw else raw


_JSON_BLANKS = str.maketrans("", "", _JSON_WS)


def compact_json(source: str) -> str:
    """A JSON text, or a ``json`` template made from one, without the blanks between its
    tokens: the same value (and placeholders) on one line. String values, numbers and
    placeholders keep their exact spelling."""
    out, last = [], 0
    for match in _JSON_STRING.finditer(source):
        start, end = match.span()
        out += (source[last:start].translate(_JSON_BLANKS), match.group())
        last = end
    out.append(source[last:].translate(_JSON_BLANKS))
    return "".join(out)


def _escape_json_string(raw: str) -> str:
    value = orjson.loads(raw)
    if "{{" in value:
        if "\\u007" in raw.lower():  # a brace spelled as an escape: re-spell this one string
            raw = orjson.dumps(value.replace("{{", _PLACEHOLDER_ESCAPE)).decode()
        else:  # no escape produces a brace, so raw "{{" and decoded "{{" are the same ones
            raw = raw.replace("{{", _PLACEHOLDER_ESCAPE)
    if value.startswith("#"):
        raw = '"#' + raw[1:]
    return raw


def _next_char(text: str, i: int) -> str:
    while i < len(text) and text[i] in _JSON_WS:
        i += 1
    return text[i] if i < len(text) else ""


def _prev_char(text: str, i: int) -> str:
    i -= 1
    while i >= 0 and text[i] in _JSON_WS:
        i -= 1
    return text[i] if i >= 0 else ""


# --- payloads ---------------------------------------------------------------------------

class BadText(ValueError):
    """A text message that is not valid UTF-8: ``index`` is its place in the batch;
    ``pending`` what to await before forwarding the messages before it (or None)."""

    def __init__(self, index: int, pending=None):
        super().__init__("invalid UTF-8 in a text message")
        self.index, self.pending = index, pending


# Only objects and arrays are recorded as ``json``: a bare number or word (Engine.IO's ping
# ``2``, Socket.IO's ``40``) is a protocol's text, and the report shows it as text too.
_JSON_START = frozenset(b"{[")
# Characters that keep a JSON text from being recorded as ``json`` (the writer would have to
# put them raw on a line): carriage returns; raw controls are invalid JSON anyway.
_NOT_JSON_LINE = re.compile(r"[\r\x85\u2028\u2029]")


def text_payload(data: bytes, name_for: Callable[[str, str], str] | None = None,
                 redaction: Redaction | None = None) -> m.Text | m.Json:
    """The payload standing for exactly the UTF-8 text ``data``: a JSON object or array as
    ``json``, other text (a bare JSON number, string or word included) as ``text``, both as
    templates that render to the very same text, secrets redacted (see :mod:`wsreplay.redact`)
    through ``name_for`` when ``redaction`` is given. Raises UnicodeDecodeError for other
    bytes."""
    text = data.decode("utf-8")
    if data and data[0] in _JSON_START and not text[-1].isspace() \
            and not _NOT_JSON_LINE.search(text):
        try:
            orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
        else:
            return m.Json(json_template(text, name_for, redaction))
    if redaction is not None and redaction.enabled and redaction.might_hold(text):
        return m.Text(redaction.text(text, name_for, escape_template))
    return m.Text(escape_template(text))


CODEC_MAX = 1 << 16  # bigger binary frames are written as they are, never decoded


def codec_order(protocol: str | None) -> tuple[str, ...]:
    """The codecs to try on a connection's binary frames: the one its negotiated subprotocol
    names first (``msgpack``/``messagepack``, ``cbor``); none when it names another protocol
    (``mqtt``: its packets are not MessagePack, even when a byte reads as one); else
    MessagePack then CBOR."""
    low = (protocol or "").lower()
    msgpack, cbor = "msgpack" in low or "messagepack" in low, "cbor" in low
    if cbor and not msgpack:
        return ("cbor", "msgpack")
    if msgpack or not low:
        return CODECS
    return ()


def codec_payload(data: bytes, codecs: tuple[str, ...] = CODECS,
                  name_for: Callable[[str, str], str] | None = None,
                  redaction: Redaction | None = None) -> m.Json | None:
    """A ``msgpack`` or ``cbor`` payload standing for exactly the binary frame ``data`` (see
    :func:`~wsreplay.codecs.recordable`), secrets redacted as in :func:`json_template`; None
    otherwise. A frame that decodes but would not encode back to the very same bytes is
    still written in its codec when it holds a secret: the same value, the secret a variable
    -- as hex the secret would stand in the file, readable."""
    inexact = None  # (codec, JSON text) of the first frame that decodes but not exactly
    for codec in codecs:
        value, exact = decoded(codec, data)
        if value is None or (not value and len(data) < 2):
            continue  # a lone 0x90 or 0x80 (an empty container) is more often not the codec
        text = orjson.dumps(value).decode("utf-8")
        if _NOT_JSON_LINE.search(text):  # a line separator orjson leaves raw: not on a
            continue  # scenario line; the frame is written as bytes
        if exact:
            return m.Json(json_template(text, name_for, redaction), codec=codec)
        inexact = inexact or (codec, text)
    if inexact is not None and redaction is not None and redaction.enabled \
            and redaction.might_hold(inexact[1]):
        named = []

        def naming(key: str, value: str) -> str:
            named.append(key)
            return name_for(key, value)
        source = json_template(inexact[1], naming, redaction)
        if named:  # a secret was in it: written in the codec, redacted
            return m.Json(source, codec=inexact[0])
    return None


def binary_payload(data: bytes) -> m.Binary:
    """A binary payload: ``hex`` up to 64 bytes, ``b64`` beyond."""
    notation = m.BinaryNotation.HEX if len(data) <= HEX_MAX else m.BinaryNotation.B64
    return m.Binary(bytes(data), notation)


def one_line_payload(payload: m.Text | m.Json, data: bytes) -> m.Text | m.Json:
    """``payload`` (a text message: ``data``) to be written on one line: a fenced step longer
    than a page could be cut between its lines by a kill, leaving a file that does not parse,
    whereas the sink writes a line kill-safe. JSON holding placeholders (redacted values)
    stays JSON, its blanks left out (the same value, matched as JSON, the variables kept);
    text keeps its template (the writer quotes it); other JSON is quoted as text, exactly as
    recorded."""
    if isinstance(payload, m.Json):
        if "{{" in payload.source:
            return m.Json(compact_json(payload.source))
        return m.Text(escape_template(data.decode("utf-8")))
    return payload
