"""wsreplay: record, replay and mock WebSocket traffic with plain-text scenario files.

The public API, in the order data flows: a :class:`RecordingProxy` writes what passes into a
scenario file; :func:`load` / :func:`parse` read one into a :class:`Scenario` (and
:func:`write` is their exact inverse); :func:`replay_scenario` plays its client side against
a server and :class:`MockServer` its server side to a client, each giving a :class:`Result`
that :func:`render_result` turns into the report the CLI prints.
"""

__version__ = "0.1.0"

from .errors import (FormatVersionError, RunError, ScenarioError, ScenarioSyntaxError,
                     UsageError, WsreplayError)
from .lint import Diagnostic, lint
from .loader import load
from .model import (Binary, Close, Connect, Drop, Event, File, Json, Ping, Pong, Regex, Rule,
                    Scenario, Side, Silence, Text)
from .outcome import Failure, Result
from .parser import parse
from .program import Timing
from .proxy import ProxyConfig, RecordingProxy
from .recorder import Recorder, Redaction
from .replay import replay_paths, replay_scenario
from .report import render_result
from .serve import MockServer
from .writer import write

__all__ = [
    "Binary", "Close", "Connect", "Diagnostic", "Drop", "Event", "Failure", "File",
    "FormatVersionError", "Json", "MockServer", "Ping", "Pong", "ProxyConfig", "Recorder",
    "RecordingProxy", "Redaction", "Regex", "Result", "Rule", "RunError", "Scenario",
    "ScenarioError", "ScenarioSyntaxError", "Side", "Silence", "Text", "Timing", "UsageError",
    "WsreplayError", "lint", "load", "parse", "render_result", "replay_paths",
    "replay_scenario", "write",
]
