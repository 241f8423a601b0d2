"""Helpers for tests/test_hostile.py: hostile bytes for a WebSocket server, a strict reader of
what a server sends back, long-lived ``record`` and ``serve`` processes, a test certificate.

* :data:`UPGRADE`: a valid upgrade request for ``/echo``; :func:`exchange` sends bytes on a
  fresh connection and returns what came back and how the connection ended.
* :func:`check_answer`: fails unless the bytes are an HTTP answer that is not a server error
  (5xx from the server itself) and, after a 101, well-formed server frames (RFC 6455 §5).
* :class:`Served`: a ``wsreplay record`` (with its upstream) or ``wsreplay serve`` process,
  able to say whether it still serves a good client.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from .conftest import READY, TESTS, T, Proc

KEY = base64.b64encode(b"wsreplay hostile").decode()
UPGRADE = (b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\n\r\n")
IDLE = 0.15  # a server with nothing more to say has said it by then (loopback)
VALID_OPCODES = {0, 1, 2, 8, 9, 10}


def exchange(port: int, data: bytes, *, reset: bool = False) -> tuple[bytes, str]:
    """Send ``data`` on a new connection and read until the server closes or goes quiet for
    :data:`IDLE`; then close (with a reset when ``reset``). Returns the bytes and "eof",
    "reset" or "idle". Bounded by ``T``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=T)
    out, how = bytearray(), "idle"
    deadline = time.monotonic() + T
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped listening to us: what it said is still to be read
        sock.settimeout(IDLE)
        while time.monotonic() < deadline:
            chunk = sock.recv(1 << 16)
            if not chunk:
                how = "eof"
                break
            out += chunk
    except socket.timeout:
        pass
    except ConnectionResetError:
        how = "reset"
    finally:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    return bytes(out), how


def check_answer(data: bytes) -> int | None:
    """The HTTP status of a server's answer (None for no answer), after checking it: not a 500
    (the server's own failure), and after a 101 only well-formed, unmasked server frames,
    control frames short and unfragmented, a close code that may go on the wire."""
    if not data:
        return None
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/"), f"not an HTTP answer: {data[:80]!r}"
    version, status = head[5:8], int(head.split(b" ", 2)[1])
    assert status != 500, f"the server failed: {data[:300]!r}"
    if status == 101:  # RFC 6455 4.1: the upgrade request is HTTP/1.1 or newer
        assert version == b"1.1", f"an upgrade answered in HTTP/{version.decode()}"
        assert sep, "a 101 with no end of headers"
        check_frames(rest)
    return status  # (an error answers in the request's version, HTTP/0.9 included: aiohttp)


def check_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Parse server frames; AssertionError on anything RFC 6455 forbids a server to send."""
    frames, pos = [], 0
    while pos < len(data):
        assert len(data) - pos >= 2, f"a truncated frame header at {pos}"
        b0, b1 = data[pos], data[pos + 1]
        opcode, length, pos = b0 & 0x0F, b1 & 0x7F, pos + 2
        assert b0 & 0x70 == 0, f"reserved bits set in a server frame: {b0:#x}"
        assert opcode in VALID_OPCODES, f"unknown opcode {opcode}"
        assert not b1 & 0x80, "a masked server frame"
        if length >= 126:
            size = 2 if length == 126 else 8
            length = int.from_bytes(data[pos:pos + size], "big")
            pos += size
        payload = data[pos:pos + length]
        assert len(payload) == length, "a truncated frame payload"
        pos += length
        if opcode >= 8:
            assert b0 & 0x80 and length <= 125, "a fragmented or oversized control frame"
        if opcode == 8 and length:
            assert length >= 2, "a close payload of one byte"
            code = struct.unpack("!H", payload[:2])[0]
            assert 1000 <= code <= 4999 and code not in (1004, 1005, 1006, 1015), \
                f"close code {code} may not go on the wire"
            payload[2:].decode("utf-8")
        frames.append((opcode, payload))
    return frames


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0,
                 mask: bytes | None = b"\x01\x02\x03\x04", length: int | None = None) -> bytes:
    """A client frame, possibly broken on purpose: any RSV bits, no mask, a length field that
    disagrees with the payload."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv & 7) << 4 | opcode & 0x0F])
    flag = 0x80 if mask is not None else 0
    if n < 126:
        head += bytes([flag | n])
    elif n < 1 << 16:
        head += bytes([flag | 126]) + struct.pack("!H", n)
    else:
        head += bytes([flag | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_fds(pid: int, most: int, timeout: float = T) -> int:
    """Wait (bounded) until process ``pid`` has at most ``most`` descriptors open; the count."""
    deadline = time.monotonic() + timeout
    while (n := fd_count(pid)) > most and time.monotonic() < deadline:
        time.sleep(0.05)
    return n


class Served:
    """A long-lived server process under attack: ``kind`` is "record" (with its upstream,
    tests/fault_upstream.py) or "serve" (an echo scenario). Stop it with :meth:`stop`."""

    SCENARIO = ("wsreplay 1\nconn c1 ws://127.0.0.1/echo\nc1 > text hi\nc1 < text hi\n"
                "c1 > close 1000\nc1 < close 1000\n")

    def __init__(self, kind: str, folder: Path):
        self.kind, self.procs = kind, []
        self.attacks = 0  # inputs sent by the test under way
        python = sys.executable
        if kind == "record":
            upstream = self._start([python, TESTS / "fault_upstream.py"])
            self.proc = self._start([python, "-m", "wsreplay", "record", "--target",
                                     f"ws://127.0.0.1:{upstream.port}", "--listen",
                                     "127.0.0.1:0", "--out", folder / "fuzz.wsr"])
        else:
            scenario = folder / "echo.wsr"
            scenario.write_text(self.SCENARIO)
            self.proc = self._start([python, "-m", "wsreplay", "serve", scenario,
                                     "--listen", "127.0.0.1:0"])
        self.port = self.proc.port
        assert self.serves_a_good_client()
        self.baseline = fd_count(self.pid)

    def _start(self, args, ready: bool = True) -> Proc:
        proc = Proc([str(a) for a in args], stdin=False)
        self.procs.append(proc)
        if ready:
            line = proc.wait_line(READY.search)
            proc.port = int(READY.search(line).group(1))
        return proc

    @property
    def pid(self) -> int:
        return self.proc.popen.pid

    def serves_a_good_client(self) -> bool:
        """A good client still gets its echo and a clean closing handshake."""
        hello = client_frame(1, b"hi") + client_frame(8, struct.pack("!H", 1000))
        data, _ = exchange(self.port, UPGRADE + hello)
        assert check_answer(data) == 101, data[:200]
        frames = check_frames(data.partition(b"\r\n\r\n")[2])
        assert frames[:2] == [(1, b"hi"), (8, struct.pack("!H", 1000))], frames
        return True

    def alive(self) -> bool:
        return self.proc.popen.poll() is None

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def self_signed(folder: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (openssl CLI) and its key."""
    cert, key = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=30)
    return cert, key
