"""Reports of runs: for people (in the scenario language's own notation), JUnit XML and
JSON for machines.

:func:`render_failure` shows, for one failure: where (``file:line``) and what went wrong,
the expected line as written, the message that arrived instead (written as a scenario line
would be), the JSON path of the first difference, the time waited against the deadline, and
what else was waiting in the connection's inbox. :func:`render_result` wraps that for a
whole run; :func:`junit_xml` and :func:`json_report` serialise a list of results.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any, Iterable

from . import model as m
from .matchers import parse_received_json
from .messages import Kind, Message
from .outcome import KINDS, Failure, Result
from .redact import scrub
from .writer import format_event, format_step

INBOX_SHOWN = 5
LINE_LIMIT = 200

_COLOURS = {"red": "\x1b[31m", "green": "\x1b[32m", "yellow": "\x1b[33m", "dim": "\x1b[2m",
            "bold": "\x1b[1m"}


def paint(text: str, colour: str, on: bool) -> str:
    return f"{_COLOURS[colour]}{text}\x1b[0m" if on else text


def message_payload(msg: Message) -> m.Payload:
    """The scenario payload that would expect exactly ``msg`` (JSON text stays JSON)."""
    if msg.kind is Kind.TEXT:
        text = msg.data.decode("utf-8", "replace")
        if text[:1] in ("{", "["):
            try:
                parse_received_json(text)
                return m.Json(text)
            except ValueError:
                pass
        return m.Text(text)
    if msg.kind is Kind.BINARY:
        return m.Binary(msg.data)
    if msg.kind is Kind.PING:
        return m.Ping(msg.data)
    if msg.kind is Kind.PONG:
        return m.Pong(msg.data)
    if msg.kind is Kind.CLOSE:
        return m.Close(msg.code, msg.reason or None)
    return m.Drop()


def message_line(conn: str, side: m.Side, msg: Message) -> str:
    """``msg`` as the scenario line ``conn <side> ...`` (clipped to one screen line)."""
    line = format_event(m.Event(conn, side, message_payload(msg)))
    if msg.kind is Kind.DROP and msg.reason:
        line += f"   ({msg.reason})"
    first, _, more = line.partition("\n")
    if more or len(first) > LINE_LIMIT:
        first = first[:LINE_LIMIT - 1] + "…"
    return first


def _where(pos: m.Pos | None) -> str:
    if pos is None or not pos.line:
        return ""
    return f"{pos.path}:{pos.line}"


def _expected_lines(step: Any) -> list[str]:
    if step is None or isinstance(step, m.Comment):
        return []
    return format_step(step).rstrip("\n").split("\n")


def render_failure(failure: Failure, side: m.Side, colour: bool = False) -> str:
    """One failure, in the language's notation, ready to print (ends without newline)."""
    peer = side.other
    where = _where(failure.pos)
    out = [paint(f"{where + ': ' if where else ''}{failure.summary}", "bold", colour)]
    expected = _expected_lines(failure.missing and m.Unordered(failure.missing)
                               or failure.step)
    if expected and failure.kind != "scenario":
        label = "the connection" if isinstance(failure.step, m.Connect) else "expected"
        if failure.kind == "leftover":
            label = "on the connection"
        out.append(f"  {label} ({where}):" if where else f"  {label}:")
        out += [f"    {line}" for line in expected]
    if failure.received is not None and failure.conn:
        title = "left over" if failure.kind == "leftover" else "received instead"
        out.append(f"  {title}:")
        out.append("    " + paint(message_line(failure.conn, peer, failure.received), "red",
                                  colour))
    if failure.path and failure.reason and failure.kind not in ("leftover",):
        if failure.path.startswith("$"):
            out.append(f"  first difference at {failure.path}: {failure.reason}")
        else:  # text, bytes, handshake: the reason says where
            out.append(f"  difference: {failure.reason}")
    if failure.later is not None:
        out.append(f"  {_where(failure.later.pos)} expects this message: the replies came "
                   "in another order than recorded")
    if failure.waited is not None and failure.allowed is not None:
        out.append(f"  waited {failure.waited:.3f}s of {failure.allowed:g}s")
    if failure.inbox:
        out.append(f"  also in {failure.conn}'s inbox ({len(failure.inbox)}):")
        out += [f"    {message_line(failure.conn, peer, msg)}"
                for msg in failure.inbox[:INBOX_SHOWN]]
        if len(failure.inbox) > INBOX_SHOWN:
            out.append(f"    … and {len(failure.inbox) - INBOX_SHOWN} more")
    elif failure.kind in ("missing", "mismatch", "reordered", "extra", "closed"):
        out.append(f"  nothing else in {failure.conn}'s inbox")
    return "\n".join(out)


def render_result(result: Result, colour: bool = False, verbose: bool = False) -> str:
    """A run: a PASS/FAIL header line, then each failure and warning (ends with newline)."""
    mode = "replay" if result.side is m.Side.CLIENT else "serve"
    peer = f", client {result.peer}" if result.peer else ""
    stats = f"{mode}, {result.duration:.3f}s, {result.sent} sent, {result.matched} matched"
    if result.passed:
        head = paint("PASS", "green", colour) + f" {result.name} ({stats}{peer})"
    else:
        head = paint("FAIL", "red", colour) + f" {result.name} ({stats}{peer})"
    out = [head]
    out += [f"  note: {note}" for note in result.notes]
    for failure in result.failures:
        out.append(_indent(render_failure(failure, result.side, colour)))
    for warning in result.warnings:
        out.append(_indent(paint("warning: ", "yellow", colour)
                           + render_failure(warning, result.side, colour)))
    return scrub("\n".join(out), result.secrets) + "\n"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.split("\n"))


def summary_line(results: list[Result]) -> str:
    failed = sum(not r.passed for r in results)
    return (f"{len(results) - failed} passed, {failed} failed"
            f" ({len(results)} scenario{'s' if len(results) != 1 else ''})")


def junit_xml(results: Iterable[Result], suite: str = "wsreplay") -> str:
    """A JUnit XML document: one testcase per run, a failure (or error, for a scenario
    that cannot run) carrying the same report as the console."""
    results = list(results)
    root = ET.Element("testsuites")
    node = ET.SubElement(root, "testsuite", {
        "name": suite, "tests": str(len(results)),
        "failures": str(sum(not r.passed and not r.error for r in results)),
        "errors": str(sum(r.error for r in results)),
        "time": f"{sum(r.duration for r in results):.3f}"})
    for result in results:
        mode = "replay" if result.side is m.Side.CLIENT else "serve"
        case = ET.SubElement(node, "testcase", {
            "classname": f"wsreplay.{mode}", "name": result.name, "file": result.name,
            "time": f"{result.duration:.3f}"})
        if result.failures:
            first = result.failures[0]
            if first.pos and first.pos.line:
                case.set("line", str(first.pos.line))
            tag = "error" if result.error else "failure"
            fail = ET.SubElement(case, tag, {"message": scrub(first.summary, result.secrets),
                                             "type": first.kind})
            fail.text = scrub("\n\n".join(render_failure(f, result.side)
                                           for f in result.failures), result.secrets)
        if result.warnings:
            out = ET.SubElement(case, "system-out")
            out.text = scrub("\n\n".join(render_failure(w, result.side)
                                          for w in result.warnings), result.secrets)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def json_report(results: Iterable[Result]) -> str:
    """A JSON document: ``{"passed": bool, "results": [...]}`` (see Result.to_dict)."""
    results = list(results)
    doc = {"passed": all(r.passed for r in results),
           "results": [_scrubbed(r.to_dict(), r.secrets) for r in results],
           "kinds": KINDS}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _scrubbed(value: Any, secrets: frozenset[str]) -> Any:
    """``value`` (a JSON document's part) with every string scrubbed of secrets."""
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, list):
        return [_scrubbed(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: _scrubbed(v, secrets) for k, v in value.items()}
    return value
