"""Hypothesis strategies building any scenario the model can hold (for round-trip tests)."""

from __future__ import annotations

import json
import string

import orjson
from hypothesis import strategies as st

from wsreplay import model as m

RESERVED = {"ignore", "on", "reply"}

names = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.\-]{0,8}\Z").filter(lambda s: s not in RESERVED)
# WebSocket text is UTF-8: no lone surrogates.
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
awkward_texts = st.one_of(
    texts,
    st.sampled_from(["", " ", "```", "````\n```", '"quoted"', "{{", "{{'{{'}}", "#", "# not a comment",
                     "> x", "< y", "a\r\nb", "tab\there", "trailing ", "\u2028", "é中😀",
                     "line\n```\nafter", "\x00\x01\x7f", "hex 00", "b64 AA", "hex", "```x"]),
)
tokens = st.text(string.ascii_letters + string.digits + "-._~!$&'*+", min_size=1, max_size=12)
durations = st.integers(0, 10**9)
times = st.one_of(st.none(), st.integers(0, 10**11))

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53),
              st.floats(allow_nan=False, allow_infinity=False), texts),
    lambda kids: st.one_of(st.lists(kids, max_size=4),
                           st.dictionaries(texts, kids, max_size=4)),
    max_leaves=12)


@st.composite
def json_sources(draw):
    value = draw(json_values)
    option = draw(st.sampled_from([0, orjson.OPT_INDENT_2]))
    return orjson.dumps(value, option=option).decode("utf-8")


def json_payloads():
    paths = st.lists(st.sampled_from(["$.ts", "$.a.b", "$.items[*].id", "$[0]", '$["a.b"]']),
                     max_size=3, unique=True).map(tuple)
    return st.builds(m.Json, source=json_sources(), subset=st.booleans(), ignore=paths,
                     codec=st.sampled_from(["json", "msgpack", "cbor"]))


@st.composite
def _binary_examples(draw, size: int | None) -> str:
    if size is None and draw(st.booleans()):
        return json.dumps(draw(texts))
    return draw(st.binary(min_size=size or 1, max_size=size or 6)).hex()


@st.composite
def _binary_placeholders(draw) -> str:
    name = draw(names)
    if draw(st.integers(0, 3)) == 0:
        return "{{" + name + "}}"
    size = draw(st.one_of(st.none(), st.integers(1, 8)))
    marker = "#bytes" + ("" if size is None else f" {size}")
    head = marker if draw(st.booleans()) else f"{name} = {marker}"
    like = f" like {draw(_binary_examples(size))}" if draw(st.booleans()) else ""
    return "{{" + head + like + "}}"


@st.composite
def _joined(draw, items) -> str:
    """Items joined by a space, nothing, or a newline (a fenced block)."""
    parts = draw(items)
    out = parts[0]
    for part in parts[1:]:
        out += draw(st.sampled_from([" ", " ", "", "\n"])) + part
    return out


def _binary_items(inner):
    return _joined(st.lists(st.one_of(
        st.binary(min_size=1, max_size=4).map(bytes.hex),
        st.builds(json.dumps, texts),
        _binary_placeholders(),
        st.builds(lambda kind, body: f"{kind}( {body} )",
                  st.sampled_from(["u8", "u16", "u16le", "u32", "u32le", "varint"]), inner),
    ), min_size=1, max_size=4))


@st.composite
def binary_templates(draw) -> str:
    """A ``hex`` payload that is a template: hex pairs, strings, placeholders, groups."""
    out = draw(st.recursive(_binary_items(st.just("")), _binary_items, max_leaves=6))
    if not any(ch not in string.hexdigits + " \n" for ch in out):
        out += ' ""'
    return out


payloads = st.one_of(
    st.builds(m.Text, awkward_texts),
    json_payloads(),
    st.builds(m.Regex, awkward_texts),
    st.builds(m.Binary, st.binary(max_size=64), st.sampled_from(list(m.BinaryNotation))),
    st.builds(m.Binary, st.just(b""), st.just(m.BinaryNotation.HEX), binary_templates()),
    st.builds(m.File, st.from_regex(r"\A[a-z0-9_][a-z0-9_/.\-]{0,20}\Z")),
    st.builds(m.Ping, st.binary(max_size=125)),
    st.builds(m.Pong, st.binary(max_size=125)),
    st.builds(m.Close, st.none(), st.none()),
    st.builds(m.Close, st.integers(0, 65535), st.one_of(st.none(), awkward_texts)),
    st.just(m.Drop()),
    st.builds(m.Silence, durations),
)

events = st.builds(m.Event, conn=names, side=st.sampled_from(list(m.Side)), payload=payloads,
                   at=times, within=st.one_of(st.none(), durations))


@st.composite
def rules(draw):
    side = draw(st.sampled_from(list(m.Side)))
    if draw(st.integers(0, 3)) == 0:  # a heartbeat: a message, on a period of 1ms or more
        beat = draw(payloads.filter(lambda p: not isinstance(p, (m.Close, m.Drop, m.Silence))))
        return m.Rule(side, beat, None, every=draw(durations.filter(lambda d: d >= 1000)))
    reply = draw(st.one_of(st.none(), payloads))
    return m.Rule(side, draw(payloads), reply)


urls = st.from_regex(r"\Awss?://[a-z0-9.]{1,12}(:[0-9]{1,5})?(/[A-Za-z0-9_.~%{}=&?\-]{0,16})?\Z")
connects = st.builds(
    m.Connect, name=names, url=urls, at=times,
    query=st.lists(st.tuples(tokens, awkward_texts), max_size=2).map(tuple),
    headers=st.lists(st.tuples(tokens, awkward_texts), max_size=2).map(tuple),
    protocols=st.lists(tokens, max_size=3).map(tuple), compress=st.booleans(),
    expect_status=st.one_of(st.none(), st.integers(100, 599)),
    expect_protocol=st.one_of(st.none(), st.just(""), tokens),
    expect_headers=st.lists(st.tuples(tokens, awkward_texts), max_size=2).map(tuple),
    expect_compress=st.one_of(st.none(), st.booleans()),
    rules=st.lists(rules(), max_size=2).map(tuple),
    leftover=st.one_of(st.none(), st.sampled_from(["fail", "warn"])))

simple_steps = st.one_of(
    events, events, events, connects,
    st.builds(m.Var, names, json_sources()),
    st.builds(m.Env, names, st.one_of(st.none(), json_sources())),
    st.sampled_from([m.Setting("timeout", "5s"), m.Setting("leftover", "warn")]),
    st.builds(m.Comment, st.text(st.characters(blacklist_categories=("Cs",),
                                               blacklist_characters="\r\n"), max_size=30)),
    st.builds(m.Include, st.from_regex(r"\A[a-z0-9_][a-z0-9_/.\-]{0,20}\Z")),
    st.just(m.Blank()),
)


def _tidy(steps: list) -> tuple:
    """Blank lines as the parser keeps them: never two in a row, never last."""
    out: list = []
    for step in steps:
        if isinstance(step, m.Blank) and (not out or isinstance(out[-1], m.Blank)):
            if not out:
                out.append(step)
            continue
        out.append(step)
    while out and isinstance(out[-1], m.Blank):
        out.pop()
    return tuple(out)


step_lists = st.recursive(
    st.lists(simple_steps, max_size=6),
    lambda inner: st.lists(st.one_of(
        simple_steps,
        st.builds(lambda s, w: m.Unordered(_tidy(s), w), inner, st.one_of(st.none(), durations)),
        st.builds(lambda s, c: m.Repeat(c, _tidy(s)), inner, st.integers(0, 1000)),
    ), max_size=6),
    max_leaves=20)

scenarios = step_lists.map(lambda steps: m.Scenario(_tidy(steps)))
