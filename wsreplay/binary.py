"""Binary templates: ``hex`` payloads with placeholders and length-prefixed groups. Pure.

A ``hex`` payload holding anything but hex digits and blanks is a *binary template*, made of
these items (blanks between them optional)::

    00 04  0004             fixed bytes: hex digit pairs
    "MQTT"                  fixed bytes: a JSON string literal, as UTF-8
    {{#bytes 2}}            any 2 bytes          {{pid = #bytes 2}}  the same, captured
    {{#bytes}}              any bytes (below)    {{cid = #bytes}}    the same, captured
    {{pid}}                 a variable's value as bytes (bytes as they are, a string as UTF-8)
    {{pid = #bytes 2 like 0001}}   an example, sent in place of a fresh value
    u8( ... ) u16( ... ) u16le( ... ) u32( ... ) u32le( ... ) varint( ... )
                            the length of the bytes inside, then those bytes (``varint``: the
                            MQTT variable byte integer, 1-4 bytes); nested freely

Matching (:func:`match`) walks the items left to right, once, with no backtracking, so it is
linear in the message size. An unsized ``#bytes`` takes: all but the last W bytes of its group
(or message) when everything after it there has a known size W; else up to the first
occurrence of the fixed bytes right after it; else the rest of its group or message.

Sending (:func:`render`): fixed bytes as written; ``#bytes N`` N random bytes, unsized
``#bytes`` 8 random letters and digits (or the example, or a ``--var`` override of the
capture's name); lengths computed; a capture binds what is sent.

Errors in a template are :class:`~wsreplay.template.TemplateError` with the offset of the bad
item in the template string.
"""

from __future__ import annotations

import json
import random
import re
import string
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

from .matchers import MatchResult
from .template import NAME_RE, TemplateError

GROUPS = {"u8": (1, "big"), "u16": (2, "big"), "u16le": (2, "little"), "u32": (4, "big"),
          "u32le": (4, "little"), "varint": (0, "")}
VARINT_MAX = 268_435_455  # 4 bytes of 7 bits: MQTT's largest remaining length
MAX_DEPTH = 32  # nested groups: deeper is a mistake, and would exhaust the stack
MAX_BYTES = 1 << 24  # a #bytes N larger than this is surely a typo (and would be sent)
_ALNUM = string.ascii_letters + string.digits
_HEX = frozenset("0123456789abcdefABCDEF")
_BLANKS = frozenset(" \t\n")
_WORD = re.compile(r"[A-Za-z0-9_]+")
_LIKE = re.compile(r"\s+like(?:\s+|$)")
FORMS = ('a hex line holds hex pairs, or a binary template with "strings", {{#bytes N}}, '
         '{{name = #bytes}}, {{name}} and u8( ) u16( ) varint( ) groups: see "Binary '
         'templates" in docs/language.md')


# --- the parsed template ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fixed:
    """Bytes as written (hex pairs and string literals, merged)."""

    data: bytes
    start: int


@dataclass(frozen=True, slots=True)
class Var:
    """``{{name}}``: a variable's value, as bytes."""

    name: str
    start: int


@dataclass(frozen=True, slots=True)
class Wild:
    """``{{[name =] #bytes [N] [like EXAMPLE]}}``; ``size`` None is unsized."""

    size: int | None
    name: str | None
    example: bytes | None
    start: int


@dataclass(frozen=True, slots=True)
class Group:
    """``KIND( ... )``: a length prefix, then ``items``."""

    kind: str
    items: tuple
    start: int


Item = Fixed | Var | Wild | Group


def is_template(text: str) -> bool:
    """Whether a ``hex`` payload is a template (holds anything but hex digits and blanks)."""
    return any(ch not in _HEX and ch not in _BLANKS for ch in text)


@lru_cache(maxsize=1024)
def parse_template(source: str) -> tuple[Item, ...]:
    """The items of a binary template; raises :class:`TemplateError` with the offset."""
    items, _ = _Scanner(source).items(0, None)
    return items


def names(source: str) -> list[tuple[str, str, int]]:
    """``(kind, name, offset)`` for each named placeholder, in order: kind ``"var"`` (a
    variable used) or ``"capture"``. Raises :class:`TemplateError`."""
    out: list[tuple[str, str, int]] = []

    def visit(items):
        for item in items:
            if isinstance(item, Var):
                out.append(("var", item.name, item.start))
            elif isinstance(item, Wild) and item.name:
                out.append(("capture", item.name, item.start))
            elif isinstance(item, Group):
                visit(item.items)

    visit(parse_template(source))
    return out


class _Scanner:
    def __init__(self, source: str):
        self.src = source
        self.n = len(source)

    def fail(self, message: str, at: int):
        raise TemplateError(message, at)

    def items(self, i: int, group: tuple[str, int] | None, fixed_only: bool = False,
              stop: int | None = None, depth: int = 0) -> tuple[tuple, int]:
        """Items from ``i`` to ``stop`` (or the ``)`` closing ``group``); the items and the
        offset after them."""
        if depth > MAX_DEPTH:
            self.fail(f"groups nest at most {MAX_DEPTH} deep", group[1])
        src, end = self.src, self.n if stop is None else stop
        out: list = []
        digits: list[str] = []
        run_at = last_digit = 0

        def flush():
            if len(digits) % 2:
                self.fail(f"an odd number of hex digits ({len(digits)}): each byte is two",
                          last_digit)
            if digits:
                self.add(out, Fixed(bytes.fromhex("".join(digits)), run_at))
                digits.clear()

        while i < end:
            ch = src[i]
            if ch in _BLANKS:
                i += 1
                continue
            if ch in _HEX:
                if not digits:
                    run_at = i
                digits.append(ch)
                last_digit = i
                i += 1
                continue
            word = _WORD.match(src, i)
            name = word.group() if word else ch
            opens = src.startswith("{{", i) or name in GROUPS
            if ch not in '")' and (fixed_only or not opens):  # junk first, then odd digits
                if fixed_only:
                    self.fail(f"{ch!r} is not a hex digit: an example is hex pairs and "
                              '"strings"', i)
                self.fail(f"{ch!r} is not a hex digit", i)
            flush()
            if ch == '"':
                i = self.string(out, i, end)
            elif ch == ")" and group is not None:
                return tuple(out), i + 1
            elif ch == ")":
                self.fail("')' closes no group", i)
            elif name in GROUPS:
                after = word.end()
                if not src.startswith("(", after):
                    self.fail(f"{name} takes its bytes in parentheses: {name}( ... )", i)
                inner, i = self.items(after + 1, (name, i), depth=depth + 1)
                out.append(Group(name, inner, word.start()))
            else:
                i = self.placeholder(out, i)
        flush()
        if group is not None:
            self.fail(f"this {group[0]}( group is never closed: add ')'", group[1])
        return tuple(out), i

    @staticmethod
    def add(out: list, item: Fixed) -> None:
        if out and isinstance(out[-1], Fixed):
            out[-1] = Fixed(out[-1].data + item.data, out[-1].start)
        else:
            out.append(item)

    def string(self, out: list, i: int, end: int) -> int:
        src, j = self.src, i + 1
        while j < end and src[j] != '"':
            j += 2 if src[j] == "\\" else 1
        if j >= end:
            self.fail('this string is never closed: add "', i)
        try:
            value = json.loads(src[i:j + 1])
        except ValueError as exc:
            self.fail(f"bad string literal: {str(exc).split(':')[0]}", i)
        self.add(out, Fixed(value.encode("utf-8"), i))
        return j + 1

    def closing(self, i: int) -> int:
        """The offset of the ``}}`` closing the placeholder at ``i`` (strings skipped)."""
        src, j = self.src, i + 2
        while j < self.n:
            if src[j] == '"':
                j += 1
                while j < self.n and src[j] != '"':
                    j += 2 if src[j] == "\\" else 1
            elif src.startswith("}}", j):
                return j
            j += 1
        self.fail("unclosed placeholder: '{{' without '}}'", i)

    def placeholder(self, out: list, i: int) -> int:
        close = self.closing(i)
        body_at = i + 2
        body = self.src[body_at:close]
        example = None
        like = _LIKE.search(body)
        if like is not None:
            ex_at = body_at + like.end()
            ex_items, _ = self.items(ex_at, None, fixed_only=True, stop=close)
            if not ex_items:
                self.fail("`like` needs an example: hex pairs or a \"string\"", body_at +
                          like.start())
            example = ex_items[0].data
            body = body[:like.start()]
        head = body.strip()
        name, eq, marker = head.partition("=")
        if head.startswith("#"):
            name, eq, marker = "", "=", head
        name, marker = name.strip(), marker.strip()
        if name and not NAME_RE.match(name):
            self.fail(f"bad placeholder {{{{{head}}}}}: expected {{{{name}}}}, "
                      "{{#bytes N}} or {{name = #bytes N}}", i)
        if not eq:
            if example is not None:
                self.fail("an example goes with a marker: {{name = #bytes N like HEX}}", i)
            out.append(Var(name, i))
            return close + 2
        out.append(Wild(self.size(marker, i), name or None, example, i))
        wild = out[-1]
        if example is not None and wild.size is not None and len(example) != wild.size:
            self.fail(f"the example holds {len(example)} bytes; #bytes {wild.size} takes "
                      f"{wild.size}", body_at + like.end())
        return close + 2

    def size(self, marker: str, at: int) -> int | None:
        kind, _, count = marker.replace("\t", " ").replace("\n", " ").partition(" ")
        if kind != "#bytes":
            what = f"{kind} " if kind.startswith("#") else ""
            self.fail(f"a binary template takes #bytes markers, not {what or repr(marker)}"
                      .rstrip() + ": {{#bytes N}}, {{#bytes}}, {{name = #bytes N}}", at)
        count = count.strip()
        if not count:
            return None
        if not count.isdigit() or not count.isascii() or not 0 < int(count) <= MAX_BYTES:
            self.fail(f"#bytes takes a count from 1 to {MAX_BYTES}, not {count!r}", at)
        return int(count)


# --- matching ---------------------------------------------------------------------------


class _Miss(Exception):
    def __init__(self, at: int, reason: str):
        self.at, self.reason = at, reason


def match(template: str, data: bytes, variables: Mapping[str, Any]) -> MatchResult:
    """Whether ``data`` is a message the binary ``template`` describes; captures hold
    bytes. A mismatch's reason is ``byte K: expected ..., got ...`` (K the offset in the
    message), its path ``byte K``. Raises :class:`TemplateError` when the template itself is
    wrong (undefined variable, a variable that is not bytes or a string)."""
    items = parse_template(template)
    walk = _Match(data, variables)
    try:
        walk.items(items, 0, len(data), "the message")
    except _Miss as miss:
        score = min(miss.at / max(len(data), 1), 0.99)
        return MatchResult(False, {}, f"byte {miss.at}", f"byte {miss.at}: {miss.reason}",
                           score)
    return MatchResult(True, walk.captures)


def _hex(data: bytes, limit: int = 16) -> str:
    text = data[:limit].hex(" ")
    return text + (" …" if len(data) > limit else "")


class _Match:
    def __init__(self, data: bytes, variables: Mapping[str, Any]):
        self.data, self.variables = data, variables
        self.captures: dict[str, bytes] = {}

    def value(self, item: Var) -> bytes:
        if item.name in self.captures:
            return self.captures[item.name]
        return variable_bytes(item.name, self.variables, item.start)

    def items(self, items: tuple, pos: int, end: int, where: str) -> None:
        data = self.data
        for k, item in enumerate(items):
            if isinstance(item, (Fixed, Var)):
                want = item.data if isinstance(item, Fixed) else self.value(item)
                self.expect(want, pos, end, where, item)
                pos += len(want)
            elif isinstance(item, Group):
                pos = self.group(item, pos, end, where)
            elif item.size is not None:
                if pos + item.size > end:
                    raise _Miss(end, f"expected {item.size} bytes ({_shown(item)}), got "
                                     f"{end - pos} before the end of {where}")
                self.capture(item, data[pos:pos + item.size])
                pos += item.size
            else:
                stop = self.unsized_end(items, k + 1, pos, end)
                self.capture(item, data[pos:stop])
                pos = stop
        if pos != end:
            raise _Miss(pos, f"expected the end of {where}, got {end - pos} more bytes "
                             f"({_hex(data[pos:min(end, pos + 16)])}"
                             f"{' …' if end - pos > 16 else ''})")

    def expect(self, want: bytes, pos: int, end: int, where: str, item) -> None:
        data = self.data
        if data.startswith(want, pos, end):
            return
        i = 0
        while pos + i < end and data[pos + i] == want[i]:
            i += 1
        label = f" ({{{{{item.name}}}}} = {_hex(want)})" if isinstance(item, Var) else ""
        got = f"0x{data[pos + i]:02x}" if pos + i < end else f"the end of {where}"
        raise _Miss(pos + i, f"expected 0x{want[i]:02x}{label}, got {got}")

    def capture(self, item: Wild, value: bytes) -> None:
        if item.name:
            self.captures[item.name] = value

    def group(self, item: Group, pos: int, end: int, where: str) -> int:
        size, head = self.length(item.kind, pos, end, where)
        inner = pos + head
        if inner + size > end:
            raise _Miss(pos, f"expected a {item.kind} length of at most {end - inner} (the "
                             f"bytes left in {where}), got {size}")
        self.items(item.items, inner, inner + size, f"the {item.kind}( group at byte {pos}")
        return inner + size

    def length(self, kind: str, pos: int, end: int, where: str) -> tuple[int, int]:
        """The group length at ``pos`` and the number of bytes it took."""
        data = self.data
        width, order = GROUPS[kind]
        if width:
            if pos + width > end:
                raise _Miss(pos, f"expected a {kind} length, got the end of {where}")
            return int.from_bytes(data[pos:pos + width], order), width
        size = 0
        for i in range(4):
            if pos + i >= end:
                raise _Miss(pos + i, f"expected a varint length, got the end of {where}")
            byte = data[pos + i]
            size |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                return size, i + 1
        raise _Miss(pos, "expected a varint length (1 to 4 bytes), got 4 bytes with the "
                         "continuation bit set")

    def unsized_end(self, items: tuple, k: int, pos: int, end: int) -> int:
        """Where an unsized ``#bytes`` before ``items[k:]`` stops (see the module doc)."""
        rest = self.width(items[k:])
        if rest is not None:
            return max(pos, end - rest)
        run = b""
        for item in items[k:]:
            if isinstance(item, Fixed):
                run += item.data
            elif isinstance(item, Var):
                run += self.value(item)
            else:
                break
        if not run:
            return end
        found = self.data.find(run, pos, end)
        return end if found < 0 else found

    def width(self, items) -> int | None:
        """The size of ``items`` when it is known before matching, else None."""
        total = 0
        for item in items:
            if isinstance(item, Fixed):
                total += len(item.data)
            elif isinstance(item, Var):
                total += len(self.value(item))
            elif isinstance(item, Wild):
                if item.size is None:
                    return None
                total += item.size
            else:
                inner = self.width(item.items)
                if inner is None:
                    return None
                total += _head_width(item.kind, inner) + inner
        return total


def _shown(item: Wild) -> str:
    return f"{{{{{item.name} = #bytes {item.size}}}}}" if item.name else f"#bytes {item.size}"


def _head_width(kind: str, size: int) -> int:
    width = GROUPS[kind][0]
    if width:
        return width
    return 1 if size < 128 else 2 if size < 16384 else 3 if size < 2097152 else 4


def variable_bytes(name: str, variables: Mapping[str, Any], offset: int = 0) -> bytes:
    """A variable's value as a binary template uses it: bytes as they are, a string as
    UTF-8; raises :class:`TemplateError` for anything else or an undefined variable."""
    if name not in variables:
        raise TemplateError(f"undefined variable {name!r}", offset)
    value = variables[name]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TemplateError(f"variable {name!r} holds {json.dumps(value)[:40]}, which a hex line "
                        "cannot use: it takes bytes (a capture) or a string", offset)


# --- sending ----------------------------------------------------------------------------


def render(template: str, variables: Mapping[str, Any], bind: dict | None = None,
           rng: random.Random | None = None, *,
           overrides: Mapping[str, Any] | None = None) -> bytes:
    """The bytes to send for ``template``. Each capture's value (the ``overrides`` entry of
    its name, i.e. ``--var``, else its example, else fresh from ``rng``) is stored in
    ``bind`` for the caller to keep. Raises :class:`TemplateError` (undefined variable, a
    length too large for its field, an override of the wrong size)."""
    items = parse_template(template)
    out = _Render(variables, rng or random.Random(), overrides or {})
    data = out.items(items)
    if bind is not None:
        bind.update(out.bound)
    return data


class _Render:
    def __init__(self, variables, rng: random.Random, overrides: Mapping[str, Any]):
        self.variables, self.rng, self.overrides = variables, rng, overrides
        self.bound: dict[str, bytes] = {}

    def items(self, items: tuple) -> bytes:
        out = bytearray()
        for item in items:
            if isinstance(item, Fixed):
                out += item.data
            elif isinstance(item, Var):
                out += self.bound[item.name] if item.name in self.bound else \
                    variable_bytes(item.name, self.variables, item.start)
            elif isinstance(item, Wild):
                out += self.wild(item)
            else:
                out += self.group(item)
        return bytes(out)

    def wild(self, item: Wild) -> bytes:
        if item.name and item.name in self.overrides:
            value = variable_bytes(item.name, self.overrides, item.start)
            if item.size is not None and len(value) != item.size:
                raise TemplateError(f"--var {item.name} holds {len(value)} bytes; #bytes "
                                    f"{item.size} takes {item.size}", item.start)
        elif item.example is not None:
            value = item.example
        elif item.size is not None:
            value = self.rng.randbytes(item.size)
        else:
            value = "".join(self.rng.choice(_ALNUM) for _ in range(8)).encode("ascii")
        if item.name:
            self.bound[item.name] = value
        return value

    def group(self, item: Group) -> bytes:
        body = self.items(item.items)
        size = len(body)
        width, order = GROUPS[item.kind]
        limit = (1 << (8 * width)) - 1 if width else VARINT_MAX
        if size > limit:
            raise TemplateError(f"the {item.kind}( group holds {size} bytes, more than its "
                                f"length field can say ({limit})", item.start)
        if width:
            return size.to_bytes(width, order) + body
        return varint(size) + body


def varint(size: int) -> bytes:
    """``size`` as an MQTT variable byte integer (1-4 bytes)."""
    out = bytearray()
    while True:
        size, byte = size >> 7, size & 0x7F
        out.append(byte | (0x80 if size else 0))
        if not size:
            return bytes(out)
