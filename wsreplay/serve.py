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
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from aiohttp import hdrs, web

from . import model as m
from .driver import Driver
from .engine import DEFAULT_TIMEOUT, Engine
from .loader import file_reader
from .matchers import MatchResult
from .messages import Request
from .outcome import Failure, Result
from .program import FAST, Timing
from .replay import MAX_MESSAGE
from .wire import GRACE, ServerLog, ServerWebSocket, Wire, upgrade_problem

POLICY_VIOLATION = 1008


@dataclass(eq=False)
class _Run:
    slot: "_Slot"
    engine: Engine
    driver: Driver
    task: asyncio.Task | None = None
    peers: list[str] = field(default_factory=list)


@dataclass(eq=False)
class _Slot:
    scenario: m.Scenario
    read_file: Callable | None
    finished: int = 0


def request_of(request: web.Request) -> Request:
    """What the client asked for, as the engine sees it."""
    offered = request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "")
    extensions = request.headers.get(hdrs.SEC_WEBSOCKET_EXTENSIONS, "")
    return Request(request.path, tuple(request.query.items()), tuple(request.headers.items()),
                   tuple(p.strip() for p in offered.split(",") if p.strip()),
                   "permessage-deflate" in extensions)


def _server_end(request: web.Request):
    def end(abort: bool) -> None:
        transport = request.transport
        if transport is None:
            return
        if abort:
            transport.abort()
        else:
            transport.close()

    return end


class MockServer:
    """Serve ``scenarios`` on ``host:port`` (port 0: any free port; see :attr:`port`).

    ``on_result(result)`` is called as each run ends (also for a client that matched no
    ``conn`` line); :attr:`results` keeps them all. With ``once``, :meth:`wait_once`
    returns when every scenario has run once. ``fail_close`` is the close code for a
    deviating client (None: leave its connections open until the client closes them).
    ``static`` is a folder whose files answer plain HTTP GETs (``/`` gives ``index.html``;
    nothing outside it is served); without it they get 426.
    Raises :class:`~wsreplay.errors.ScenarioError` when a scenario cannot be served.
    """

    def __init__(self, scenarios: Sequence[m.Scenario], *, host: str = "127.0.0.1",
                 port: int = 0, timing: Timing = FAST,
                 variables: Mapping[str, Any] | None = None,
                 env: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT,
                 fail_close: int | None = POLICY_VIOLATION, once: bool = False,
                 on_result: Callable[[Result], None] | None = None,
                 static: str | os.PathLike | None = None):
        self.host, self._port = host, port
        self.static = Path(static).resolve() if static is not None else None
        self.timing, self.variables, self.timeout = timing, dict(variables or {}), timeout
        self.env = os.environ if env is None else env
        self.fail_close, self.once, self.on_result = fail_close, once, on_result
        self.slots = [_Slot(s, file_reader(s.path) if Path(s.path).is_file() else None)
                      for s in scenarios]
        for slot in self.slots:
            self._engine(slot)  # refuse what cannot be served before listening
        self.results: list[Result] = []
        self.runs: list[_Run] = []
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
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
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     logger=ServerLog())
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self._port)
        await self._site.start()
        server = self._site._server  # aiohttp exposes no public way to ask a site its port
        self._port = server.sockets[0].getsockname()[1]

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self._port}"

    async def stop(self) -> None:
        """Stop listening; runs still going fail ("the run was interrupted")."""
        for run in list(self.runs):
            if run.task is not None:
                run.task.cancel()
        await asyncio.gather(*(r.task for r in self.runs if r.task), return_exceptions=True)
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

    def _route(self, req: Request) -> tuple[_Run | None, int | None, MatchResult | None]:
        for run in self.runs:
            index, hit = run.engine.match_request(req)
            if index is not None:
                return run, index, hit
        best: MatchResult | None = None
        for slot in self.slots:
            engine = self._engine(slot)
            index, hit = engine.match_request(req)
            if index is not None:
                run = _Run(slot, engine, Driver(engine))
                self.runs.append(run)
                run.task = asyncio.get_running_loop().create_task(self._drive(run))
                return run, index, hit
            if hit is not None and (best is None or hit.score > best.score):
                best = hit
        return None, None, best

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get(hdrs.UPGRADE, "").lower() != "websocket":
            if self.static is not None:
                return self._static_file(request)
            return web.Response(status=426, text="wsreplay mock server: WebSocket only\n")
        problem = upgrade_problem(request)
        if problem:
            return web.Response(status=400, text=f"wsreplay mock server: {problem}\n")
        req = request_of(request)
        run, index, hit = self._route(req)
        if run is None:
            return self._reject(request, req, hit)
        loop = asyncio.get_running_loop()
        answer = run.engine.accept(index, req, hit, loop.time())
        run.peers.append(f"{request.remote} {request.path_qs}")
        if answer.status != 101:
            run.driver.poke()
            return web.Response(status=answer.status, headers=dict(answer.headers))
        run.driver.expect_wire(answer.conn)
        ws = ServerWebSocket(
            protocols=(answer.protocol,) if answer.protocol else (), autoclose=False,
            autoping=False, compress=answer.compress, max_msg_size=MAX_MESSAGE,
            decode_text=False, timeout=GRACE)
        for name, value in answer.headers:
            ws.headers.add(name, value)
        try:
            await ws.prepare(request)
        except (ConnectionError, RuntimeError) as exc:
            run.driver.attach_failed(answer.conn, f"handshake failed: {exc}")
            return web.Response(status=499)  # the client left mid-handshake: reported already
        run.driver.attach(answer.conn, Wire(answer.conn, ws, _server_end(request)))
        await asyncio.shield(run.task)  # the connection lives as long as its run
        return ws

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
        return web.FileResponse(target)

    def _reject(self, request: web.Request, req: Request,
                miss: MatchResult | None) -> web.Response:
        why = miss.reason if miss is not None else "no scenario has a conn line left for it"
        summary = f"a client connected to {request.path_qs} unlike any conn line: {why}"
        result = Result(f"{request.path_qs}", m.Side.SERVER, peer=str(request.remote),
                        failures=[Failure("connect", summary, reason=why, path=miss and
                                          miss.path)])
        self._record(result)
        return web.Response(status=404, text=f"wsreplay: {summary}\n")

    async def _drive(self, run: _Run) -> None:
        try:
            result = await run.driver.run()
        finally:
            self.runs.remove(run)
        result.name = run.slot.scenario.path
        result.peer = ", ".join(run.peers) or None
        run.slot.finished += 1
        self._record(result)

    def _record(self, result: Result) -> None:
        self.results.append(result)
        if self.on_result is not None:
            self.on_result(result)
        if all(s.finished for s in self.slots) and not self.runs:
            self._all_ran.set()
