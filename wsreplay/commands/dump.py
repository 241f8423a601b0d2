"""``wsreplay dump FILE``: the scenario's events as JSON Lines, for scripts and jq."""

from __future__ import annotations

import base64
import sys
from typing import Any, Iterator

import orjson

from .. import model as m
from ..errors import ScenarioError
from ..loader import load
from . import EXIT_OK, EXIT_USAGE, print_error


def add_parser(sub) -> None:
    p = sub.add_parser("dump", help="print a scenario's events as JSON Lines",
                       description="Print every connection and message of a scenario as one "
                                   "JSON object per line (includes and repeats expanded).")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        scenario = load(args.file)
    except ScenarioError as exc:
        print_error(exc)
        return EXIT_USAGE
    out = sys.stdout.buffer
    for record in records(scenario.steps):
        out.write(orjson.dumps(record) + b"\n")
    out.flush()
    return EXIT_OK


def records(steps: tuple, group: int | None = None) -> Iterator[dict[str, Any]]:
    """One dict per connection or event, in run order (repeats unrolled)."""
    for step in steps:
        if isinstance(step, m.Connect):
            yield _connect(step)
        elif isinstance(step, m.Event):
            yield _event(step, group)
        elif isinstance(step, m.Repeat):
            for _ in range(step.count):
                yield from records(step.steps, group)
        elif isinstance(step, m.Unordered):
            yield from records(step.steps, step.pos.line)


def _where(pos: m.Pos) -> dict[str, Any]:
    return {"file": pos.path, "line": pos.line}


def _seconds(us: int | None) -> float | None:
    return None if us is None else us / 1_000_000


def _connect(c: m.Connect) -> dict[str, Any]:
    return {"type": "conn", "conn": c.name, "url": c.url, "at": _seconds(c.at),
            "query": dict(c.query), "headers": [list(h) for h in c.headers],
            "protocols": list(c.protocols), "expect_status": c.expect_status or 101,
            "expect_protocol": c.expect_protocol, **_where(c.pos)}


def _event(e: m.Event, group: int | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "event", "conn": e.conn, "direction": e.side.value,
        "from": "client" if e.side is m.Side.CLIENT else "server",
        "kind": _KINDS[type(e.payload)], "at": _seconds(e.at), "within": _seconds(e.within)}
    record.update(_payload(e.payload))
    if group is not None:
        record["unordered_group"] = group
    record.update(_where(e.pos))
    return record


_KINDS = {m.Text: "text", m.Json: "json", m.Regex: "regex", m.Binary: "binary", m.File: "file",
          m.Ping: "ping", m.Pong: "pong", m.Close: "close", m.Drop: "drop",
          m.Silence: "silence"}


def _payload(p: m.Payload) -> dict[str, Any]:
    if isinstance(p, m.Text):
        return {"text": p.text}
    if isinstance(p, m.Json):
        return {"text": p.source, "json": p.value, "subset": p.subset, "ignore": list(p.ignore)}
    if isinstance(p, m.Regex):
        return {"pattern": p.pattern}
    if isinstance(p, m.Binary) and p.template is not None:
        return {"template": p.template}
    if isinstance(p, (m.Binary, m.Ping, m.Pong)):
        return {"base64": base64.b64encode(p.data).decode("ascii")}
    if isinstance(p, m.File):
        return {"path": p.path}
    if isinstance(p, m.Close):
        return {"code": p.code, "reason": p.reason}
    if isinstance(p, m.Silence):
        return {"duration": _seconds(p.duration)}
    return {}
