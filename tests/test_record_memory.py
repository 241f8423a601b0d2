"""``wsreplay record`` keeps the memory it frees (glibc's malloc tuned at start), so recording big
messages does not pay for fresh pages on every message; a user's own ``MALLOC_*`` settings win."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                reason="the tuning is glibc's (Linux); elsewhere it does nothing")

# In a fresh interpreter: tune or not, then allocate a 2 MiB block and print whether the tuning
# applied and how many blocks malloc served with their own mmap meanwhile.
PROBE = """
import ctypes, sys
from wsreplay.commands.record import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                "usmblks", "fsmblks", "uordblks", "fordblks",
                                                "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
tuned = keep_freed_memory() if sys.argv[1] == "tune" else None
before = libc.mallinfo2().hblks
block = bytearray(2 * 1024 * 1024)
print(tuned, libc.mallinfo2().hblks - before)
"""


def probe(mode: str, **env) -> str:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    done = subprocess.run([sys.executable, "-c", PROBE, mode], env={**clean, **env},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_big_blocks_come_from_the_heap_once_tuned():
    assert probe("leave") == "None 1"  # glibc's default: a 2 MiB block is an mmap of its own
    assert probe("tune") == "True 0"


def test_a_users_malloc_setting_is_left_alone():
    assert probe("tune", MALLOC_ARENA_MAX="2") == "False 1"
    assert probe("tune", GLIBC_TUNABLES="glibc.malloc.trim_threshold=1000000") == "False 1"


def test_wsreplay_record_tunes_malloc_before_it_serves(monkeypatch, tmp_path):
    from wsreplay import cli
    from wsreplay.commands import record

    calls = []
    monkeypatch.setattr(record, "keep_freed_memory", lambda: calls.append("tuned"))

    async def serve(args, config, recorder):
        calls.append("served")
        recorder.close(footer=False)
        return 0

    monkeypatch.setattr(record, "_serve", serve)
    code = cli.main(["record", "--target", "ws://127.0.0.1:9", "--out",
                     str(tmp_path / "x.wsr"), "-q"])
    assert (code, calls) == (0, ["tuned", "served"])
