"""Semantic checks of a parsed scenario: what ``wsreplay check`` reports beyond syntax.

:func:`lint` walks the steps in file order, as a run would, and returns diagnostics:
connections used before ``conn`` (or after a refused handshake), variables used before any
``var``, ``env``, ``--var`` or capture defines them, unknown markers, bad regexes and paths,
unordered groups that mix directions, close codes that cannot go on the wire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

from . import model as m
from .binary import names as binary_names
from .matchers import parse_ignore_path
from .patterns import PatternError, compiled
from .template import BadPattern, TemplateError, classify_json_string, json_strings, placeholders

ERROR, WARNING = "error", "warning"
# Codes an endpoint must never put in a close frame (RFC 6455 7.4.1; 1004 is reserved).
_NOT_ON_WIRE = {1004: "reserved", 1005: "no status code", 1006: "abnormal closure",
                1015: "TLS failure"}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """``refused``: replay and serve refuse the file before running (``check`` exits 2)."""

    pos: m.Pos
    message: str
    severity: str = ERROR
    refused: bool = False
    needle: str | None = None  # the text at fault, to put the caret on it in its line


class _Linter:
    def __init__(self, defined: Iterable[str], read_file: Callable | None):
        self.out: list[Diagnostic] = []
        self.variables: set[str] = set(defined)
        self.conns: dict[str, m.Connect] = {}
        self.refused: set[str] = set()
        self.read_file = read_file

    def report(self, pos: m.Pos, message: str, severity: str = ERROR,
               refused: bool = False, needle: str | None = None) -> None:
        self.out.append(Diagnostic(pos, message, severity, refused, needle))

    # templates

    def template(self, source: str, pos: m.Pos, where: str, markers: bool = True) -> None:
        try:
            found = placeholders(source)
        except TemplateError as exc:
            self.report(pos, f"{where}: {exc.message}", refused=isinstance(exc, BadPattern))
            return
        for ph in found:
            if ph.kind == "var" and ph.name not in self.variables:
                self.report(pos, f"{where}: undefined variable {ph.name!r} (declare it with "
                                 "`var` or `env`, pass --var, or capture it on an earlier line)",
                            refused=True, needle=source[ph.start:ph.end])
            elif ph.kind in ("marker", "capture") and not markers:
                self.report(pos, f"{where}: a marker cannot stand here: it is never matched")
            if ph.kind == "capture":
                self.variables.add(ph.name)

    def json(self, value, pos: m.Pos, where: str) -> None:
        for path, string in json_strings(value):
            try:
                js = classify_json_string(string)
            except TemplateError as exc:
                self.report(pos, f"{where} at {path}: {exc.message}",
                            refused=isinstance(exc, BadPattern))
                continue
            if js.kind in ("single", "template"):
                self.template(string, pos, f"{where} at {path}")

    def payload(self, p: m.Payload, pos: m.Pos) -> None:
        if isinstance(p, m.Text):
            self.template(p.text, pos, "text")
        elif isinstance(p, m.Json):
            self.json(p.value, pos, "json")
            for path in p.ignore:
                try:
                    parse_ignore_path(path)
                except TemplateError as exc:
                    self.report(pos, f"{exc.message}: write paths like $.a.b[0].c or $.items[*].id")
        elif isinstance(p, m.Regex):
            try:
                pattern = compiled(p.pattern)
            except PatternError as exc:
                self.report(pos, f"bad regex: {exc.message}", refused=True)
            else:
                self.variables.update(pattern.groupindex)
        elif isinstance(p, m.Binary) and p.template is not None:
            self.binary(p.template, pos)
        elif isinstance(p, (m.Ping, m.Pong)) and len(p.data) > 125:
            self.report(pos, "a control frame payload is at most 125 bytes")
        elif isinstance(p, m.Close):
            self.close(p, pos)
        elif isinstance(p, m.File) and self.read_file is not None:
            try:
                self.read_file(p.path, pos)
            except Exception as exc:  # ScenarioError or OSError: both are the file's fault
                self.report(pos, getattr(exc, "message", str(exc)), refused=True)

    def binary(self, source: str, pos: m.Pos) -> None:
        try:
            found = binary_names(source)
        except TemplateError as exc:
            self.report(pos, f"hex: {exc.message}")
            return
        for kind, name, _offset in found:
            if kind == "var" and name not in self.variables:
                self.report(pos, f"hex: undefined variable {name!r} (declare it with `var` or "
                                 "`env`, pass --var, or capture it on an earlier line)",
                            refused=True, needle="{{" + name)
            elif kind == "capture":
                self.variables.add(name)

    def close(self, p: m.Close, pos: m.Pos) -> None:
        if p.code is None:
            return
        if p.code in _NOT_ON_WIRE:
            hint = {1005: "write `close` with no code", 1006: "write `drop`"}.get(p.code, "")
            self.report(pos, f"close code {p.code} ({_NOT_ON_WIRE[p.code]}) never goes on the "
                             f"wire" + (f": {hint}" if hint else ""), WARNING)
        elif p.code < 1000 or 1016 <= p.code < 3000 or p.code > 4999:
            self.report(pos, f"close code {p.code} is outside the ranges a peer may send "
                             "(1000-1014, 3000-4999)", WARNING)
        if p.reason is not None and len(p.reason.encode("utf-8")) > 123:
            self.report(pos, "a close reason is at most 123 bytes of UTF-8")

    # steps

    def steps(self, steps: tuple) -> None:
        for step in steps:
            handler = getattr(self, "step_" + type(step).__name__.lower(), None)
            if handler is not None:
                handler(step)

    def step_var(self, step: m.Var) -> None:
        if isinstance(step.value, str):
            self.template(step.value, step.pos, f"var {step.name}", markers=False)
        self.variables.add(step.name)

    def step_env(self, step: m.Env) -> None:
        self.variables.add(step.name)

    def step_connect(self, c: m.Connect) -> None:
        if c.name in self.conns:
            self.report(c.pos, f"connection {c.name!r} is already opened at line "
                               f"{self.conns[c.name].pos.line}: give each connection its own name")
        self.conns[c.name] = c
        # the URL, query and header templates are matched when serving (markers and captures
        # accept a client's own value there) and sent when replaying (their example)
        host = re.match(r"[^/]*(//[^/?]*)?", c.url).group()
        if "{{" in host and any(ph.kind in ("marker", "capture")
                                for ph in _placeholders_or_none(host)):
            self.report(c.pos, "url: a marker cannot stand here: the host is where replay "
                               "connects, and serving matches only the path and query")
        self.template(c.url, c.pos, "url")
        if not re.match(r"(wss?://|\{\{)", c.url):
            self.report(c.pos, f"the url must start with ws:// or wss://, not {c.url[:12]!r}")
        for key, value in c.query:
            self.template(value, c.pos, f"query {key}")
        for key, value in c.headers:
            self.template(value, c.pos, f"header {key}")
        for protocol in c.protocols:
            self.template(protocol, c.pos, "protocol", markers=False)
        if c.expect_protocol:
            self.template(c.expect_protocol, c.pos, "expect protocol")
        for key, value in c.expect_headers:
            self.template(value, c.pos, f"expect header {key}")
        for rule in c.rules:
            self.payload(rule.match, rule.pos)
            if rule.reply is not None:
                self.payload(rule.reply, rule.pos)
        if c.expect_status not in (None, 101):
            self.refused.add(c.name)

    def step_event(self, e: m.Event) -> None:
        if e.conn not in self.conns:
            self.report(e.pos, f"connection {e.conn!r} is not opened: add `conn {e.conn} URL` "
                               "on a line before")
        elif e.conn in self.refused:
            status = self.conns[e.conn].expect_status
            self.report(e.pos, f"connection {e.conn!r} expects its upgrade refused (status "
                               f"{status}): no message can follow")
        self.payload(e.payload, e.pos)

    def step_unordered(self, u: m.Unordered) -> None:
        sides = set()
        for step in u.steps:
            if isinstance(step, m.Event):
                sides.add(step.side)
            elif not isinstance(step, (m.Comment, m.Blank)):
                self.report(step.pos, "an unordered group holds message lines only")
        if len(sides) > 1:
            self.report(u.pos, "an unordered group holds lines of one direction only "
                               "(all `<` or all `>`)")
        self.steps(u.steps)

    def step_repeat(self, r: m.Repeat) -> None:
        if r.count < 1:
            self.report(r.pos, "repeat needs a count of 1 or more")
        self.steps(r.steps)


def lint(scenario: m.Scenario, defined: Iterable[str] = (),
         read_file: Callable | None = None) -> list[Diagnostic]:
    """Diagnostics for ``scenario`` (includes expanded, see :func:`wsreplay.loader.load`).

    ``defined`` names variables given on the command line; ``read_file(path, pos)`` checks
    ``file`` payloads (see :func:`wsreplay.loader.file_reader`).
    """
    linter = _Linter(defined, read_file)
    linter.steps(scenario.steps)
    return linter.out


def _placeholders_or_none(source: str) -> list:
    try:
        return placeholders(source)
    except TemplateError:
        return []  # reported by Lint.template
