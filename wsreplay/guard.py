"""What ``record`` checks in a request before anything reaches the upstream: pure functions,
no I/O.

* :class:`HostPolicy`: the ``Host`` values ``record`` answers. A page from another site can
  reach a proxy on 127.0.0.1 by pointing its own DNS name there (DNS rebinding); its requests
  then carry that name in ``Host``, so only the listen address's own names (and those given
  with ``--allow-host``) are served.
* :func:`upstream_path`: a request's path made safe to append to the target's prefix: dot
  segments resolved, and a path that would climb out of the prefix refused
  (:class:`OutsidePrefix`), however it spells its dots and slashes.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = ["HostPolicy", "OutsidePrefix", "shown", "upstream_path"]

LOOPBACK = ("localhost", "127.0.0.1", "::1")
_ANY = ("", "0.0.0.0", "::")
# RFC 3986 host: an IP literal in brackets, or reg-name characters (percent-encoded ones too)
_HOST = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]*)\]|(?P<name>[A-Za-z0-9._~%!$&'()*+,;=-]*))"
                   r"(?::(?P<port>\d{1,5}))?", re.ASCII)


def shown(text: str | None) -> str:
    """A client's Host value fit to print: at most 200 characters, anything but printable
    ASCII escaped (a header byte that is not UTF-8 arrives as a lone surrogate)."""
    text = (text or "")[:200]
    return "".join(c if " " <= c <= "~" else c.encode("unicode_escape", "backslashreplace")
                   .decode("ascii", "backslashreplace") for c in text)


def _name(text: str) -> str:
    """A host name or address in one spelling: lower case, no trailing dot, IP addresses in
    their short form (``[0:0::1]`` and ``::1`` are one)."""
    text = text.strip().lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        return text


def _split(host: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a ``Host`` value (port None when absent); None when malformed."""
    match = _HOST.fullmatch(host.strip())
    if not match:
        return None
    port = int(match["port"]) if match["port"] else None
    if port is not None and port > 65535:
        return None
    return _name(match["v6"] if match["v6"] is not None else match["name"]), port


@dataclass(frozen=True)
class HostPolicy:
    """The ``Host`` values to answer: the listen address's names on its port, plus ``extra``
    entries ``HOST`` (any port) or ``HOST:PORT``; ``*`` allows every Host."""

    names: frozenset[str]
    port: int
    extra: frozenset[tuple[str, int | None]] = frozenset()
    anything: bool = False

    @classmethod
    def build(cls, listen_host: str, port: int, allow: tuple[str, ...] = ()) -> "HostPolicy":
        """The policy for a proxy listening on ``listen_host``:``port``: ``127.0.0.1`` and
        ``[::1]`` also answer to ``localhost``; ``localhost`` and the all-interfaces
        addresses to all three. Raises ValueError for an ``allow`` entry that is not ``HOST[:PORT]``."""
        own = _name(listen_host)
        names = {own, "localhost"} if own in LOOPBACK else {own}
        if own in ("localhost", *_ANY):
            names.update(LOOPBACK)
        names.discard("")
        extra = set()
        for entry in allow:
            if entry.strip() == "*":
                continue
            split = _split(entry)
            if split is None or not split[0]:
                raise ValueError(f"--allow-host {entry}: expected HOST or HOST:PORT")
            extra.add(split)
        return cls(frozenset(names), port, frozenset(extra),
                   anything=any(e.strip() == "*" for e in allow))

    def allows(self, host: str | None, http10: bool = False) -> bool:
        """Whether to answer a request with this ``Host`` header. A missing Host is allowed
        in HTTP/1.0 only (a browser always sends one, so such a request cannot come from a
        rebinding page; aiohttp itself refuses an HTTP/1.1 request without one). A Host
        naming the listen address without a port is allowed: only a foreign name can come
        from a rebinding page, whatever its port."""
        if self.anything:
            return True
        if host is None:
            return http10
        split = _split(host)
        if split is None:
            return False
        name, port = split
        if name in self.names and port in (None, self.port):
            return True
        return (name, port) in self.extra or (name, None) in self.extra

    def refusal(self, host: str | None) -> str:
        """The body of the 403 for a refused ``host``: what to add to allow it."""
        return (f"wsreplay record: Host '{shown(host)}' is not this proxy's address, so it is "
                f"refused (a page using a DNS name pointed here must not reach the target). "
                f"Requests must name {self.describe()}; to allow this one, start record with "
                f"--allow-host {self.hint(host)}\n")

    def hint(self, host: str | None) -> str:
        """What to give ``--allow-host`` to answer ``host`` (``HOST:PORT`` for a malformed
        one)."""
        text = (host or "").strip()
        split = _split(text) if text else None
        return text if split is not None and split[0] else "HOST:PORT"

    def describe(self) -> str:
        names = sorted(f"[{n}]" if ":" in n else n for n in self.names)
        return " or ".join(f"{n}:{self.port}" for n in names)


class OutsidePrefix(ValueError):
    """A request path that would leave the target's prefix."""


_DOT = re.compile(r"%2e", re.IGNORECASE)
# What an upstream may take for a path separator: "/", and "\" (WHATWG URL parsers, IIS)
# and their percent-encodings (servers that decode before routing).
_SEPARATORS = re.compile(r"/|\\|%2f|%5c", re.IGNORECASE)


def _is_dot(segment: str, dots: str, params: bool = False) -> bool:
    """Whether ``segment`` is ``dots`` ("." or "..") once %2e is decoded; with ``params``, a
    ``;params`` tail is ignored (servlet containers take ``..;x`` for ``..``)."""
    if params:
        segment = segment.split(";", 1)[0]
    return _DOT.sub(".", segment) == dots


def _climbs_out(path: str) -> bool:
    """Whether some upstream resolving the dot segments of ``path`` could go above its root:
    split at every possible separator, ``..;x`` taken for ``..``, empty segments not counted
    (servers that merge slashes, as nginx does, drop them)."""
    depth = 0
    for segment in _SEPARATORS.split(path)[1:]:
        if _is_dot(segment, "..", params=True):
            depth -= 1
            if depth < 0:
                return True
        elif segment and not _is_dot(segment, ".", params=True):
            depth += 1
    return False


def upstream_path(raw: str) -> str:
    """The request target ``raw`` (path and query, as sent, starting with "/") with its dot
    segments resolved (RFC 3986 5.2.4), to append to the target's prefix. Every other byte is
    kept as sent. Raises :class:`OutsidePrefix` when the path climbs above its root in any
    spelling: ``..``, ``%2e%2e``, ``..%2f``, ``..\\``, ``..;``."""
    path, mark, query = raw.partition("?")
    if _climbs_out(path):
        raise OutsidePrefix(f"the path '{shown(path)}' leaves the target's prefix")
    segments = path.split("/")[1:]
    if not any(_is_dot(s, ".") or _is_dot(s, "..") for s in segments):
        return raw
    out: list[str] = []
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if _is_dot(segment, "."):
            if last:
                out.append("")
        elif _is_dot(segment, ".."):
            if out:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out) + mark + query
