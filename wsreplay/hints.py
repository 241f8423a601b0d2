"""Turn raw parser states into messages people understand, with a hint where one helps."""

from __future__ import annotations

import difflib
import re

from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

KINDS = ["text", "json", "msgpack", "cbor", "regex", "hex", "b64", "file", "ping", "pong", "close",
         "drop", "silence"]
LINE_STARTS = ["conn", "var", "env", "set", "include", "unordered", "repeat", "end"]
HANDSHAKE = ["query", "header", "protocol", "compress", "expect", "ignore", "on", "reply",
             "leftover"]

_NAMES = {
    "HEAD": "a message line (`name >` or `name <`)",
    "EVENT_LINE": "a message line (`name >` or `name <`)", "TIME": "a time such as @1.250",
    "NAME": "a name", "DIR": "`>` or `<`", "INT": "a number", "DURATION": "a duration (2s, 500ms)",
    "QKEY": "a query key", "HNAME": "a header name", "PROTO": "a subprotocol name",
    "PATHS": "a path such as $.ts", "REST": "a value", "BLOCK": "a fenced block",
    "VALUE": "a payload",
    "COMMENT": "a comment", "NL": "the end of the line", "$END": "the end of the file",
    "EQUAL": "`=`", "COLON": "`:`",
}

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def hint_for(word: str, choices: list[str]) -> str | None:
    """``did you mean `x`?`` for the closest of ``choices``, or None."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _expected(names) -> str:
    shown = []
    for name in sorted(names):
        if name.startswith("__ANON") or name in ("SUBSET", "IGNORE", "CTL_HEX", "CTL_B64"):
            continue
        shown.append(_NAMES.get(name, f"`{name.lower()}`"))
    return ", ".join(dict.fromkeys(shown)) or "something else"


def explain(exc: UnexpectedInput, line: str, col: int) -> tuple[str, str | None]:
    """Message and hint for a lark error at 1-based ``col`` of ``line``."""
    if isinstance(exc, UnexpectedEOF) or (
            isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        return "the file ends inside a block", "close `unordered` and `repeat` blocks with `end`"
    rest = line[col - 1:]
    word_match = _WORD.match(rest)
    word = word_match.group(0) if word_match else rest[:1]
    stripped = line.strip()
    at_line_start = not line[: col - 1].strip() or re.fullmatch(r"@[0-9.]+\s*", line[: col - 1])
    expected = getattr(exc, "allowed", None) or getattr(exc, "expected", None) or set()
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        word = str(exc.token).split()[0] if str(exc.token).strip() else word

    if at_line_start and word in HANDSHAKE:
        return (f"`{word}` belongs right under a `conn` line (or another handshake line)",
                "move it under the `conn` line of its connection, with no other line between")
    if at_line_start and word == "end":
        return "`end` with no `unordered` or `repeat` block open", None
    if word == "within":
        example = "unordered within 2s" if stripped.startswith("unordered") else \
            "name < within 2s text ..."
        return "`within` takes a duration such as 2s or 500ms", f"write: {example}"
    if _after_direction(line, col):
        if word in KINDS:
            return f"`{word}` does not take what follows here", _kind_hint(word)
        return (f"unknown message kind `{word}`",
                hint_for(word, KINDS) or "kinds are: " + ", ".join(KINDS))
    if "DURATION" in expected and re.fullmatch(r"[0-9]+(\.[0-9]+)?", word):
        return (f"`{word}` needs a unit to be a duration",
                f"write {word}ms or {word}s (units: us, ms, s, m)")
    kind = _kind_before(line, col)
    if kind is not None and _kind_hint(kind) is not None:
        return f"unexpected `{word}` after `{kind}`", _kind_hint(kind)
    if at_line_start and word_match and "HEAD" in expected:
        if re.match(r"[A-Za-z_][\w.\-]*\s+(" + "|".join(KINDS) + r")\b", stripped.lstrip("@0123456789. ")):
            return ("a message line needs a direction after the connection name",
                    "write `name > kind ...` (the client sends) or `name < kind ...` (the server sends)")
        return (f"unknown line `{word}`",
                hint_for(word, LINE_STARTS + HANDSHAKE) or
                "a line starts with a keyword (conn, var, env, set, include, unordered, repeat)"
                " or a connection name followed by > or <")
    if isinstance(exc, UnexpectedToken) and exc.token.type == "NL":
        return f"the line ends too early; expected {_expected(expected)}", None
    if isinstance(exc, UnexpectedCharacters) or (at_line_start and not word_match):
        if at_line_start:
            return (f"unexpected {rest[:1]!r} at the start of a line",
                    "a line starts with a keyword (conn, var, env, set, include, unordered, "
                    "repeat), a connection name followed by > or <, or # for a comment")
        return f"unexpected {rest[:1]!r}; expected {_expected(expected)}", None
    return f"unexpected `{word}`; expected {_expected(expected)}", None


def _after_direction(line: str, col: int) -> bool:
    before = line[: col - 1].rstrip()
    head = re.fullmatch(r"\s*(@[0-9.]+\s+)?[A-Za-z_][\w.\-]*\s*[<>](\s+within\s+\S+)?", before)
    return head is not None


def _kind_before(line: str, col: int) -> str | None:
    """The message kind written before ``col`` on a message line, if there is one."""
    head = re.match(r"\s*(@[0-9.]+\s+)?[A-Za-z_][\w.\-]*\s*[<>]\s+(within\s+\S+\s+)?([a-z0-9]+)\s",
                    line[: col - 1])
    return head.group(3) if head else None


def _kind_hint(kind: str) -> str | None:
    return {
        "close": "close takes an optional numeric code, then an optional reason: close 1000 bye",
        "silence": "silence takes a duration: silence 500ms",
        "json": "json [subset] [ignore $.path,...] then the JSON",
        "msgpack": "msgpack [subset] [ignore $.path,...] then the value, written as JSON",
        "cbor": "cbor [subset] [ignore $.path,...] then the value, written as JSON",
        "drop": "drop takes nothing after it",
    }.get(kind)
