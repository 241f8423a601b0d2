"""``wsreplay serve``: a mock WebSocket server playing the server side of scenarios.

Each client that connects is routed to a ``conn`` line by its path, query and headers: to a
run of that scenario still waiting for that connection, else to a new run. So several
clients at once each get their own run, and a scenario with several connections is served
as one run when its clients connect. The handshake is answered as recorded (status,
subprotocol, headers, refused upgrades). A client that deviates gets its run's report (via
``on_result``) and, by default, its connections closed with 1008 and a short reason.
With ``static``, plain HTTP GETs are answered with that folder's files, so a web app whose
page and WebSocket come from one origin can be opened against the mock.

:class:`MockServer` is the API (``start()``, ``port``, ``stop()``, ``wait_once()``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from aiohttp import hdrs, web

from . import model as m
from .driver import Driver
from .dispatch import MAX_MESSAGES, Candidate, Dispatch
from .engine import DEFAULT_TIMEOUT, Answer, Engine
from .loader import file_reader
from .matchers import MatchResult
from .messages import Request
from .outcome import Failure, Result
from .program import FAST, Timing
from .replay import MAX_MESSAGE
from .refusal import Refusal, out_of_descriptors
from .wire import GRACE, SendLimits, ServerLog, ServerWebSocket, Wire, upgrade_problem

POLICY_VIOLATION = 1008
DECIDE_WITHIN = 0.5  # seconds of a client's silence before its connection is decided
SEND_BUFFER = 1 << 20  # bytes waiting for a client beyond which the mock's sends wait
STALL_TIMEOUT = 10.0  # seconds a client may read nothing while sends wait, then 1008
HANDSHAKE_TIMEOUT = 10.0  # seconds from connecting to a complete upgrade request


@dataclass(eq=False)
class _Run:
    slot: "_Slot"
    engine: Engine
    driver: Driver
    task: asyncio.Task | None = None
    peers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(eq=False)
class _Slot:
    scenario: m.Scenario
    read_file: Callable | None
    finished: int = 0
    started: int = 0
    probe: Engine | None = None  # a fresh run's engine, matched against clients until used


def request_of(request: web.Request) -> Request:
    """What the client asked for, as the engine sees it."""
    offered = request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "")
    extensions = request.headers.get(hdrs.SEC_WEBSOCKET_EXTENSIONS, "")
    return Request(request.path, tuple(request.query.items()), tuple(request.headers.items()),
                   tuple(p.strip() for p in offered.split(",") if p.strip()),
                   "permessage-deflate" in extensions)


class _Inbox:
    """Where a client's messages go while its connection is being decided; then to
    ``target`` (the chosen run's driver)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        self.target: Callable | None = None

    async def deliver(self, conn: str, msg) -> None:
        if self.target is not None:
            await self.target(conn, msg)
        else:
            self.queue.put_nowait(msg)

    def drain(self) -> list:
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out


def _socket(answer: Answer) -> ServerWebSocket:
    ws = ServerWebSocket(
        protocols=(answer.protocol,) if answer.protocol else (), autoclose=False,
        autoping=False, compress=answer.compress, max_msg_size=MAX_MESSAGE,
        decode_text=False, timeout=GRACE)
    for name, value in answer.headers:
        ws.headers.add(name, value)
    return ws


def _answerable(request: web.Request, answer: Answer) -> web.Request:
    """``request`` for aiohttp to answer with ``answer``: when the mock answers no
    subprotocol though the client offered some, without its offer (else aiohttp logs that
    the offer does not "overlap server-known ones", though the answer is the scenario's)."""
    if answer.protocol or hdrs.SEC_WEBSOCKET_PROTOCOL not in request.headers:
        return request
    headers = request.headers.copy()
    headers.popall(hdrs.SEC_WEBSOCKET_PROTOCOL)
    try:
        return request.clone(headers=headers)
    except UnicodeError:  # a header aiohttp cannot write back (not UTF-8): leave it be,
        return request    # the log line is the lesser harm


def _server_end(request: web.Request):
    transport = request.transport  # kept: aiohttp forgets it when it closes the connection

    def end(abort: bool) -> None:
        if transport is None:
            return
        if abort:
            transport.abort()
            return
        transport.close()  # what waits to be written still goes, unless the client reads
        if transport.get_write_buffer_size():  # nothing more: then the connection is reset
            asyncio.get_running_loop().call_later(GRACE, transport.abort)

    return end


class MockServer:
    """Serve ``scenarios`` on ``host:port`` (port 0: any free port; see :attr:`port`).

    ``on_result(result)`` is called as each run ends (also for a client that matched no
    ``conn`` line); :attr:`results` keeps them all. With ``once``, :meth:`wait_once`
    returns when every scenario has run once. ``fail_close`` is the close code for a
    deviating client (None: leave its connections open until the client closes them).
    ``static`` is a folder whose files answer plain HTTP GETs (``/`` gives ``index.html``;
    nothing outside it is served); without it they get 426.

    Hostile or stuck clients are bounded: while more than ``send_buffer`` bytes wait for a
    client, the mock's sends to it wait; a client that reads nothing for ``stall_timeout``
    seconds meanwhile is closed with 1008 (its run fails, saying so). A connection whose
    upgrade request is not complete ``handshake_timeout`` seconds after connecting is closed
    (an idle HTTP keep-alive connection too). When no descriptor is left to accept a client,
    waiting clients get 503 and ``log`` says why.
    Raises :class:`~wsreplay.errors.ScenarioError` when a scenario cannot be served.
    """

    def __init__(self, scenarios: Sequence[m.Scenario], *, host: str = "127.0.0.1",
                 port: int = 0, timing: Timing = FAST,
                 variables: Mapping[str, Any] | None = None,
                 env: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT,
                 fail_close: int | None = POLICY_VIOLATION, once: bool = False,
                 on_result: Callable[[Result], None] | None = None,
                 static: str | os.PathLike | None = None,
                 log: Callable[[str], None] | None = None,
                 decide_within: float = DECIDE_WITHIN, max_buffered: int = MAX_MESSAGES,
                 send_buffer: int = SEND_BUFFER, stall_timeout: float = STALL_TIMEOUT,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT):
        self.host, self._port = host, port
        self.limits = SendLimits(send_buffer, stall_timeout)
        self.handshake_timeout = handshake_timeout
        self.static = Path(static).resolve() if static is not None else None
        self.timing, self.variables, self.timeout = timing, dict(variables or {}), timeout
        self.env = os.environ if env is None else env
        self.fail_close, self.once, self.on_result = fail_close, once, on_result
        self.log, self.decide_within, self.max_buffered = log, decide_within, max_buffered
        self.slots = [_Slot(s, file_reader(s.path) if Path(s.path).is_file() else None)
                      for s in scenarios]
        for slot in self.slots:
            self._engine(slot)  # refuse what cannot be served before listening
        self.results: list[Result] = []
        self.runs: list[_Run] = []
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._refusal: Refusal | None = None
        self._all_ran = asyncio.Event()

    def _engine(self, slot: _Slot) -> Engine:
        return Engine(slot.scenario, m.Side.SERVER, timing=self.timing,
                      variables=self.variables, env=self.env, read_file=slot.read_file,
                      timeout=self.timeout, fail_close=self.fail_close or 1000)

    # -- life ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; :attr:`port` is known when this returns."""
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        # aiohttp arms its keep-alive timer when a connection opens and closes the
        # connection if it fires while no request has come whole: a handshake timeout
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     logger=ServerLog(),
                                     keepalive_timeout=self.handshake_timeout)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self._port)
        await self._site.start()
        server = self._site._server  # aiohttp exposes no public way to ask a site its port
        self._port = server.sockets[0].getsockname()[1]
        self._refusal = Refusal(server.sockets, self._say)
        self._refusal.install(asyncio.get_running_loop())

    @property
    def port(self) -> int:
        return self._port

    def _say(self, line: str) -> None:
        if self.log is not None:
            self.log(line)
        else:
            logging.getLogger("wsreplay.serve").warning("%s", line)

    def _wire(self, conn: str, ws: ServerWebSocket, request: web.Request) -> Wire:
        return Wire(conn, ws, _server_end(request), self.limits, request.transport)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self._port}"

    async def stop(self) -> None:
        """Stop listening; runs still going fail ("the run was interrupted")."""
        for run in list(self.runs):
            if run.task is not None:
                run.task.cancel()
        await asyncio.gather(*(r.task for r in self.runs if r.task), return_exceptions=True)
        if self._refusal is not None:
            self._refusal.uninstall()
            self._refusal = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_once(self, timeout: float | None = None) -> list[Result]:
        """Wait until every scenario has run once (and no run is going); the results."""
        await asyncio.wait_for(self._all_ran.wait(), timeout)
        return list(self.results)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    # -- clients -------------------------------------------------------------------------

    def _candidates(self, req: Request) -> tuple[list[Candidate], list[tuple]]:
        """The pending ``conn`` lines ``req``'s handshake fits, in recorded order (runs
        going on first, then a fresh run of each scenario, in file order; with ``once``,
        none of a scenario already started), and the misses as (conn line or None, hit)."""
        found: list[Candidate] = []
        misses: list[tuple] = []
        sources = [(run.engine, run) for run in self.runs]
        for slot in self.slots:
            if not (self.once and slot.started):
                slot.probe = slot.probe or self._engine(slot)
                sources.append((slot.probe, slot))
        for engine, owner in sources:
            for index, hit in engine.match_requests(req):
                if hit.ok:
                    found.append(Candidate(engine, index, hit, owner))
                else:
                    misses.append((engine.program[index] if index >= 0 else None, hit))
        return found, misses

    def _take(self, cand: Candidate, req: Request) -> tuple[_Run, MatchResult] | None:
        """The run to accept ``cand`` in (started now for a fresh one), with the match to
        accept; None when that is no longer possible (another client took it, its run
        ended)."""
        owner = cand.owner
        if isinstance(owner, _Run):
            if owner in self.runs and not owner.engine.done and any(
                    i == cand.index for i, _ in owner.engine.pending_connects()):
                return owner, cand.hit
            return None
        slot: _Slot = owner
        if self.once and slot.started:
            return None
        engine, hit = cand.engine, cand.hit
        if slot.probe is engine:
            slot.probe = None
        else:  # another client started the probe meanwhile: a fresh run is the same
            engine = self._engine(slot)
            hit = dict(engine.match_requests(req)).get(cand.index)
            if hit is None or not hit.ok:
                return None
        slot.started += 1
        run = _Run(slot, engine, Driver(engine))
        self.runs.append(run)
        run.task = asyncio.get_running_loop().create_task(self._drive(run))
        return run, hit

    def _commit(self, dispatch: Dispatch, req: Request) -> tuple[_Run, MatchResult] | None:
        """Take the dispatch's choice (or the next one, when it is gone); None when every
        candidate is out."""
        while dispatch.chosen is not None:
            taken = self._take(dispatch.chosen, req)
            if taken is not None:
                return taken
            dispatch.withdraw(dispatch.chosen, "taken by another client, or its run ended")
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get(hdrs.UPGRADE, "").lower() != "websocket":
            if self.static is not None:
                return self._static_file(request)
            return web.Response(status=426, text="wsreplay mock server: WebSocket only\n")
        req = request_of(request)
        problem = upgrade_problem(request, req.protocols)
        if problem:
            return web.Response(status=400, text=f"wsreplay mock server: {problem}\n")
        found, misses = self._candidates(req)
        if not found:
            return self._reject(request, misses)
        since = asyncio.get_running_loop().time()
        dispatch = Dispatch(found, req, max_messages=self.max_buffered)
        if dispatch.chosen is None:
            return await self._decide(request, req, dispatch, since)
        taken = self._commit(dispatch, req)
        if taken is None:
            return self._reject(request, [(d.candidate.connect, MatchResult(
                False, {}, None, d.why, d.candidate.hit.score)) for d in dispatch.dropped])
        run, hit = taken
        self._note(run, dispatch, request)
        answer = run.engine.accept(dispatch.chosen.index, req, hit, since)
        run.peers.append(f"{request.remote} {request.path_qs}")
        if answer.status != 101:
            run.driver.poke()
            return web.Response(status=answer.status, headers=dict(answer.headers))
        run.driver.expect_wire(answer.conn)
        ws = _socket(answer)
        try:
            await ws.prepare(_answerable(request, answer))
        except (ConnectionError, RuntimeError) as exc:
            run.driver.attach_failed(answer.conn, f"handshake failed: {exc}")
            return web.Response(status=499)  # the client left mid-handshake: reported already
        run.driver.attach(answer.conn, self._wire(answer.conn, ws, request))
        await asyncio.shield(run.task)  # the connection lives as long as its run
        return ws

    async def _decide(self, request: web.Request, req: Request, dispatch: Dispatch,
                      since: float) -> web.StreamResponse:
        """Several candidates: answer the handshake, read the client's messages until the
        dispatch decides, then give the connection (and those messages) to the chosen run."""
        ws = _socket(dispatch.answer)
        try:
            await ws.prepare(_answerable(request, dispatch.answer))
        except (ConnectionError, RuntimeError):
            return web.Response(status=499)  # the client left mid-handshake: no run touched
        wire = self._wire(dispatch.answer.conn, ws, request)
        inbox = _Inbox()
        wire.start_reading(inbox.deliver)
        while not dispatch.done:
            try:
                msg = await asyncio.wait_for(inbox.queue.get(), self.decide_within)
            except asyncio.TimeoutError:
                dispatch.expire()
            else:
                dispatch.feed(msg)
        taken = self._commit(dispatch, req)
        if taken is None:
            await self._fail_alone(request, dispatch, wire)
            return ws
        run, hit = taken
        self._note(run, dispatch, request)
        chosen = dispatch.chosen
        run.engine.accept(chosen.index, req, hit, since)
        run.peers.append(f"{request.remote} {request.path_qs}")
        wire.conn = chosen.connect.name
        run.driver.attach(wire.conn, wire, read=False)
        for msg in dispatch.buffered + inbox.drain():
            run.driver.deliver(wire.conn, msg)
        inbox.target = run.driver.on_message
        await asyncio.shield(run.task)
        return ws

    def _note(self, run: _Run, dispatch: Dispatch, request: web.Request) -> None:
        notes = dispatch.notes() if dispatch.dropped else []
        run.notes += notes
        if notes and self.log is not None:
            self.log(f"client {request.path_qs}: " + "\n  ".join(notes))

    async def _fail_alone(self, request: web.Request, dispatch: Dispatch, wire: Wire) -> None:
        """Every candidate missed: the client's connection fails (1008), no run touched."""
        closest = dispatch.closest
        cand = closest.candidate
        pos = cand.connect.pos
        summary = (f"a client on {request.path_qs} matched no scenario connection; the "
                   f"closest, {cand}, {closest.why}")
        failure = Failure("mismatch" if closest.received is not None else "connect", summary,
                          step=closest.step, conn=cand.connect.name, received=closest.received,
                          path=closest.path, reason=closest.reason)
        result = Result(pos.path, m.Side.SERVER, peer=f"{request.remote} {request.path_qs}",
                        failures=[failure], notes=[f"dropped {d}" for d in dispatch.dropped])
        self._record(result)
        line = getattr(closest.step, "pos", pos).line
        await wire.finish(self.fail_close or POLICY_VIOLATION,
                          f"wsreplay: no scenario connection fits (closest: line {line})")

    def _static_file(self, request: web.Request) -> web.StreamResponse:
        try:
            target = (self.static / request.match_info["tail"]).resolve()
            if target.is_dir():
                target = target / "index.html"
            # resolve() has followed every ``..`` and symlink: what is not inside stays unserved
            found = target.is_relative_to(self.static) and target.is_file()
        except (OSError, ValueError):  # a name the file system cannot hold (a NUL byte...)
            found = False
        if not found:
            return web.Response(status=404, text="wsreplay mock server: no such file\n")
        try:  # aiohttp answers 404 when it cannot open the file, whatever the reason
            os.close(os.open(target, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
        except OSError as exc:
            if out_of_descriptors(exc) and self._refusal is not None:
                self._refusal.refused_some(1, exc)
                return web.Response(status=503, headers={"Retry-After": "1"},
                                    text="wsreplay: out of file descriptors, try again later\n")
        return web.FileResponse(target)

    def _reject(self, request: web.Request, misses: list[tuple]) -> web.Response:
        """No ``conn`` line takes the client: 404, saying why, and a failed Result naming
        the closest conn line and the first difference."""
        connect, miss = max(misses, key=lambda x: x[1].score) if misses else (None, None)
        if miss is None:
            why = "no scenario has a conn line left for it"
        elif connect is None:
            why = miss.reason
        else:
            why = (f"closest is conn {connect.name} ({connect.pos.path}:{connect.pos.line}): "
                   f"{miss.reason}")
        summary = f"a client connected to {request.path_qs} unlike any conn line: {why}"
        name = connect.pos.path if connect is not None else request.path_qs
        result = Result(name, m.Side.SERVER, peer=f"{request.remote} {request.path_qs}",
                        failures=[Failure("connect", summary, step=connect,
                                          conn=connect and connect.name,
                                          reason=miss and miss.reason,
                                          path=miss and miss.path)])
        self._record(result)
        return web.Response(status=404, text=f"wsreplay: no conn line takes this client: "
                                             f"{why}\n")

    def waiting_for(self) -> list[m.Connect]:
        """The ``conn`` lines no client has come for yet: those runs going on wait for,
        and every one of a scenario not started."""
        out = [c for run in self.runs for _, c in run.engine.pending_connects()]
        for slot in self.slots:
            if not slot.started:
                out += [c for c in slot.scenario.connections() if c not in out]
        return out

    async def _drive(self, run: _Run) -> None:
        try:
            result = await run.driver.run()
        finally:
            self.runs.remove(run)
        result.name = run.slot.scenario.path
        result.peer = ", ".join(run.peers) or None
        result.notes += run.notes
        run.slot.finished += 1
        self._record(result)

    def _record(self, result: Result) -> None:
        self.results.append(result)
        if self.on_result is not None:
            self.on_result(result)
        if all(s.finished for s in self.slots) and not self.runs:
            self._all_ran.set()
