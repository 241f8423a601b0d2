"""The sink's group commit (Sink.group / after / flush): what the fast path forwards waits for
the lines before it, in order, whether they are written at the end of the loop turn or by the
writer thread."""

from __future__ import annotations

import asyncio
import time

from wsreplay.sink import Sink
from wsreplay.writer import HEADER

from .conftest import T


def line(i: int, size: int = 20) -> bytes:
    return b"# " + str(i).encode() + b" " + b"x" * size + b"\n"


async def test_grouped_lines_go_out_in_one_write_at_the_end_of_the_turn(tmp_path):
    sink = Sink(tmp_path / "g.wsr")
    writes = []
    real = sink._write
    sink._write = lambda data, offset: (writes.append(bytes(data)), real(data, offset))
    seen = []
    sink.group = True
    for i in range(5):
        sink.submit(line(i))
        sink.after(seen.append, i)
    sink.group = False
    assert seen == [] and sink.backlog == 5 * len(line(0))  # nothing written yet
    await asyncio.sleep(0)  # the end of the loop turn
    assert seen == [0, 1, 2, 3, 4] and sink.backlog == 0
    assert writes == [b"".join(line(i) for i in range(5))]  # one write
    sink.after(seen.append, "now")  # nothing pending: runs at once
    assert seen[-1] == "now"
    sink.close()
    assert (tmp_path / "g.wsr").read_bytes() == HEADER.encode() + writes[0]


async def test_callbacks_keep_their_order_across_the_writer_thread(tmp_path):
    """A big group goes to the writer thread; a small one after it, and a callback given when
    nothing is grouped any more, still wait for it (a first version ran them early)."""
    sink = Sink(tmp_path / "t.wsr")
    sink.BACKGROUND = 1000
    order = []
    sink.group = True
    sink.submit(line(1, 5000))
    sink.after(order.append, "big")
    sink.group = False
    await asyncio.sleep(0)  # flushed: to the thread
    time.sleep(0.1)  # the thread is done, the loop has not heard yet (it is blocked here)
    sink.after(order.append, "no lines of its own")
    sink.group = True
    sink.submit(line(2))
    sink.after(order.append, "small")
    sink.group = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + T
    while len(order) < 3 and loop.time() < deadline:
        await asyncio.sleep(0.01)
    assert order == ["big", "no lines of its own", "small"]
    assert sink.backlog == 0
    sink.close()
    text = (tmp_path / "t.wsr").read_bytes()
    assert text == HEADER.encode() + line(1, 5000) + line(2)


async def test_a_write_that_fails_still_runs_the_callbacks_and_says_so(tmp_path):
    sink = Sink(tmp_path / "f.wsr")
    errors, seen = [], []
    sink.on_error = errors.append

    def fail(data, offset):
        raise OSError(28, "No space left on device")
    sink._write = fail
    sink.group = True
    sink.submit(line(1))
    sink.after(seen.append, "forwarded anyway")
    sink.group = False
    await asyncio.sleep(0)
    assert seen == ["forwarded anyway"] and sink.broken
    assert [e.errno for e in errors] == [28]
    sink.close()
    assert (tmp_path / "f.wsr").read_bytes() == HEADER.encode()  # cut back to whole steps
