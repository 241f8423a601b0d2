"""The open-file limit (RLIMIT_NOFILE), raised at start by ``record`` and ``serve``.

Every connection costs a descriptor (two through ``record``: the client's and the upstream's).
Many systems start a process with a soft limit of 1,024 and let it raise that to a far higher
hard limit itself (systemd's default hard limit is 524,288); a server that does not is capped
near 1,000 descriptors, about 480 connections through ``record``. :func:`prepare` raises the
soft limit to the hard one and returns a warning when even that leaves room for fewer
connections than the README promises (:data:`PROMISED`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

try:
    import resource
except ImportError:  # Windows: no such limit to raise
    resource = None

__all__ = ["PROMISED", "RESERVE", "Limit", "prepare", "raise_soft_limit", "soft_limit",
           "warning"]

PROMISED = 1_000  # concurrent connections the README's reliability figures promise
RESERVE = 64  # descriptors kept for the rest: std streams, listening sockets, files, DNS
_FALLBACKS = (1 << 20, 10_240)  # tried in turn where the hard limit is unlimited (macOS)


@dataclass(frozen=True)
class Limit:
    """The soft limit ``before`` and ``after`` raising it, and the hard limit (None: this
    platform has none)."""

    before: int | None
    after: int | None
    hard: int | None

    def connections(self, per_connection: int) -> int | None:
        """How many connections of ``per_connection`` descriptors fit (None: no limit)."""
        if self.after is None:
            return None
        return max(0, (self.after - RESERVE) // per_connection)


def soft_limit() -> int | None:
    """The soft limit on open files now (None: no limit, or none on this platform)."""
    if resource is None:
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def raise_soft_limit() -> Limit:
    """Raise the soft limit on open files to the hard limit (or as near as the system lets);
    the limits before and after. Never fails: a limit that cannot be raised stays."""
    if resource is None:
        return Limit(None, None, None)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        targets = _FALLBACKS
    else:
        targets = (hard,)
    for target in targets:
        if soft != resource.RLIM_INFINITY and soft >= target:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            break
        except (ValueError, OSError):
            continue
    after = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    as_int = lambda n: None if n == resource.RLIM_INFINITY else n  # noqa: E731
    return Limit(as_int(soft), as_int(after), as_int(hard))


def warning(name: str, limit: Limit, per_connection: int, promised: int = PROMISED) -> str | None:
    """The line to print when ``limit`` leaves room for fewer than ``promised`` connections
    of ``per_connection`` descriptors each; None when there is room."""
    fits = limit.connections(per_connection)
    if fits is None or fits >= promised:
        return None
    raised = "" if limit.after == limit.before else f" (raised from {limit.before:,})"
    return (f"{name}: warning: at most {limit.after:,} open files{raised}, room for about "
            f"{fits:,} connections at once, not {promised:,}; raise the hard limit (`ulimit -Hn`, "
            f"LimitNOFILE= in a systemd unit) to at least {promised * per_connection + RESERVE:,}")


def prepare(name: str, per_connection: int,
            warn: Callable[[str], None] | None = None) -> Limit:
    """Raise the soft limit (:func:`raise_soft_limit`) and pass :func:`warning`'s line, if
    any, to ``warn`` (default: stderr). Call once, before listening."""
    limit = raise_soft_limit()
    line = warning(name, limit, per_connection)
    if line:
        (warn or (lambda text: print(text, file=sys.stderr, flush=True)))(line)
    return limit
