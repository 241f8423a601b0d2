"""wsreplay: record, replay and mock WebSocket traffic with plain-text scenario files.

The public API, in the order data flows: a :class:`RecordingProxy` writes what passes into a
scenario file; :func:`load` / :func:`parse` read one into a :class:`Scenario` (and
:func:`write` is their exact inverse); :func:`replay_scenario` plays its client side against
a server and :class:`MockServer` its server side to a client, each giving a :class:`Result`
that :func:`render_result` turns into the report the CLI prints.
"""

__version__ = "0.1.0"

# The public API, loaded on first use (PEP 562): ``import wsreplay.model`` -- the language, the
# engine -- loads no aiohttp; the shells (proxy, replay, serve) come in when asked for.
_WHERE = {
    "FormatVersionError": "errors", "RunError": "errors", "ScenarioError": "errors",
    "ScenarioSyntaxError": "errors", "UsageError": "errors", "WsreplayError": "errors",
    "Diagnostic": "lint", "lint": "lint", "load": "loader",
    **{name: "model" for name in ("Binary", "Close", "Connect", "Drop", "Event", "File",
                                  "Json", "Ping", "Pong", "Regex", "Rule", "Scenario", "Side",
                                  "Silence", "Text")},
    "Failure": "outcome", "Result": "outcome", "parse": "parser", "Timing": "program",
    "ProxyConfig": "proxy", "RecordingProxy": "proxy", "Recorder": "recorder",
    "Redaction": "recorder", "replay_paths": "replay", "replay_scenario": "replay",
    "render_result": "report", "MockServer": "serve", "write": "writer",
}

__all__ = [
    "Binary", "Close", "Connect", "Diagnostic", "Drop", "Event", "Failure", "File",
    "FormatVersionError", "Json", "MockServer", "Ping", "Pong", "ProxyConfig", "Recorder",
    "RecordingProxy", "Redaction", "Regex", "Result", "Rule", "RunError", "Scenario",
    "ScenarioError", "ScenarioSyntaxError", "Side", "Silence", "Text", "Timing", "UsageError",
    "WsreplayError", "lint", "load", "parse", "render_result", "replay_paths",
    "replay_scenario", "write",
]


# ``lint`` is both a function of the API and the module holding it: imported here, so the
# function is what the name means whoever imports the module later.
from .lint import lint  # noqa: E402


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'wsreplay' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
