"""Helpers for the fault and hostile-input suites (tests/test_faults.py, tests/test_hostile.py)
and for bench/load.py.

* :func:`rss_kib`, :func:`open_fds`: a process's resident memory and open descriptors (Linux
  ``/proc``), to check that memory stays bounded and descriptors come back.
* :class:`RawClient`: a WebSocket client on wsproto over a bare asyncio stream: it can stop
  reading (so TCP backpressure reaches the proxy), end with a TCP reset, or send any bytes.
* :func:`tmpfs`: a tiny RAM file system (when this process may mount one) for disk-full and
  read-only folders; :func:`fsize_limited` is the fallback: a command whose process may not
  write files past a size.
* :func:`figure`: a measured figure for ``docs/reliability.md`` (see
  ``bench/reliability_report.py``); a no-op unless ``WSREPLAY_FIGURES`` names a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

from wsproto import ConnectionType, WSConnection
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Message, Ping,
                            RejectConnection, Request, TextMessage)

FIGURES_ENV = "WSREPLAY_FIGURES"


def rss_kib(pid: int) -> int:
    """Resident memory of process ``pid`` in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def open_fds(pid: int) -> int:
    """How many file descriptors process ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def figure(name: str, **values) -> None:
    """Keep a measured figure (one JSON line, with the test that measured it) when
    ``WSREPLAY_FIGURES`` names a file."""
    path = os.environ.get(FIGURES_ENV)
    if path:
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1].rsplit(" (", 1)[0]
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"figure": name, "test": test, **values}) + "\n")


def record_args(python_exe: str, target: str, *extra) -> list:
    """``python -m wsreplay record`` on an ephemeral port (it prints ``listening on PORT``)."""
    return [python_exe, "-m", "wsreplay", "record", "--target", target,
            "--listen", "127.0.0.1:0", *extra]


def fsize_limited(args: list, limit: int) -> list:
    """``args`` run with RLIMIT_FSIZE = ``limit`` bytes: writing a regular file past it fails
    with EFBIG (Python ignores SIGXFSZ), as on a full disk."""
    code = ("import os, resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            "os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", code, *map(str, args)]


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "64k", readonly: bool = False):
    """Mount a tmpfs of ``size`` on ``path`` (created); yields True when mounted, False when
    this process may not mount (then ``path`` is a plain folder). Always unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0700" + (",ro" if readonly else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, timeout=10) if hasattr(os, "geteuid") \
        and os.geteuid() == 0 else None
    mounted = done is not None and done.returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


def remount(path: Path, mode: str) -> None:
    """Remount the tmpfs at ``path`` ``ro`` or ``rw`` (raises CalledProcessError)."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True,
                   capture_output=True, timeout=10)


class RawClient:
    """A WebSocket client driven by hand: wsproto over an asyncio stream.

    ``await RawClient.connect(port, path)`` does the opening handshake (raises
    ``ConnectionError`` when refused). :meth:`events` reads what arrived, :meth:`send` sends
    a wsproto event, :meth:`reset` ends the TCP connection with a reset.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.closed: CloseConnection | None = None

    @classmethod
    async def connect(cls, port: int, path: str = "/", timeout: float = 5.0,
                      limit: int = 1 << 16) -> "RawClient":
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, limit=limit), timeout)
        client = cls(reader, writer)
        writer.write(client.ws.send(Request(host=f"127.0.0.1:{port}", target=path)))
        for event in await client.events(timeout, until=lambda e: isinstance(
                e, (AcceptConnection, RejectConnection))):
            if isinstance(event, RejectConnection):
                writer.close()
                raise ConnectionError(f"refused: {event.status_code}")
        return client

    async def events(self, timeout: float, until=None, count: int | None = None) -> list:
        """Events received until ``until(event)`` is true for one of them, ``count`` data
        messages have come, or the connection ends; raises TimeoutError after ``timeout``."""
        got: list = []
        messages = 0

        async def pump():
            nonlocal messages
            while True:
                data = await self.reader.read(1 << 16)
                self.ws.receive_data(data or None)
                for event in self.ws.events():
                    got.append(event)
                    if isinstance(event, Ping):
                        self.writer.write(self.ws.send(event.response()))
                    if isinstance(event, Message) and event.message_finished:
                        messages += 1
                    if isinstance(event, CloseConnection):
                        self.closed = event
                        return
                    if (until and until(event)) or (count is not None and messages >= count):
                        return
                if not data:
                    return

        await asyncio.wait_for(pump(), timeout)
        return got

    def send(self, event) -> None:
        self.writer.write(self.ws.send(event))

    def send_text(self, text: str) -> None:
        self.send(TextMessage(text))

    def reset(self) -> None:
        """End the TCP connection with a reset (SO_LINGER 0), no close frame."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def message_data(events) -> list:
    """The complete data messages among wsproto ``events`` (text as str, binary as bytes);
    fragments are joined."""
    out, parts = [], []
    for event in events:
        if isinstance(event, (TextMessage, BytesMessage)):
            parts.append(event.data)
            if event.message_finished:
                out.append(("" if isinstance(event, TextMessage) else b"").join(parts))
                parts = []
    return out
