"""``wsreplay replay``: play a scenario's client side against a real server (aiohttp).

:func:`replay_scenario` runs one scenario and returns its :class:`~wsreplay.outcome.Result`;
:func:`replay_paths` loads files and runs them, several at once. Failures of the server
under test are results, never exceptions; a scenario that cannot run raises
:class:`~wsreplay.errors.ScenarioError` (from :func:`replay_scenario`) or becomes a result
with a ``scenario`` failure (from :func:`replay_paths`).
"""

from __future__ import annotations

import asyncio
import os
import ssl as ssl_module
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import aiohttp

from . import model as m
from .driver import Driver
from .engine import DEFAULT_TIMEOUT, Engine, Open
from .errors import ScenarioError
from .loader import file_reader, load
from .messages import Handshake
from .outcome import Failure, Result
from .program import FAST, Timing
from .wire import GRACE, ClientWebSocket, Wire

MAX_MESSAGE = 16 * 1024 * 1024


def retarget(url: str, target: str | None) -> str:
    """``url`` with its scheme and host replaced by ``target``'s (``ws://host:port``, or
    just ``host:port``, keeping the scheme); a path in ``target`` is put in front."""
    if not target:
        return url
    if "://" not in target:
        target = url.split("://", 1)[0] + "://" + target
    new = urllib.parse.urlsplit(target)
    old = urllib.parse.urlsplit(url)
    path = new.path.rstrip("/") + (old.path or "/")
    return urllib.parse.urlunsplit((new.scheme, new.netloc, path, old.query, old.fragment))


def _client_end(ws: aiohttp.ClientWebSocketResponse):
    # aiohttp has no public way to end a client WebSocket's TCP connection without a
    # close frame (needed for `> drop`, and after a closing handshake we started).
    response = getattr(ws, "_response", None)

    def end(abort: bool) -> None:
        connection = getattr(response, "connection", None)
        transport = getattr(connection, "transport", None)
        if abort and transport is not None:
            transport.abort()
        if response is not None:
            response.close()

    return end


def _response_headers(ws: aiohttp.ClientWebSocketResponse) -> tuple[tuple[str, str], ...]:
    # The 101 response's headers are public only from aiohttp 3.15 (aiohttp #2053).
    response = getattr(ws, "_response", None)
    headers = getattr(response, "headers", None) or {}
    return tuple(headers.items())


class _Client:
    """The aiohttp side of one replay: opens the connections the engine asks for."""

    def __init__(self, session: aiohttp.ClientSession, target: str | None, ssl: Any):
        self.session, self.target, self.ssl = session, target, ssl
        self.driver: Driver | None = None
        self.tasks: set[asyncio.Task] = set()

    def open(self, action: Open) -> None:
        task = asyncio.get_running_loop().create_task(self._connect(action))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connect(self, action: Open) -> None:
        url, wire = retarget(action.url, self.target), None
        try:
            ws = await self.session.ws_connect(
                url, headers=list(action.headers), protocols=action.protocols,
                compress=15 if action.compress else 0, autoclose=False, autoping=False,
                decode_text=False, max_msg_size=MAX_MESSAGE, ssl=self.ssl,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=GRACE))
            handshake = Handshake(101, ws.protocol, _response_headers(ws), bool(ws.compress))
            wire = Wire(action.conn, ws, _client_end(ws))
        except aiohttp.WSServerHandshakeError as exc:
            headers = tuple(exc.headers.items()) if exc.headers else ()
            handshake = Handshake(exc.status, headers=headers, error=exc.message)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as exc:
            handshake = Handshake(0, error=connect_error(url, exc))
        self.driver.opened(action.conn, handshake, wire)


def connect_error(url: str, exc: BaseException) -> str:
    """Why no handshake answer came from ``url``, in wsreplay's words: one line naming the
    host, the system's reason in brackets (aiohttp's own text repeats the address)."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "wss" else 80)
    except ValueError:
        port = None
    where = f"{parts.hostname}:{port}" if parts.hostname else url
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve the host {parts.hostname}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS failed with {where} ({_os_reason(exc)})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, ConnectionRefusedError):
            return f"nothing is listening on {where} (connection refused)"
        return f"cannot connect to {where} ({_os_reason(exc)})"
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer from {where} in time"
    if isinstance(exc, (aiohttp.ServerDisconnectedError, ConnectionResetError)):
        return f"{where} ended the connection before answering the handshake"
    return f"{url}: {exc or type(exc).__name__}"


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    cause = exc.os_error
    return (getattr(cause, "strerror", None) or str(cause) or type(cause).__name__).lower()


async def replay_scenario(scenario: m.Scenario, target: str | None = None, *,
                          timing: Timing = FAST, variables: Mapping[str, Any] | None = None,
                          env: Mapping[str, str] | None = None,
                          read_file: Callable | None = None,
                          timeout: float = DEFAULT_TIMEOUT, ssl: Any = True) -> Result:
    """Play ``scenario``'s client side against its server (or ``target``) and check the
    server's side. ``env`` defaults to ``os.environ`` (only names the file declares with
    ``env`` are read); ``read_file`` to the scenario folder's confined reader; ``ssl`` is
    aiohttp's (True: verify). Raises :class:`ScenarioError` when the scenario cannot run."""
    if read_file is None and Path(scenario.path).is_file():
        read_file = file_reader(scenario.path)
    engine = Engine(scenario, m.Side.CLIENT, timing=timing, variables=variables,
                    env=os.environ if env is None else env, read_file=read_file,
                    timeout=timeout)
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector, trust_env=False,
                                     ws_response_class=ClientWebSocket) as session:
        client = _Client(session, target, ssl)
        client.driver = Driver(engine, client.open)
        try:
            return await client.driver.run()
        finally:
            for task in list(client.tasks):
                task.cancel()
            await asyncio.gather(*client.tasks, return_exceptions=True)


def scenario_error_result(path: str, error: ScenarioError, side: m.Side) -> Result:
    """A result standing for a file that cannot run (exit code 2)."""
    step = m.Comment("", pos=error.pos)
    return Result(str(path), side, failures=[Failure("scenario", error.render(), step=step)])


async def replay_paths(paths: Iterable[str | Path], target: str | None = None, *,
                       jobs: int = 1, on_result: Callable[[Result], None] | None = None,
                       on_start: Callable[[str], None] | None = None,
                       **options: Any) -> list[Result]:
    """Load and replay every file, at most ``jobs`` at once; results in the files' order.
    ``on_start(path)`` and ``on_result(result)`` report progress as runs start and end."""
    paths = [str(p) for p in paths]
    gate = asyncio.Semaphore(max(1, jobs))

    async def one(path: str) -> Result:
        async with gate:
            if on_start:
                on_start(path)
            try:
                result = await replay_scenario(load(path), target, **options)
            except ScenarioError as exc:
                result = scenario_error_result(path, exc, m.Side.CLIENT)
            result.name = path
            if on_result:
                on_result(result)
            return result

    return list(await asyncio.gather(*(one(p) for p in paths)))


def default_ssl(cafile: str | None = None, insecure: bool = False) -> Any:
    """aiohttp's ``ssl`` argument: verify (optionally with ``cafile``), or not at all."""
    if insecure:
        return False
    if cafile:
        return ssl_module.create_default_context(cafile=cafile)
    return True
