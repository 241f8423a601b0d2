"""Play one compliance case through ``wsreplay record`` and ``wsreplay serve``, and render what
each party saw as short deterministic lines (no ports, no times).

Through record: a raw client (:class:`~.peers.RawPeer`) → an in-process
:class:`~wsreplay.proxy.RecordingProxy` on an ephemeral port → the far side: an aiohttp
:class:`~.peers.ConformingServer` when the client plays the case, a raw server when the server
does. The recording is parsed with :func:`wsreplay.loader.load`.

Through serve: that recording is served by a :class:`~wsreplay.serve.MockServer` and the same
client plays the case against it; the mock's verdict is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from wsreplay import model as m
from wsreplay.loader import load
from wsreplay.proxy import ProxyConfig, RecordingProxy
from wsreplay.recorder import Recorder
from wsreplay.serve import MockServer

from ..conftest import T
from .frames import client_handshake, server_handshake
from .peers import ConformingServer, RawPeer, listening

HOST = "127.0.0.1"
WAIT = T / 5  # a bounded wait for an answer that should come at once on loopback
NOT_SERVED = "(not served: a scenario cannot make the mock send an invalid frame)"


@dataclass(frozen=True)
class Case:
    """One compliance case.

    ``script`` is played by ``actor`` ("client": the raw client, against an aiohttp server that
    echoes; "server": a raw far-side server, the client only answering), which then closes with
    ``close`` (None: it does not, and waits for the other end). The expectations are lists of
    rendered lines (see :func:`render`) where ``*`` matches anything: what the client saw,
    what the server saw, what was recorded, and through serve what the client saw (None: the
    same as through record) and the mock's verdict.

    Serving: the recording is served as it is; with ``serve_waits`` its close and drop lines
    are replaced by an expectation that never comes, so the mock is reading when the client's
    bad frame arrives; ``served`` False: not served (a scenario cannot make the mock send an
    invalid frame). ``echo_close`` False: the client does not answer a close frame. ``known``
    pairs a column that differs from its expectation with the bug (in docs/known-bugs.md)
    that makes it differ.
    """

    id: str
    group: str
    title: str
    script: tuple
    client: tuple[str, ...]
    server: tuple[str, ...]
    recorded: tuple[str, ...]
    actor: str = "client"
    close: tuple[int | None, bytes] | None = (1000, b"bye")
    client_deflate: bool = False
    server_deflate: bool = False
    max_size: int | None = None
    serve: tuple[str, ...] | None = None
    serve_result: str = "passed"
    served: bool = True
    serve_waits: bool = False
    echo_close: bool = True
    known: tuple[tuple[str, str], ...] = ()
    note: str = ""

    @property
    def legs(self) -> str:
        """The compression each leg should have negotiated."""
        both = _leg(self.client_deflate and self.server_deflate)
        return f"client leg {both}, upstream leg {both}"


@dataclass
class Outcome:
    """What one run of a case showed, rendered."""

    client: list[str] = field(default_factory=list)
    server: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    serve: list[str] = field(default_factory=list)
    serve_result: str = ""
    legs: str = ""

    def differences(self, case: Case) -> dict[str, str]:
        """Column → what differs from the case's expectation there (empty: as expected)."""
        out = {}
        serve = case.client if case.serve is None else case.serve
        for name, want in (("legs", (case.legs,)), ("client", case.client),
                           ("server", case.server), ("recorded", case.recorded),
                           ("serve", serve if case.served else (NOT_SERVED,)),
                           ("serve_result", (case.serve_result if case.served else "n/a",))):
            got = getattr(self, name)
            got = [got] if isinstance(got, str) else got
            if not matches(list(want), got):
                out[name] = f"expected {list(want)}, got {got}"
        return out


def matches(patterns: list[str], lines: list[str]) -> bool:
    """Each line matches its pattern: ``*`` stands for anything, ``{1002|1007}`` for one of
    the alternatives, everything else for itself."""
    return len(patterns) == len(lines) and all(
        re.fullmatch(_regex(p), line, re.S) for p, line in zip(patterns, lines))


def _regex(pattern: str) -> str:
    out = []
    for star, alts, literal in re.findall(r"(\*)|\{([^{}|]*(?:\|[^{}|]*)+)\}|([^*{]+|\{)",
                                          pattern):
        out.append(".*" if star else "(?:" + "|".join(map(re.escape, alts.split("|"))) + ")"
                   if alts else re.escape(literal))
    return "".join(out)


# --- rendering ---------------------------------------------------------------------------

def _digest(data: bytes) -> str:
    return f"{len(data)} B sha256:{hashlib.sha256(data).hexdigest()[:8]}"


def _text(data: bytes) -> str:
    if len(data) > 32:
        return _digest(data)
    return json.dumps(data.decode("utf-8", "replace"), ensure_ascii=False)


def _binary(data: bytes) -> str:
    return (data.hex() or '""') if len(data) <= 16 else _digest(data)


def render(item: tuple) -> str:
    """One thing a peer saw, as a line: ``text "hi"``, ``binary 00ff``, ``ping ""``,
    ``close 1000 "bye"``, ``close (no code)``, ``EOF``, ``VIOLATION: ...``..."""
    kind = item[0]
    if kind == "text":
        return f"text {_text(item[1])}"
    if kind in ("binary", "ping", "pong"):
        return f"{kind} {_binary(item[1])}"
    if kind == "close":
        if item[1] is None:
            return "close (no code)"
        return f"close {item[1]} {json.dumps(item[2], ensure_ascii=False)}"
    if kind == "eof":
        return "EOF"
    if kind == "answer":
        return f"its close answered: {item[1]}"
    return f"{kind.upper()}: {item[1]}"


def render_recording(scenario: m.Scenario) -> list[str]:
    """The recording's lines for the case's connection: handshake flags, events (``>`` client
    to server, ``<`` server to client) and notes; the header and footer comments left out."""
    out = []
    for step in scenario.steps:
        if isinstance(step, m.Connect):
            flags = (["compress"] if step.compress else []) + (
                [] if step.expect_compress is None else
                ["expect compress" if step.expect_compress else "expect no compress"])
            out.append(" ".join(["conn", *flags]))
        elif isinstance(step, m.Event):
            out.append(("> " if step.side is m.Side.CLIENT else "< ") + _payload(step.payload))
        elif isinstance(step, m.Comment) and not step.text.startswith((" recorded", " end:")):
            out.append("#" + step.text)
    return out


def _payload(p) -> str:
    if isinstance(p, m.Text):
        return render(("text", p.text.replace("{{'{{'}}", "{{").encode()))
    if isinstance(p, m.Json):
        return render(("text", p.source.encode()))
    if isinstance(p, m.Binary):
        return render(("binary", p.data))
    if isinstance(p, (m.Ping, m.Pong)):
        return render((type(p).__name__.lower(), p.data))
    if isinstance(p, m.Close):
        return render(("close", p.code, p.reason or ""))
    if isinstance(p, m.Drop):
        return "drop"
    return repr(p)


# --- playing ------------------------------------------------------------------------------

async def play_client(case: Case, port: int) -> RawPeer:
    """Connect the raw client to ``port`` and play its part of ``case``; its ``seen`` is
    complete when this returns (every wait bounded)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), T)
    try:
        deflate = await asyncio.wait_for(client_handshake(
            reader, writer, f"{HOST}:{port}", f"/{case.id}", case.client_deflate), T)
    except BaseException:
        writer.close()
        raise
    peer = RawPeer(reader, writer, client=True, deflate=deflate, timeout=WAIT,
                   echo_close=case.echo_close)
    if case.actor == "client":
        await peer.play(case.script)
        await peer.finish(case.close)
    else:
        await peer.finish(None)
    return peer


class RawServer:
    """The far side for cases the server plays: a raw peer per connection (one expected)."""

    def __init__(self, case: Case):
        self.case = case
        self.peer: RawPeer | None = None
        self.done = asyncio.Event()

    async def handle(self, reader, writer) -> None:
        try:
            _, deflate = await asyncio.wait_for(
                server_handshake(reader, writer, self.case.server_deflate), T)
            self.peer = RawPeer(reader, writer, client=False, deflate=deflate, timeout=WAIT)
            await self.peer.play(self.case.script)
            await self.peer.finish(self.case.close)
        finally:
            writer.close()
            self.done.set()

    @property
    def seen(self) -> list[tuple]:
        return self.peer.seen if self.peer else [("error", "no connection")]

    @property
    def deflate(self) -> bool | None:
        return self.peer and self.peer.deflate is not None


@contextlib.asynccontextmanager
async def far_side(case: Case):
    """The far-side server for ``case``; yields ``(port, server)`` (``server.seen``,
    ``server.done``, ``server.deflate``)."""
    if case.actor == "client":
        server = ConformingServer(compress=case.server_deflate, timeout=2 * WAIT)
        async with listening(server.handle) as port:
            yield port, server
    else:
        server = RawServer(case)
        tcp = await asyncio.start_server(server.handle, HOST, 0)
        try:
            yield tcp.sockets[0].getsockname()[1], server
        finally:
            tcp.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(tcp.wait_closed(), T)


async def _bounded(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


def _leg(deflate: bool | None) -> str:
    return "deflate" if deflate else "plain"


async def through_record(case: Case, path: Path, out: Outcome) -> m.Scenario:
    """Play ``case`` through a recording proxy writing ``path``; fill ``out``; the
    recording, parsed."""
    async with far_side(case) as (port, server):
        recorder = Recorder(path)
        limits = {"max_size": case.max_size} if case.max_size else {}
        config = ProxyConfig(f"ws://{HOST}:{port}", port=0, close_timeout=WAIT, **limits)
        proxy = RecordingProxy(config, recorder)
        await proxy.start()
        try:
            client = await play_client(case, proxy.port)
            await _bounded(server.done, T)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + T
            while proxy.open_connections and loop.time() < deadline:
                await asyncio.sleep(0.01)
        finally:
            await proxy.stop()
        out.client = [render(s) for s in client.seen]
        out.server = [render(s) for s in server.seen]
        out.legs = f"client leg {_leg(client.deflate)}, upstream leg {_leg(server.deflate)}"
    scenario = load(path)
    out.recorded = render_recording(scenario)
    return scenario


async def through_serve(case: Case, scenario: m.Scenario, out: Outcome) -> None:
    """Serve ``scenario`` as a mock, play ``case``'s client against it; fill ``out``."""
    if not case.served:
        out.serve, out.serve_result = [NOT_SERVED], "n/a"
        return
    if case.serve_waits:
        scenario = waiting(scenario)
    mock = MockServer([scenario], once=True, timeout=WAIT)
    await mock.start()
    try:
        client = await play_client(case, mock.port)
        try:
            results = await mock.wait_once(T)
        except asyncio.TimeoutError:
            results = []
    finally:
        await mock.stop()
    out.serve = [render(s) for s in client.seen]
    if not results:
        out.serve_result = "no verdict"
    elif all(r.passed for r in results):
        out.serve_result = "passed"
    else:
        failure = next(f for r in results for f in r.failures)
        out.serve_result = f"failed: {failure.summary}"


def waiting(scenario: m.Scenario) -> m.Scenario:
    """``scenario`` with its close and drop lines replaced by a client message that never
    comes (the run is still waiting for it when the client breaks the protocol)."""
    steps = [s for s in scenario.steps
             if not (isinstance(s, m.Event) and isinstance(s.payload, (m.Close, m.Drop)))]
    steps.append(m.Event("c1", m.Side.CLIENT, m.Text("never sent")))
    return dataclasses.replace(scenario, steps=tuple(steps))


async def run_case(case: Case, folder: Path) -> Outcome:
    """Both runs of ``case``; the recording is kept in ``folder``."""
    out = Outcome()
    scenario = await through_record(case, folder / f"{case.id}.wsr", out)
    await through_serve(case, scenario, out)
    return out
