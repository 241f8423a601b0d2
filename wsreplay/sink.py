"""The scenario file a recording goes to: append-only, and valid at every moment.

:class:`Sink` is what :class:`wsreplay.recorder.Recorder` writes through: an append becomes
visible all at once, even to a process killed with SIGKILL, and big appends are written by a
writer thread while the event loop goes on.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from pathlib import Path
from typing import Callable

from .redact import Namer
from .writer import HEADER

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Sink:
    """One scenario file, created 0600 (never overwriting), that parses after every append.

    ``append`` makes its text visible atomically with respect to SIGKILL: the kernel applies
    a write to a regular file page by page and a fatal signal can stop it between pages, so
    text that fits in the current page goes in one write; otherwise it goes line by line in
    page-sized runs, and a line that itself crosses a page boundary is first written as a
    comment (``#`` for its first byte) and turned into its real self by a one-byte write once
    all of it is in. A cut therefore leaves whole lines and at most one comment line. A
    multi-line (fenced) step cannot be cut into lines that way: :meth:`aligned` pads before it
    so it lands inside one page; the recorder never writes one longer than a page (it quotes
    such text on one line instead).

    ``submit`` appends big texts from a writer thread (the write costs more than the hand-over,
    and the event loop goes on meanwhile); the caller awaits the future it returns before
    acting on what was written. Writes are applied in the order they were asked for.

    Group commit: while :attr:`group` is set, ``submit`` only queues its text; what the
    event loop's callbacks queued in one turn goes out in one write at the end of it, and
    :meth:`after` runs a callback once everything queued before it is in the file (the
    proxy's fast path forwards that way, paying one write for many messages).
    """

    broken = False  # a write failed: the recorder writes nothing more here
    # Texts at least this big are written by the writer thread. Below it the hand-over
    # (locks, a thread wake-up, a loop wake-up) costs more CPU than the write itself:
    # measured here, a 64 KiB binary message's 87 KB line takes 31 µs written on the
    # event loop and ~90 µs handed to the thread.
    BACKGROUND = 1024 * 1024

    def __init__(self, path: Path, header: str = HEADER):
        self.path = Path(path)
        self._end = 0
        self.names = Namer()  # the variables of the file's redacted values
        self.t0 = 0.0
        self.on_error: Callable[[OSError], None] | None = None  # a background write failed
        self._queue: deque = deque()  # (data, offset, future), oldest first, until written
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.group = False  # submit() queues for the group write (see the class docstring)
        self._grouped: list[bytes] = []  # texts queued, to be written at _grouped_at
        self._grouped_at = 0
        self.backlog = 0  # bytes queued for the group write or the writer thread
        # Writes are numbered: _gen the last one asked for, _done_gen the last one done;
        # callbacks wait in order for the write that was last when they came.
        self._gen = self._done_gen = 0
        self._callbacks: deque = deque()  # (write number, callback, args)
        self._loop: asyncio.AbstractEventLoop | None = None
        # The file appears (never replacing one) only once its header is in: a hidden
        # temporary name, then a hard link to the real one.
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        self._fd: int | None = os.open(tmp, flags, 0o600)
        try:
            self.append(header)
            os.link(tmp, self.path)
        except BaseException:
            self.close()
            raise
        finally:
            os.unlink(tmp)

    def append(self, text: str | bytes) -> None:
        """Add ``text`` (whole lines) at the end of the file, after any background writes;
        raises OSError (disk full...) after cutting the file back to what it was, so it still
        parses. ``text`` may be UTF-8 bytes already."""
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        if not data:
            return
        if self._grouped:
            self.flush()
        self._drain()
        start = self._end
        self._write_at(data, start)
        self._end = start + len(data)

    def submit(self, text: str | bytes) -> asyncio.Future | None:
        """Append ``text``; a big one (or any while others are being written) goes to the
        writer thread and the future to await is returned (it never fails: a failed write goes
        to ``on_error`` and nothing more is written). ``None``: written already. ``text`` may
        be UTF-8 bytes already (a big binary message's line is built as bytes: no copies)."""
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        size = len(data)
        if self.group:
            self._group(data)
            return None
        if self._grouped:
            self.flush()
        if not self._queue and size < self.BACKGROUND:
            start = self._end
            if size:  # _write_at cuts a failed write back (a file size limit ends it midway)
                self._write_at(data, start)
            self._end = start + size
            return None
        try:
            future = asyncio.get_running_loop().create_future()
        except RuntimeError:  # no event loop: write here and now
            self.append(text)
            return None
        self._gen += 1
        gen = self._gen
        future.add_done_callback(lambda _: self._written_up_to(gen))
        with self._cond:
            self._queue.append((data, self._end, future))
            self.backlog += len(data)
            self._end += len(data)
            self._start_thread()
            self._cond.notify()
        return future

    def _group(self, data: bytes) -> None:
        if not self._grouped:
            self._gen += 1
            self._grouped_at = self._end
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self.flush)
        self._grouped.append(data)
        self.backlog += len(data)
        self._end += len(data)

    def after(self, callback, *args) -> None:
        """Run ``callback(*args)`` once everything appended so far is in the file (or could
        not be written): now, at the end of this event loop turn, or when the writer thread
        is done. Callbacks run in the order they were given."""
        if self._done_gen == self._gen and not self._callbacks:
            callback(*args)
        else:
            self._callbacks.append((self._gen, callback, args))

    def _written_up_to(self, gen: int) -> None:
        self._done_gen = max(self._done_gen, gen)
        callbacks = self._callbacks
        while callbacks and callbacks[0][0] <= self._done_gen:
            _, callback, args = callbacks.popleft()
            callback(*args)

    def flush(self) -> None:
        """Write what the group holds (called at the end of the loop turn it was queued in,
        and before any other write): small texts joined into one write, big ones written
        each from where it is (joining them would copy them all)."""
        if not self._grouped:
            return
        items, start, gen = self._grouped, self._grouped_at, self._gen
        self._grouped = []
        total = sum(map(len, items))
        if len(items) > 1 and total < 1 << 16:
            items = [b"".join(items)]
        if not self.broken and (self._queue or total >= self.BACKGROUND):
            futures = [self._loop.create_future() for _ in items]
            futures[-1].add_done_callback(lambda _: self._written_up_to(gen))
            with self._cond:  # stays in the backlog until the thread has written it
                for item, offset, future in zip(items, _offsets(items, start), futures):
                    self._queue.append((item, offset, future))
                self._start_thread()
                self._cond.notify()
            return
        self.backlog -= total
        if not self.broken:
            try:
                for item, offset in zip(items, _offsets(items, start)):
                    self._write_at(item, offset)
            except OSError as exc:  # what was written before stays: whole steps
                self.broken = True
                if self.on_error is not None:
                    self.on_error(exc)
        self._written_up_to(gen)

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="wsreplay-writer",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = list(self._queue)  # left queued until written: _drain waits for it
            error = None
            for data, offset, _ in batch:  # one by one: joining them would copy them all
                if self.broken:
                    break
                try:
                    self._write_at(data, offset)
                except OSError as exc:
                    error = exc
                    self.broken = True
            with self._cond:
                for _ in batch:
                    self._queue.popleft()
                self._cond.notify_all()
            loop = batch[0][2].get_loop()
            try:
                loop.call_soon_threadsafe(self._written, [item[2] for item in batch],
                                          sum(len(item[0]) for item in batch), error)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def _written(self, futures: list, size: int, error: OSError | None) -> None:
        self.backlog -= size  # here, on the loop's thread, which alone changes it
        for future in futures:
            if not future.done():
                future.set_result(None)
        if error is not None and self.on_error is not None:
            self.on_error(error)

    def _drain(self) -> None:
        with self._cond:
            while self._queue:
                self._cond.wait()

    def _write_at(self, data: bytes, start: int) -> None:
        try:
            if start // PAGE == (start + len(data) - 1) // PAGE:
                self._write(data, start)
            else:
                self._append_lines(data, start)
        except OSError:
            try:  # a partial write would leave half a line: a message that was never sent
                os.ftruncate(self._fd, start)
            except OSError:
                pass
            raise

    def aligned(self, steps: list[bytes]) -> bytes:
        """``steps`` (UTF-8) joined, with a padding comment before each multi-line one that
        would cross a page boundary, so that it lands inside one page and is written in one
        piece (a fenced block cut in two does not parse). A step longer than a page cannot be
        helped this way: the recorder writes none. Call right before appending the result."""
        pos, out = self._end, []  # _end counts the background writes still queued
        for step in steps:
            size = len(step)
            if step.count(b"\n") > 1 and size <= PAGE and pos // PAGE != (pos + size - 1) // PAGE:
                gap = PAGE - pos % PAGE
                out.append(b"\n" if gap == 1 else b"#" + b" " * (gap - 2) + b"\n")
                pos += gap
            out.append(step)
            pos += size
        return b"".join(out)

    def _append_lines(self, data: bytes, start: int) -> None:
        view = memoryview(data)
        run = pos = 0  # data[run:pos] is a run of whole lines inside one page, not yet written
        while pos < len(data):
            nl = data.find(b"\n", pos)
            end = len(data) if nl < 0 else nl + 1
            if (start + run) // PAGE != (start + end - 1) // PAGE:
                if run < pos:
                    self._write(view[run:pos], start + run)
                run = pos
                if (start + pos) // PAGE != (start + end - 1) // PAGE:
                    self._write_line(view[pos:end], start + pos)
                    run = end
            pos = end
        if run < pos:
            self._write(view[run:pos], start + run)

    def _write_line(self, line, offset: int) -> None:
        first = bytes(line[:1])
        if first in (b"#", b"\n") or first[0] >= 0x80:
            self._write(line, offset)
            return
        self._write_commented(line, offset)
        self._write(first, offset)

    def _write_commented(self, line, offset: int) -> None:
        """``line`` with ``#`` for its first byte: the ``#`` first, then the rest from
        ``line`` itself (a big line is not copied); a cut in between leaves a lone ``#``."""
        self._write(b"#", offset)
        self._write(line[1:], offset + 1)

    def _write(self, data: bytes, offset: int) -> None:
        done = os.pwrite(self._fd, data, offset)
        if done < len(data):  # rare on a regular file: go on from where it stopped
            view = memoryview(data)[done:]
            offset += done
            while view:
                done = os.pwrite(self._fd, view, offset)
                view, offset = view[done:], offset + done

    def close(self) -> None:
        """Finish the group and background writes, then close the file."""
        if self._grouped and self._fd is not None:
            self.flush()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _offsets(items: list[bytes], start: int) -> list[int]:
    offsets = []
    for item in items:
        offsets.append(start)
        start += len(item)
    return offsets


class _Unwritten:
    """Stands in for a file that could not be created: takes nothing."""

    broken = True
    group = False
    backlog = 0

    def __init__(self, path: Path, t0: float):
        self.path, self.t0 = path, t0
        self.names = Namer()

    def after(self, callback, *args) -> None:
        callback(*args)

    def append(self, text: str | bytes) -> None:
        pass

    def submit(self, text: str | bytes) -> None:
        pass

    def aligned(self, steps: list[bytes]) -> bytes:
        return b"".join(steps)

    def close(self) -> None:
        pass
