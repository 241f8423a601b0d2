"""What matching a message costs as messages grow: linear, whatever the scenario holds.

For each message size, times (best of a few runs) one match of a received message against:

* ``regex``: a ``regex`` line that backtracks on Python's ``re`` (``(a|aa)*b``-like shapes
  are what freeze a backtracking engine; here ``(x+x+)+y``), on RE2;
* ``text 3 #any``: a text template with three ``{{#any}}`` and literal text between them;
* ``binary``: a binary template with unsized ``#bytes`` and a length group;
* ``json``: a ``json`` line with markers against a JSON object of that size;
* ``msgpack``: the same value as a MessagePack frame;

each on a message that does *not* match (the worst case: the whole message is read), beside
the baseline run in the same loop: plain equality of two same-size strings (or bytes) that
differ at the end, the least any comparison costs. The ``ratio`` column is cost / baseline;
``µs/KB`` should stay flat as the size grows (linear time). Usage::

    python bench/match.py [--sizes 1,10,100,1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import msgpack
import orjson

from wsreplay.matchers import match_message
from wsreplay.messages import Message
from wsreplay.parser import parse

KB = 1024


def _line(source: str):
    return parse(f"wsreplay 1\nconn c ws://h/\nc < {source}\n").events()[0].payload


def _best(fn: Callable[[], object], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cases(size: int):
    """``(name, match, baseline)`` for messages of about ``size`` bytes."""
    body = "x" * size
    regex = _line(r"regex (x+x+)+y")
    text_msg = Message.of_text(body)
    yield "regex (x+x+)+y", lambda: match_message(regex, text_msg, {}), \
        _equal(body, body[:-1] + "z")

    words = ("alpha " * (size // 6 + 1))[:size]
    template = _line("text alpha {{#any}} beta {{#any}} gamma {{#any}} delta")
    words_msg = Message.of_text(words)
    yield "text 3 #any", lambda: match_message(template, words_msg, {}), \
        _equal(words, words[:-1] + "z")

    blob = bytes(range(256)) * (size // 256 + 1)
    blob = blob[:size]
    binary = _line('hex 01 u32( {{#bytes}} ff ee {{x = #bytes}} ) "end"')
    blob_msg = Message.of_binary(b"\x01" + (size - 4).to_bytes(4, "big") + blob[:size - 4] +
                                 b"enx")
    yield "binary #bytes", lambda: match_message(binary, blob_msg, {}), \
        _equal(blob, blob[:-1] + b"z")

    items = [{"id": i, "name": f"item-{i}", "ok": True} for i in range(max(1, size // 40))]
    value = {"type": "batch", "items": items, "last": "no"}
    doc = orjson.dumps(value).decode()
    jline = _line('json {"type":"batch","items":"#array","last":"#number"}')
    json_msg = Message.of_text(doc)
    yield "json markers", lambda: match_message(jline, json_msg, {}), \
        _equal(doc, doc[:-1] + "z")

    packed = msgpack.packb(value)
    mline = _line('msgpack {"type":"batch","items":"#array","last":"#number"}')
    packed_msg = Message.of_binary(packed)
    yield "msgpack markers", lambda: match_message(mline, packed_msg, {}), \
        _equal(packed, packed[:-1] + b"z")


def _equal(a, b) -> Callable[[], bool]:
    return lambda: a == b


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,10,100,1000", help="message sizes in KB")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'matcher':<17}{'size':>8}{'match':>12}{'baseline':>12}{'ratio':>9}{'µs/KB':>9}")
    for size_kb in sizes:
        for name, match, baseline in cases(size_kb * KB):
            assert not match().ok  # the worst case: nothing matches, all is read
            cost, floor = _best(match, args.runs), _best(baseline, args.runs)
            print(f"{name:<17}{size_kb:>6}KB{cost * 1e6:>10.1f}µs{floor * 1e6:>10.2f}µs"
                  f"{cost / max(floor, 1e-9):>9.0f}{cost * 1e6 / size_kb:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
