"""Shared test infrastructure: the one timeout constant, ports, subprocess peers.

* ``T``: every wait in every test derives from it (``T``, ``T / 10``, ``2 * T``...). Set
  ``WSREPLAY_TEST_TIMEOUT_SCALE=3`` on a slow machine; nothing else needs to change.
* ``free_port()``: a port on 127.0.0.1 that was free a moment ago.
* ``spawn``: a factory fixture starting a subprocess (optionally waiting for its ``listening on
  PORT`` line); every process it starts is killed when the test ends.
* ``node_peers``: the ``tests/peers`` folder with its ``node_modules``; ``node_server`` and
  ``node_client`` start ``ws_server.js`` / ``ws_client.js`` from it (see their headers).

Test modules import the helpers with ``from .conftest import T, free_port`` (tests/ is a
package).

Under CI (env ``CI`` set) a missing Node, npm or ``node_modules`` fails the test instead of
skipping it, so a broken CI setup can never pass by skipping.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import settings

# Under CI the property tests replay the same examples on every run, so a submission lands or
# not on its own merits; locally they explore new examples each run (and keep what failed).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# The ONE timeout constant (seconds): a generous bound for anything that should happen "at once"
# on loopback.
T = float(os.environ.get("WSREPLAY_TEST_TIMEOUT_SCALE", "1")) * 5.0

IN_CI = bool(os.environ.get("CI"))
TESTS = Path(__file__).resolve().parent
PEERS = TESTS / "peers"
READY = re.compile(r"listening on (\d+)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free when asked (another process may take it later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def missing(reason: str):
    """Skip the test locally; fail it loudly under CI, where nothing may be missing."""
    if IN_CI:
        pytest.fail(f"CI environment incomplete: {reason}", pytrace=False)
    pytest.skip(reason)


class Proc:
    """A running subprocess whose output lines are collected by reader threads.

    ``lines`` holds stdout lines (without newline) as they arrive; ``port`` is set when the
    process was started with a ready pattern. Wait for output with :meth:`wait_line` (blocking)
    or :meth:`await_line` (from a coroutine, without blocking the event loop).
    """

    def __init__(self, args: list[str], *, stdin: bool, env=None, cwd=None):
        self.args = args
        self.popen = subprocess.Popen(
            args, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
        )
        self.lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.port: int | None = None
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._read, args=(self.popen.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.popen.stderr, self.stderr_lines),
                             daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, stream, sink: list[str]) -> None:
        try:
            for raw in stream:
                with self._cond:
                    sink.append(raw.decode("utf-8", "replace").rstrip("\n"))
                    self._cond.notify_all()
        except (ValueError, OSError):
            pass  # stop() closed the pipe under us: the output has ended either way
        with self._cond:
            self._cond.notify_all()

    def _find(self, pred, start: int) -> int | None:
        for i in range(start, len(self.lines)):
            if pred(self.lines[i]):
                return i
        return None

    def wait_line(self, pred, timeout: float = T, start: int = 0) -> str:
        """The first stdout line (from index ``start``) for which ``pred(line)`` is true.

        Raises AssertionError, with the output so far, when none comes within ``timeout`` or the
        process ends first.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                ended = not self._threads[0].is_alive()  # checked first: no line can follow it
                found = self._find(pred, start)
                if found is not None:
                    return self.lines[found]
                left = deadline - time.monotonic()
                if left <= 0 or ended:
                    raise AssertionError(f"no matching line within {timeout:.1f}s\n{self.describe()}")
                self._cond.wait(min(left, 0.05))

    async def await_line(self, pred, timeout: float = T, start: int = 0) -> str:
        """Like :meth:`wait_line`, polling so the event loop keeps running meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                ended = not self._threads[0].is_alive()
                found = self._find(pred, start)
                if found is not None:
                    return self.lines[found]
            if ended or time.monotonic() >= deadline:
                raise AssertionError(f"no matching line within {timeout:.1f}s\n{self.describe()}")
            await asyncio.sleep(0.01)

    def events(self) -> list[dict]:
        """Every stdout line so far that is a JSON object, parsed (the peers' event lines)."""
        with self._cond:
            lines = list(self.lines)
        return [json.loads(line) for line in lines if line.startswith("{")]

    async def await_event(self, **fields) -> dict:
        """The first JSON event line whose fields include all of ``fields`` (bounded by T)."""
        line = await self.await_line(lambda l: _event_has(l, fields))
        return json.loads(line)

    def write(self, obj) -> None:
        """Send one JSON line (or a str line) to the process's stdin."""
        line = obj if isinstance(obj, str) else json.dumps(obj)
        self.popen.stdin.write(line.encode() + b"\n")
        self.popen.stdin.flush()

    def close_stdin(self) -> None:
        self.popen.stdin.close()

    def wait(self, timeout: float = T) -> int:
        """The exit code, once the process has ended and its output has been read (bounded)."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout:.1f}s\n{self.describe()}") from None
        for thread in self._threads:
            thread.join(timeout)
        return code

    async def await_exit(self, timeout: float = T) -> int:
        """Like :meth:`wait`, polling so the event loop keeps running meanwhile."""
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None:
            if time.monotonic() >= deadline:
                raise AssertionError(f"still running after {timeout:.1f}s\n{self.describe()}")
            await asyncio.sleep(0.01)
        return self.wait(timeout)

    def stop(self) -> None:
        """Kill the process (if still running) and reap it. Safe to call more than once."""
        if self.popen.poll() is None:
            self.popen.kill()
        try:
            self.popen.wait(T)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
            pass
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream:
                try:
                    stream.close()
                except OSError:
                    pass

    def describe(self) -> str:
        with self._cond:
            out, err = "\n".join(self.lines[-40:]), "\n".join(self.stderr_lines[-40:])
        return (f"command: {' '.join(self.args)}\nexit code: {self.popen.poll()}\n"
                f"--- stdout (last lines) ---\n{out}\n--- stderr (last lines) ---\n{err}")


def _event_has(line: str, fields: dict) -> bool:
    if not line.startswith("{"):
        return False
    event = json.loads(line)
    return all(event.get(key) == value for key, value in fields.items())


@pytest.fixture
def spawn():
    """A factory: ``spawn(args, ready=True, stdin=False, env=None, cwd=None, timeout=T) -> Proc``.

    With ``ready`` true it waits (bounded) for a ``listening on PORT`` line and sets
    ``proc.port``; a process that dies or stays silent fails the test with its output. Every
    process started is killed when the test ends.
    """
    started: list[Proc] = []

    def start(args, *, ready=True, stdin=False, env=None, cwd=None, timeout=T) -> Proc:
        proc = Proc([str(a) for a in args], stdin=stdin, env=env, cwd=cwd)
        started.append(proc)
        if ready:
            line = proc.wait_line(READY.search, timeout)
            proc.port = int(READY.search(line).group(1))
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def node_peers() -> Path:
    """``tests/peers`` with ``node_modules`` installed (``npm ci --prefix tests/peers``)."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed (the Node test peers need Node.js and npm)")
    if not (PEERS / "node_modules" / "ws" / "package.json").is_file():
        missing("tests/peers/node_modules is missing: run `npm ci --prefix tests/peers`")
    return PEERS


@pytest.fixture
def node_server(node_peers, spawn):
    """A factory: ``node_server(*options) -> Proc`` running ``ws_server.js`` (``proc.port`` set)."""

    def start(*options) -> Proc:
        return spawn(["node", node_peers / "ws_server.js", *options])

    return start


@pytest.fixture
def node_client(node_peers, spawn):
    """A factory: ``node_client(url, *options, steps=None) -> Proc`` running ``ws_client.js``.

    ``steps`` (a list of dicts) are written to its stdin, which is then closed; with
    ``steps=None`` stdin stays open for ``proc.write(step)``. Its own timeout is ``2 * T``.
    """

    def start(url, *options, steps=None) -> Proc:
        args = ["node", node_peers / "ws_client.js", url, "--timeout", f"{2 * T:.1f}", *options]
        proc = spawn(args, ready=False, stdin=True)
        if steps is not None:
            for step in steps:
                proc.write(step)
            proc.close_stdin()
        return proc

    return start


@pytest.fixture
def python_exe() -> str:
    """The interpreter running the tests (use it to start ``-m wsreplay`` subprocesses)."""
    return sys.executable


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes tens of seconds (deselect with -m 'not slow')")
