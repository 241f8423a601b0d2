"""How fast wsreplay reads and writes a large recording, against the floor any text format pays.

Builds a 100,000-event scenario shaped like a real recording (four connections; JSON and text
both ways, some binary, pings and pongs, a few unordered and repeat blocks and fenced payloads),
then times, as the median of a few runs:

* ``parse``: scenario text -> model (:func:`wsreplay.parser.parse`);
* ``write``: model -> scenario text (:func:`wsreplay.writer.write`);
* the baseline: the same events as JSON Lines (one object per event, JSON payloads embedded as
  JSON), read with ``orjson.loads`` line by line and written with ``orjson.dumps``: the least a
  line-oriented text format can cost in Python, so the figures are ratios, not raw speeds.

Peak memory is traced (tracemalloc) in a separate, untimed run. Usage::

    python bench/parse.py [--events 100000] [--runs 5] [--seed 1] [--save FILE]
"""

from __future__ import annotations

import argparse
import base64
import gc
import random
import statistics
import time
import tracemalloc
from typing import Callable

import orjson

from wsreplay import model as m
from wsreplay.parser import parse
from wsreplay.writer import write

CONNS = ("feed", "alice", "bob", "io")
SYMS = ("BTC-USD", "ETH-USD", "SOL-USD", "DOGE-USD")
WORDS = "hi there how is it going fine thanks see you later the build is green again".split()


class _Maker:
    """Random but reproducible events, each a plausible recorded message."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.t = 0  # microseconds since the start, growing like a recording's clock

    def at(self) -> int:
        self.t += self.rng.randrange(50, 5_000)
        return self.t

    def sentence(self) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randrange(2, 12)))

    def event(self) -> m.Event:
        r = self.rng.random()
        for threshold, make in _MIX:
            if r < threshold:
                conn, side, payload, within = make(self)
                return m.Event(conn, side, payload, self.at(), within)
        raise AssertionError("unreachable")

    def tick(self):
        obj = {"type": "tick", "sym": self.rng.choice(SYMS), "seq": self.rng.randrange(10**9),
               "price": round(self.rng.uniform(1, 60_000), 2),
               "size": round(self.rng.uniform(0, 5), 6), "ts": 1_700_000_000_000 + self.t // 1000}
        return "feed", m.Side.SERVER, _json(obj), None

    def chat_in(self):
        obj = {"type": "said", "id": f"m{self.rng.randrange(10**6)}", "from": "alice",
               "text": self.sentence(), "ts": 1_700_000_000_000 + self.t // 1000,
               "meta": {"room": "lobby", "edited": False, "tags": ["x", "y"]}}
        return self.rng.choice(("alice", "bob")), m.Side.SERVER, _json(obj), None

    def chat_out(self):
        obj = {"type": "say", "text": self.sentence()}
        return self.rng.choice(("alice", "bob")), m.Side.CLIENT, _json(obj), None

    def text_in(self):
        text = f'42["chat",{{"id":{self.rng.randrange(10**6)},"text":"{self.sentence()}"}}]'
        within = 2_000_000 if self.rng.random() < 0.1 else None
        return "io", m.Side.SERVER, m.Text(text), within

    def text_out(self):
        return "io", m.Side.CLIENT, m.Text(self.rng.choice(("3", "40", self.sentence()))), None

    def quoted(self):  # text the writer must quote: a trailing space, a tab
        return "io", m.Side.SERVER, m.Text(self.sentence() + "\t" + self.sentence() + " "), None

    def binary(self):
        data = self.rng.randbytes(self.rng.randrange(8, 48))
        notation = self.rng.choice(list(m.BinaryNotation))
        return "feed", self.rng.choice(list(m.Side)), m.Binary(data, notation), None

    def control(self):
        side = self.rng.choice(list(m.Side))
        cls = self.rng.choice((m.Ping, m.Pong))
        return self.rng.choice(CONNS), side, cls(str(self.rng.randrange(10**6)).encode()), None

    def fenced(self):  # a pretty-printed JSON payload, as people paste them
        obj = {"type": "snapshot", "bids": [[round(self.rng.uniform(1, 9), 2), 1]] * 3,
               "asks": [[round(self.rng.uniform(1, 9), 2), 2]] * 3}
        source = orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode()
        return "feed", m.Side.SERVER, m.Json(source, obj), None


def _json(obj) -> m.Json:
    source = orjson.dumps(obj).decode()
    return m.Json(source, obj)


# Cumulative shares of the mix: JSON is the bulk of a recording, then text, then the rest.
_MIX: list[tuple[float, Callable]] = [
    (0.30, _Maker.tick), (0.45, _Maker.chat_in), (0.57, _Maker.chat_out),
    (0.72, _Maker.text_in), (0.80, _Maker.text_out), (0.82, _Maker.quoted),
    (0.90, _Maker.binary), (0.99, _Maker.control), (1.01, _Maker.fenced),
]


def build(events: int, seed: int) -> m.Scenario:
    """A scenario of exactly ``events`` events (in blocks included), four connections."""
    make = _Maker(seed)
    steps: list = [m.Comment(" a synthetic recording for bench/parse.py"),
                   m.Setting("timeout", "5s")]
    steps += [m.Connect(name, f"ws://127.0.0.1:8765/{name}", make.at()) for name in CONNS]
    left = events
    while left > 0:
        roll = make.rng.random()
        if roll < 0.002 and left >= 5:  # a burst expected in any order
            burst = tuple(m.Event("feed", m.Side.SERVER, make.tick()[2]) for _ in range(5))
            steps.append(m.Unordered(burst, 2_000_000))
            left -= 5
        elif roll < 0.003 and left >= 4:  # a hand-written loop
            body = tuple(make.event() for _ in range(2))
            steps.append(m.Repeat(3, tuple(m.Event(e.conn, e.side, e.payload) for e in body)))
            left -= 2
        else:
            steps.append(make.event())
            left -= 1
    return m.Scenario(tuple(steps))


def jsonl(scenario: m.Scenario) -> bytes:
    """The same events as JSON Lines: what a recorder writing JSON would have written."""
    lines = []
    for step in m.walk(scenario.steps):
        if not isinstance(step, m.Event):
            continue
        p = step.payload
        head = {"conn": step.conn, "dir": step.side.value, "at": step.at, "within": step.within}
        if isinstance(p, m.Json):  # the payload embedded as JSON, parsed along with the line
            line = orjson.dumps(head)[:-1] + b',"json":' + p.source.encode().replace(b"\n", b"") + b"}"
        elif isinstance(p, m.Text):
            line = orjson.dumps({**head, "text": p.text})
        elif isinstance(p, (m.Binary, m.Ping, m.Pong)):
            kind = type(p).__name__.lower()
            line = orjson.dumps({**head, kind: base64.b64encode(p.data).decode()})
        else:
            raise AssertionError(f"the bench makes no {p!r}")
        lines.append(line)
    return b"\n".join(lines) + b"\n"


def median_time(fn: Callable[[], object], runs: int) -> float:
    """The median wall time of ``fn()``, with the cyclic collector off for every contender
    (the parser turns it off itself; the baseline would otherwise pay for it)."""
    times = []
    for _ in range(runs):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - start)
        finally:
            gc.enable()
        del result
    return statistics.median(times)


def peak_mib(fn: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del result
    return peak / 2**20


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--save", metavar="FILE", help="also write the scenario there")
    args = ap.parse_args(argv)

    scenario = build(args.events, args.seed)
    text = write(scenario)
    parsed = parse(text, "bench.wsr")
    events = len(parsed.events())
    assert events == args.events and parsed == scenario, "the bench scenario must round-trip"
    lines = jsonl(scenario)
    records = [orjson.loads(line) for line in lines.splitlines()]
    assert len(records) == events
    if args.save:
        with open(args.save, "w", encoding="utf-8") as fh:
            fh.write(text)

    t_parse = median_time(lambda: parse(text, "bench.wsr"), args.runs)
    t_write = median_time(lambda: write(parsed), args.runs)
    t_loads = median_time(lambda: [orjson.loads(line) for line in lines.splitlines()], args.runs)
    t_dumps = median_time(lambda: b"\n".join([orjson.dumps(r) for r in records]), args.runs)
    mem_parse = peak_mib(lambda: parse(text, "bench.wsr"))
    mem_loads = peak_mib(lambda: [orjson.loads(line) for line in lines.splitlines()])

    print(f"{events:,} events: {len(text.encode()) / 2**20:.1f} MiB of scenario text, "
          f"{len(lines) / 2**20:.1f} MiB as JSON Lines; median of {args.runs} runs\n")
    print(f"{'':24}{'seconds':>9}{'events/s':>12}{'x floor':>9}{'peak MiB':>10}")
    rows = [("parse (wsreplay)", t_parse, t_parse / t_loads, mem_parse),
            ("orjson.loads (JSONL)", t_loads, 1.0, mem_loads),
            ("write (wsreplay)", t_write, t_write / t_dumps, None),
            ("orjson.dumps (JSONL)", t_dumps, 1.0, None)]
    for name, seconds, ratio, mem in rows:
        shown_mem = f"{mem:10.1f}" if mem is not None else f"{'':10}"
        print(f"{name:24}{seconds:9.3f}{events / seconds:12,.0f}{ratio:9.2f}{shown_mem}")
    print("\nx floor: time / the JSON Lines time for the same events (1.00 is the floor); "
          "peak MiB: tracemalloc, untimed run")


if __name__ == "__main__":
    main()
