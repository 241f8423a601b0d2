"""Third-party peers (programs not written by this project) for the issue 10 tests, and what
drives them through wsreplay.

A :class:`Peer` is a protocol stack written by others: a server program and a client program
with a fixed conversation (``tests/peers/socketio_*.js``, ``graphql_*.js``, ``mqtt_*``,
``jsonrpc_*.js``, and ``tests/socketio_peer.py`` on python-socketio). Every server prints
``{"event":"listening","port":N}`` first; every client prints one JSON event per line and exits
0 when its conversation went as written, 1 when not.

Fixtures (import them into a test module):

* ``peer_server(peer) -> Proc``: a fresh server process on 127.0.0.1 (``proc.port`` set);
* ``peer_client(peer, port) -> Conversation``: the client's conversation, run to its end;
* ``record_peer(peer, raw=False) -> Recording``: the conversation recorded through
  ``wsreplay record`` (the real proxy, as a process), with the scenario text: generalized
  as the recorder does by default, or with ``raw`` as it passed (``--no-infer``);
* ``wsreplay_cli``: ``replay(file, port)`` and ``serve_to(file, peer)`` run the CLI.

Every process is started through ``conftest.spawn``: killed when the test ends, every wait
bounded by ``T``.
"""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from .conftest import PEERS, TESTS, T, Proc, missing

THIRDPARTY = TESTS / "thirdparty"  # the hand-edited recordings


@dataclass(frozen=True)
class Peer:
    """A third-party stack: ``server``/``client`` argv tails (run with ``runtime``);
    ``url`` is how its client is pointed at a port (``{port}`` filled in)."""

    name: str
    runtime: str  # "node" or "python"
    server: tuple[str, ...]
    client: tuple[str, ...]
    url: str
    needs: tuple[str, ...] = ()  # node_modules packages (or Python modules) it loads

    def client_url(self, port: int) -> str:
        return self.url.format(port=port)


def _node(script: str, *options: str) -> tuple[str, ...]:
    return (str(PEERS / script), *options)


_SIO_PY = str(TESTS / "socketio_peer.py")

PEER_LIST = [
    Peer("socketio-node", "node", _node("socketio_server.js"), _node("socketio_client.js"),
         "http://127.0.0.1:{port}", ("socket.io", "socket.io-client")),
    Peer("socketio-python", "python", (_SIO_PY, "server"), (_SIO_PY, "client"),
         "http://127.0.0.1:{port}", ("socketio", "aiohttp")),
    Peer("graphql-ws", "node", _node("graphql_server.js"), _node("graphql_client.js"),
         "ws://127.0.0.1:{port}/graphql", ("graphql", "graphql-ws")),
    # mqtt.js and aedes as Node runs them by default: each stream write is its own WebSocket
    # message, so an MQTT packet arrives in pieces (fixed header, length, fields).
    Peer("mqtt-stream", "node", _node("mqtt_broker.mjs"), _node("mqtt_client.js"),
         "ws://127.0.0.1:{port}/mqtt", ("mqtt", "aedes")),
    # One MQTT packet per WebSocket message: mqtt.js's browser code path, a broker that
    # sends whole packets.
    Peer("mqtt-packets", "node", _node("mqtt_broker.mjs", "--whole-packets"),
         _node("mqtt_client.js", "--browser-ws"), "ws://127.0.0.1:{port}/mqtt",
         ("mqtt", "aedes")),
    # JSON-RPC 2.0 (npm json-rpc-2.0) over ws: the client draws a random integer request id
    # per request; the server's session, subscription id and times change on every run.
    Peer("jsonrpc", "node", _node("jsonrpc_server.js"), _node("jsonrpc_client.js"),
         "ws://127.0.0.1:{port}/rpc", ("json-rpc-2.0", "ws")),
]
PEERS_BY_NAME = {p.name: p for p in PEER_LIST}
# The Socket.IO pairs with Engine.IO's heartbeat on while the client stays connected after
# its chat (issue 11: heartbeats become rules): a ping every 150 ms for 900 ms (Node), every
# second for 3.4 s (python-engineio tells its client whole seconds only).
PINGING = {
    "socketio-node": replace(PEERS_BY_NAME["socketio-node"], name="socketio-node-ping",
                             server=_node("socketio_server.js", "--ping-interval", "150"),
                             client=_node("socketio_client.js", "--linger", "900")),
    "socketio-python": replace(PEERS_BY_NAME["socketio-python"], name="socketio-python-ping",
                               server=(_SIO_PY, "server", "--ping-interval", "1000"),
                               client=(_SIO_PY, "client", "--linger", "3400")),
}
PEERS_BY_NAME.update({p.name: p for p in PINGING.values()})


def require(peer: Peer) -> None:
    """Skip (fail under CI) when the peer's runtime or packages are not installed."""
    if peer.runtime == "node":
        for tool in ("node", "npm"):
            if shutil.which(tool) is None:
                missing(f"{tool} is not installed (the third-party peers need Node.js)")
        for package in peer.needs:
            if not (PEERS / "node_modules" / package / "package.json").is_file():
                missing(f"npm package {package} is missing: run `npm ci --prefix tests/peers`")
    else:
        for module in peer.needs:
            try:
                __import__(module)
            except ImportError:
                missing(f"Python package {module} is missing: run `pip install -e '.[test]'`")


def argv(peer: Peer, role: str) -> list[str]:
    exe = "node" if peer.runtime == "node" else sys.executable
    return [exe, *(peer.server if role == "server" else peer.client)]


def listening_port(proc: Proc, timeout: float = T) -> int:
    """The port from a peer server's first ``{"event":"listening","port":N}`` line."""
    line = proc.wait_line(lambda l: '"listening"' in l, timeout)
    return int(json.loads(line)["port"])


@dataclass
class Conversation:
    """How a client's conversation ended: its exit code and JSON events."""

    code: int
    events: list[dict]
    proc: Proc

    @property
    def ok(self) -> bool:
        return self.code == 0 and any(e.get("event") == "done" for e in self.events)

    def describe(self) -> str:
        return self.proc.describe()


@dataclass
class Recording:
    """A peer conversation recorded through ``wsreplay record``."""

    path: Path
    text: str
    conversation: Conversation  # the client's, through the proxy
    server: Proc  # the server process recorded against (still running)
    recorder: list[str] = field(default_factory=list)  # the recorder's output lines


@pytest.fixture
def peer_server(spawn):
    """``peer_server(peer) -> Proc``: a fresh server process, ``proc.port`` set."""

    def start(peer: Peer) -> Proc:
        require(peer)
        proc = spawn(argv(peer, "server"), ready=False, cwd=PEERS)
        proc.port = listening_port(proc)
        return proc

    return start


@pytest.fixture
def peer_client(spawn):
    """``peer_client(peer, port) -> Conversation``: the client's whole conversation with
    127.0.0.1:``port`` (bounded: its own timeout is ``2 * T``, the wait ``3 * T``)."""

    def run(peer: Peer, port: int) -> Conversation:
        require(peer)
        proc = spawn([*argv(peer, "client"), peer.client_url(port), "--timeout", f"{2 * T:g}"],
                     ready=False, cwd=PEERS)
        code = proc.wait(3 * T)
        return Conversation(code, proc.events(), proc)

    return run


@pytest.fixture
def record_peer(spawn, peer_server, peer_client, python_exe, tmp_path):
    """``record_peer(peer, raw=False) -> Recording``: start the peer's server, put
    ``wsreplay record`` in front of it, run the client's conversation through the proxy,
    stop the recorder with Ctrl-C (SIGINT) and read the file it finished."""

    made = itertools.count(1)

    def record(peer: Peer, raw: bool = False) -> Recording:
        server = peer_server(peer)
        # a file of its own per call: a test may record again (a draw it cannot use)
        out = tmp_path / f"{peer.name}{'-raw' * raw}-{next(made)}.wsr"
        recorder = spawn([python_exe, "-m", "wsreplay", "record", "--target",
                          f"ws://127.0.0.1:{server.port}", "--listen", "127.0.0.1:0",
                          "--out", out, *(["--no-infer"] if raw else [])])
        conversation = peer_client(peer, recorder.port)
        # The client may end before the proxy has written the connection's end.
        recorder.wait_line(lambda line: "(0 open)" in line, T)
        recorder.popen.send_signal(signal.SIGINT)
        assert recorder.wait() == 0, recorder.describe()
        return Recording(out, out.read_text(encoding="utf-8"), conversation, server,
                         list(recorder.lines))

    return record


class WsreplayCli:
    """``wsreplay replay`` / ``serve`` as processes, started through ``spawn``."""

    def __init__(self, spawn, python_exe, peer_client):
        self.spawn, self.python, self.peer_client = spawn, python_exe, peer_client

    def run(self, *args, timeout: float = 3 * T) -> Proc:
        """``wsreplay ARGS...`` run to its end (``proc.popen.returncode`` its exit code)."""
        proc = self.spawn([self.python, "-m", "wsreplay", *args], ready=False)
        proc.wait(timeout)
        return proc

    def replay(self, path: Path, port: int, *args) -> Proc:
        return self.run("replay", path, "--target", f"ws://127.0.0.1:{port}", *args)

    def serve_to(self, path: Path, peer: Peer, *args) -> tuple[Conversation, Proc]:
        """Serve ``path`` once (``--once``) and run ``peer``'s client against it; returns
        the client's conversation and the ended serve process."""
        serve = self.spawn([self.python, "-m", "wsreplay", "serve", path, "--listen",
                            "127.0.0.1:0", "--once", "--within", f"{3 * T:g}s", *args])
        conversation = self.peer_client(peer, serve.port)
        serve.wait(4 * T)
        return conversation, serve


@pytest.fixture
def wsreplay_cli(spawn, python_exe, peer_client) -> WsreplayCli:
    return WsreplayCli(spawn, python_exe, peer_client)


def output(proc: Proc) -> str:
    """Everything a process printed (stdout, then stderr)."""
    return "\n".join(proc.lines + proc.stderr_lines)


