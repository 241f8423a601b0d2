""":class:`~wsreplay.model.Scenario` → scenario text: the exact inverse of the parser.

``parse(write(s)) == s`` for every scenario the model can hold; ``fmt`` is ``write`` applied
to a parsed file. The writer chooses each payload's spelling (inline, quoted or fenced block)
from its content, so the same scenario always gives the same text.
"""

from __future__ import annotations

import re

import orjson
from pybase64 import b64encode as _b64encode  # SIMD: big binary messages are what recording costs

from . import model as m

HEADER = f"wsreplay {m.FORMAT_VERSION}\n"
INDENT = "  "

_US = 1_000_000
# Characters that make an inline payload unsafe: controls (a tab too, since editors mangle
# trailing tabs), and the separators some editors and Python's splitlines() break lines on.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_BACKTICK_LINE = re.compile(r"^[ \t]*(`{3,})[ \t]*$", re.M)
_CONTROL_WORD = re.compile(r"^(hex|b64)([ \t]|$)")


def write(scenario: m.Scenario) -> str:
    """The whole file: header line, then every step."""
    return HEADER + "".join(format_step(step) for step in scenario.steps)


def format_step(step: m.Step, indent: str = "") -> str:
    """The line(s) of one step, each ending in a newline, handshake lines included."""
    if isinstance(step, m.Event):
        return indent + format_event(step) + "\n"
    if isinstance(step, m.Connect):
        return _connect(step, indent)
    if isinstance(step, m.Comment):
        return f"{indent}#{step.text}\n"
    if isinstance(step, m.Blank):
        return "\n"
    if isinstance(step, m.Var):
        return f"{indent}var {step.name} = {_block_or_inline(step.source, indent)}\n"
    if isinstance(step, m.Env):
        if step.default_source is None:
            return f"{indent}env {step.name}\n"
        return f"{indent}env {step.name} = {_block_or_inline(step.default_source, indent)}\n"
    if isinstance(step, m.Setting):
        return f"{indent}set {step.name} {step.value}\n"
    if isinstance(step, m.Include):
        return f"{indent}include {step.path}\n"
    if isinstance(step, m.Unordered):
        head = "unordered" + (f" within {format_duration(step.within)}" if step.within is not None else "")
        return _block(head, step.steps, indent)
    if isinstance(step, m.Repeat):
        return _block(f"repeat {step.count}", step.steps, indent)
    raise TypeError(f"not a scenario step: {step!r}")


def format_event(event: m.Event) -> str:
    """One event line without its newline (a fenced payload spans several lines)."""
    head = f"@{format_time(event.at)} " if event.at is not None else ""
    within = f"within {format_duration(event.within)} " if event.within is not None else ""
    return f"{head}{event.conn} {event.side.value} {within}{format_payload(event.payload)}"


def format_time(us: int) -> str:
    """Microseconds → ``1.250`` (3 decimals when exact in milliseconds, else 6)."""
    whole, frac = divmod(us, _US)
    return f"{whole}.{frac // 1000:03d}" if frac % 1000 == 0 else f"{whole}.{frac:06d}"


def format_duration(us: int) -> str:
    """Microseconds → ``2s``, ``250ms`` or ``75us``."""
    if us % _US == 0:
        return f"{us // _US}s"
    if us % 1000 == 0:
        return f"{us // 1000}ms"
    return f"{us}us"


def format_payload(p: m.Payload, one_line: bool = False) -> str:
    """``KIND PAYLOAD`` as it follows the direction on an event line. ``one_line`` quotes
    multi-line text instead of fencing it (the recorder's choice for text longer than a page,
    which a kill could cut between its lines)."""
    if isinstance(p, m.Text):
        return _kind("text", _text(p.text, one_line))
    if isinstance(p, m.Json):
        opts = "subset " if p.subset else ""
        if p.ignore:
            opts += "ignore " + ",".join(p.ignore) + " "
        return f"{p.codec} {opts}{_block_or_inline(p.source)}"
    if isinstance(p, m.Regex):
        return _kind("regex", _text(p.pattern))
    if isinstance(p, m.Binary):
        if p.template is not None:  # as written; blank lines are blanks, so a block is safe
            return "hex " + (_fenced(p.template) if "\n" in p.template else p.template)
        if p.notation is m.BinaryNotation.HEX:
            return _kind("hex", p.data.hex())
        return _kind("b64", _b64encode(p.data).decode("ascii"))
    if isinstance(p, m.File):
        return f"file {p.path}"
    if isinstance(p, (m.Ping, m.Pong)):
        return _kind("ping" if isinstance(p, m.Ping) else "pong", _control(p.data))
    if isinstance(p, m.Close):
        return _close(p)
    if isinstance(p, m.Drop):
        return "drop"
    if isinstance(p, m.Silence):
        return f"silence {format_duration(p.duration)}"
    raise TypeError(f"not a payload: {p!r}")


def _kind(kind: str, value: str) -> str:
    return f"{kind} {value}" if value else kind


def _text(text: str, one_line: bool = False) -> str:
    """Inline when safe on one line, a fenced block for multi-line text, else quoted."""
    if not text:
        return ""
    if _inline_safe(text):
        return text
    if "\n" in text and not one_line and not text.endswith("\n") \
            and all(_inline_safe(line) or not line for line in text.split("\n")):
        return _fenced(text)
    return _quoted(text)


def _inline_safe(text: str) -> bool:
    # Leading or trailing white space of any kind (a no-break space too) is quoted: editors
    # trim it, and a reader cannot see it.
    return bool(text) and not _UNSAFE.search(text) and text[0] != '"' and \
        not text[0].isspace() and not text[-1].isspace() and not text.startswith("```")


def _quoted(text: str) -> str:
    return orjson.dumps(text).decode("utf-8")


def _fenced(content: str, indent: str = "") -> str:
    longest = max((len(f) for f in _BACKTICK_LINE.findall(content)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{content}\n{indent}{fence}"


def _block_or_inline(source: str, indent: str = "") -> str:
    """A JSON source: inline when it is one line, else a fenced block (content as is)."""
    return _fenced(source, indent) if "\n" in source else source


def _control(data: bytes) -> str:
    if not data:
        return ""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "hex " + data.hex()
    if _UNSAFE.search(text):
        return "hex " + data.hex()
    if _CONTROL_WORD.match(text):
        return _quoted(text)
    return _text(text)


def _close(p: m.Close) -> str:
    if p.code is None:
        if p.reason is not None:
            raise ValueError("a close frame with a reason must have a code")
        return "close"
    if p.reason is None:
        return f"close {p.code}"
    reason = _text(p.reason) if "\n" not in p.reason else _quoted(p.reason)
    return f"close {p.code} {reason or chr(34) * 2}"


def _value(value: str) -> str:
    """A handshake value: inline, or quoted when not safe (never a block)."""
    return value if not value or _inline_safe(value) else _quoted(value)


def _pair(head: str, value: str) -> str:
    return f"{head} {_value(value)}" if value else head


def _connect(c: m.Connect, indent: str) -> str:
    head = f"@{format_time(c.at)} " if c.at is not None else ""
    lines = [f"{indent}{head}conn {c.name} {c.url}"]
    sub = indent + INDENT
    lines += [_pair(f"{sub}query {k} =", v) for k, v in c.query]
    lines += [_pair(f"{sub}header {k}:", v) for k, v in c.headers]
    if c.protocols:
        lines.append(f"{sub}protocol {' '.join(c.protocols)}")
    if c.compress:
        lines.append(f"{sub}compress")
    if c.expect_status is not None:
        lines.append(f"{sub}expect status {c.expect_status}")
    if c.expect_protocol is not None:
        lines.append(f"{sub}expect protocol {c.expect_protocol}" if c.expect_protocol
                     else f"{sub}expect no protocol")
    lines += [_pair(f"{sub}expect header {k}:", v) for k, v in c.expect_headers]
    if c.expect_compress is not None:
        lines.append(f"{sub}expect compress" if c.expect_compress else f"{sub}expect no compress")
    for rule in c.rules:
        if rule.every is not None:
            lines.append(f"{sub}every {format_duration(rule.every)} {rule.side.value} "
                         f"{format_payload(rule.match)}")
            continue
        lines.append(f"{sub}{'on' if rule.reply else 'ignore'} {rule.side.value} "
                     f"{format_payload(rule.match)}")
        if rule.reply is not None:
            lines.append(f"{sub}reply {rule.side.other.value} {format_payload(rule.reply)}")
    if c.leftover is not None:
        lines.append(f"{sub}leftover {c.leftover}")
    return "\n".join(lines) + "\n"


def _block(head: str, steps: tuple, indent: str) -> str:
    inner = indent + INDENT
    body = "".join(format_step(step, inner) for step in steps)
    return f"{indent}{head}\n{body}{indent}end\n"
