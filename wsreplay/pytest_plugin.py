"""pytest plugin (entry point ``pytest11``): scenario files as tests, and a fixture.

* Files named ``test_*.wsr`` or ``*_test.wsr`` (ini ``wsreplay_files`` changes the globs)
  are collected: one test per scenario, which replays its client side against the server
  (``--wsreplay-target`` / ini ``wsreplay_target`` points every connection at another
  host) and fails with the same report ``wsreplay replay`` prints.
* The ``wsreplay`` fixture runs scenarios from Python tests: ``await wsreplay.replay(path)``
  returns a :class:`~wsreplay.outcome.Result`, ``async with wsreplay.serve(path) as mock``
  serves one as a mock server, and ``wsreplay.check(result)`` fails the test with the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from . import model as m
from .commands import parse_vars
from .errors import ScenarioError, UsageError
from .loader import load
from .outcome import Result
from .parser import parse
from .program import Timing
from .replay import replay_scenario
from .report import render_result
from .serve import MockServer


def pytest_addoption(parser) -> None:
    group = parser.getgroup("wsreplay", "WebSocket scenario files (.wsr)")
    group.addoption("--wsreplay-target", metavar="URL",
                    help="replay every connection against this host (ws://host:port)")
    group.addoption("--wsreplay-var", action="append", metavar="NAME=VALUE", default=[],
                    help="set a scenario variable; repeatable")
    group.addoption("--wsreplay-timing", metavar="recorded|fast|SCALE", default=None,
                    help="pacing of sends (default: fast)")
    parser.addini("wsreplay_files", "globs of scenario files collected as tests",
                  type="args", default=["test_*.wsr", "*_test.wsr"])
    parser.addini("wsreplay_target", "default for --wsreplay-target", default="")


class ScenarioFailed(Exception):
    """A scenario ran and the server under test behaved differently."""

    def __init__(self, result: Result):
        super().__init__(result.name)
        self.result = result


class _Options:
    def __init__(self, config):
        self.target = config.getoption("wsreplay_target") or config.getini("wsreplay_target") or None
        try:
            self.variables = parse_vars(config.getoption("wsreplay_var"))
            self.timing = Timing.parse(config.getoption("wsreplay_timing") or "fast")
        except (UsageError, ValueError) as exc:
            raise pytest.UsageError(f"wsreplay: {exc}") from None


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix != ".wsr":
        return None
    patterns = parent.config.getini("wsreplay_files")
    if any(fnmatch.fnmatch(file_path.name, p) for p in patterns):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self):
        yield ScenarioItem.from_parent(self, name=self.path.stem)


class ScenarioItem(pytest.Item):
    """One scenario file, replayed against its server."""

    def runtest(self) -> None:
        options = _Options(self.config)
        scenario = load(self.path)  # a ScenarioError is rendered by repr_failure
        result = asyncio.run(replay_scenario(scenario, options.target, timing=options.timing,
                                             variables=options.variables))
        self.user_properties.append(("wsreplay", result.to_dict()))
        if not result.passed:
            raise ScenarioFailed(result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ScenarioFailed):
            return render_result(excinfo.value.result)
        if isinstance(excinfo.value, ScenarioError):
            return excinfo.value.render()
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, 0, f"scenario {self.path.name}"


# --- the fixture ---------------------------------------------------------------------------


def _scenario(source: str | Path | m.Scenario) -> m.Scenario:
    if isinstance(source, m.Scenario):
        return source
    if isinstance(source, str) and source.lstrip().startswith("wsreplay "):
        return parse(source, "<test>")
    return load(source)


class Wsreplay:
    """What the ``wsreplay`` fixture gives a test."""

    def __init__(self, options: _Options):
        self.options = options

    async def replay(self, source: str | Path | m.Scenario, target: str | None = None,
                     **kwargs: Any) -> Result:
        """Replay a scenario (a path, scenario text or a Scenario); returns the Result."""
        kwargs.setdefault("timing", self.options.timing)
        kwargs.setdefault("variables", self.options.variables)
        return await replay_scenario(_scenario(source), target or self.options.target, **kwargs)

    @contextlib.asynccontextmanager
    async def serve(self, *sources: str | Path | m.Scenario,
                    **kwargs: Any) -> AsyncIterator[MockServer]:
        """Serve scenarios as a mock on 127.0.0.1 (any free port: ``mock.url``); stopped on
        exit."""
        kwargs.setdefault("variables", self.options.variables)
        server = MockServer([_scenario(s) for s in sources], **kwargs)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()

    @staticmethod
    def check(result: Result) -> None:
        """Fail the test with the replay report unless ``result`` passed."""
        if not result.passed:
            pytest.fail(render_result(result), pytrace=False)


@pytest.fixture
def wsreplay(request) -> Wsreplay:
    """Replay and serve scenarios from a test; see :class:`Wsreplay`."""
    return Wsreplay(_Options(request.config))
