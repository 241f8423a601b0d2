"""What generalizing a recording costs (issue 11): ``wsreplay record`` does it to the finished
file when it stops, ``wsreplay generalize`` to any file.

Builds a recording the way the recorder writes one -- many connections of a chat over
Socket.IO-style text frames and JSON-RPC-style JSON frames, with server-issued session ids,
client-drawn request ids, message UUIDs, millisecond timestamps and an Engine.IO heartbeat --
of ``--events`` events (default 100,000), then times, best of ``--runs``, side by side:

* ``fmt`` (the baseline): read, parse and write the file back (what ``wsreplay fmt`` does);
* ``generalize``: read, parse, generalize and write it back (what the recorder does at stop).

The ``ratio`` is generalize / fmt: what inference adds to merely rewriting the file. Usage::

    python bench/generalize.py [--events 100000] [--runs 3] [--save FILE]
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from pathlib import Path
import tempfile

from wsreplay.infer import generalize
from wsreplay.loader import read_text
from wsreplay.parser import parse
from wsreplay.writer import write

START = 1_796_464_800  # the recording's wall-clock start: 2026-12-05T10:00:00Z


def recording(events: int, seed: int = 7) -> str:
    """A recording of about ``events`` events (connections of ~100 events each)."""
    rng = random.Random(seed)
    out = ["wsreplay 1\n", "# recorded from ws://127.0.0.1:3000 by wsreplay record; @0.000 is "
           "2026-12-05T10:00:00.000000+00:00\n"]
    t = 0.0
    n = 0
    conn = 0
    while n < events:
        conn += 1
        c = f"c{conn}"
        sid = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
                      for _ in range(20))
        t += 0.01
        out.append(f"@{t:.6f} conn {c} ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket\n")
        out.append(f'@{t:.6f} {c} < text 0{{"sid":"{sid}","pingInterval":25000,'
                   f'"pingTimeout":20000}}\n')
        out.append(f"@{t:.6f} {c} > text 40\n")
        out.append(f'@{t:.6f} {c} < text 40{{"sid":"{sid}"}}\n')
        n += 4
        beat = t + 25.0
        for k in range(24):
            t += rng.uniform(0.2, 2.0)
            while t > beat:  # the heartbeat, answered at once
                out.append(f"@{beat:.6f} {c} < text 2\n@{beat + 0.001:.6f} {c} > text 3\n")
                beat += 25.0
                n += 2
            rid = rng.randrange(1, 2 ** 31)
            msg = uuid.UUID(int=rng.getrandbits(128), version=4)
            ms = int((START + t) * 1000)
            out.append(f'@{t:.6f} {c} > json {{"jsonrpc":"2.0","id":{rid},"method":"chat.say",'
                       f'"params":{{"session":"{sid}","text":"message {k}"}}}}\n')
            out.append(f'@{t + 0.002:.6f} {c} < json {{"jsonrpc":"2.0","id":{rid},"result":'
                       f'{{"id":"{msg}","at":{ms}}}}}\n')
            out.append(f'@{t + 0.003:.6f} {c} < text 42["said",{{"id":"{msg}","from":"{sid}",'
                       f'"text":"message {k}","ts":{ms}}}]\n')
            out.append(f'@{t + 0.004:.6f} {c} < json {{"type":"tick","sym":"BTC","price":'
                       f'{50000 + k * 0.5}}}\n')
            n += 4
        out.append(f"@{t + 0.01:.6f} {c} > close 1000\n@{t + 0.011:.6f} {c} < close 1000\n")
        n += 2
    out.append(f"# end: {conn} connections, {n} messages\n")
    return "".join(out)


def _fmt(path: Path) -> str:
    return write(parse(read_text(path), str(path)))


def _generalize(path: Path) -> str:
    scenario, notes = generalize(parse(read_text(path), str(path)))
    _generalize.notes = len(notes)
    return write(scenario)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--save", type=Path, help="also keep the recording (and FILE.gen.wsr)")
    args = ap.parse_args(argv)
    text = recording(args.events)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.save or Path(tmp) / "recording.wsr"
        path.write_text(text, encoding="utf-8")
        events = len(parse(text).events())
        best = {"fmt": float("inf"), "generalize": float("inf")}
        out = ""
        for _ in range(args.runs):  # side by side, in turn, so both see the same machine
            for name, fn in (("fmt", _fmt), ("generalize", _generalize)):
                t0 = time.perf_counter()
                result = fn(path)
                best[name] = min(best[name], time.perf_counter() - t0)
                if name == "generalize":
                    out = result
        if args.save:
            path.with_suffix(".gen.wsr").write_text(out, encoding="utf-8")
    size = len(text.encode()) / 1e6
    print(f"recording: {events:,} events, {size:.1f} MB; {_generalize.notes:,} values "
          f"generalized")
    print(f"{'':12}{'seconds':>10}{'events/s':>12}{'ratio':>8}")
    for name in ("fmt", "generalize"):
        print(f"{name:12}{best[name]:>10.2f}{events / best[name]:>12,.0f}"
              f"{best[name] / best['fmt']:>8.2f}")


if __name__ == "__main__":
    main()
