"""The replay engine: one scenario run, free of I/O, for either side of the conversation.

The engine is fed what happened (a handshake result, a received message, a client asking
to connect) and a clock ``now`` (seconds, any origin); :meth:`Engine.poll` says what to do
next as a list of actions (:class:`Open`, :class:`Send`, :class:`Close`) and
:attr:`Engine.wake_at` the latest time to poll again when nothing arrives. When
:attr:`Engine.done` is set, :attr:`Engine.result` holds the verdict.

``Side.CLIENT`` plays the client (``wsreplay replay``): ``>`` lines are sent, ``<`` lines
expected. ``Side.SERVER`` plays the server (``wsreplay serve``): the other way round, and a
``conn`` line waits for a client to connect (the shell routes it with
:meth:`Engine.match_request`, then :meth:`Engine.accept`).

A shell's loop is::

    engine = Engine(scenario, Side.CLIENT, timing=...)
    actions = engine.poll(clock())
    while True:
        perform(actions)            # may feed engine.opened(...) / engine.receive(...)
        if engine.done: break
        wait for a message or until engine.wake_at
        feed it; actions = engine.poll(clock())

Which message an expectation consumes, and when a run ends, is ``docs/language.md``,
"Which message an expectation consumes"; this module implements that text.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from . import model as m
from .binary import render as render_binary
from .codecs import encode
from .connection import CAN_SEND, ENDED, Conn, S
from .diagnose import closed_failure, leftover_failure, mismatch_failure, missing_failure
from .errors import ScenarioError
from .matchers import (MatchResult, answer_protocol, match_handshake, match_message,
                       match_request)
from .messages import Handshake, Kind, Message, Request
from .outcome import Failure, Result
from .parser import parse_duration
from .program import FAST, Flat, Timing, check_lines, events_of, flatten
from .template import TemplateError, render_json_source, render_json_value, render_text

US = 1e-6
DEFAULT_TIMEOUT = 5.0


# --- actions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Open:
    """Open connection ``conn`` (client side); then call :meth:`Engine.opened`."""

    conn: str
    url: str
    headers: tuple[tuple[str, str], ...]
    protocols: tuple[str, ...]
    compress: bool


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` on ``conn`` now. A close message is a close frame (the shell keeps
    reading until the peer's close); a drop ends the connection with no close frame."""

    conn: str
    message: Message
    step: m.Event | None = None


@dataclass(frozen=True, slots=True)
class Close:
    """The run is over for ``conn``: end it. ``code`` None: the closing handshake is
    already under way (we sent our close frame), just let the connection go."""

    conn: str
    code: int | None
    reason: str = ""


Action = Open | Send | Close


@dataclass(frozen=True, slots=True)
class Answer:
    """How the mock server answers a client's handshake for one ``conn`` line."""

    conn: str
    status: int
    protocol: str | None
    headers: tuple[tuple[str, str], ...]
    compress: bool


class _Fail(Exception):
    def __init__(self, failure: Failure):
        self.failure = failure


# --- the engine -----------------------------------------------------------------------


class Engine:
    """One run of ``scenario`` playing ``side``.

    ``variables`` (from ``--var``) win over ``env`` (a mapping standing for the process
    environment; only names the file declares with ``env`` are read) and over the file.
    ``read_file(path, pos) -> bytes`` serves ``file`` payloads (``pos`` is the line naming
    the file; ``wsreplay.loader.file_reader`` confines them to the scenario's folder).
    ``fail_close`` is the close code sent on every open connection when the run fails.
    ``rng`` makes the values sent for markers (random bytes...); tests pass a seeded one.
    Raises :class:`ScenarioError` when the scenario cannot be played from this side.
    """

    def __init__(self, scenario: m.Scenario, side: m.Side, *, timing: Timing = FAST,
                 variables: Mapping[str, Any] | None = None,
                 env: Mapping[str, str] | None = None,
                 read_file: Callable[[str, m.Pos], bytes] | None = None,
                 timeout: float = DEFAULT_TIMEOUT, fail_close: int = 1000,
                 rng: random.Random | None = None):
        self.program: list[Flat] = flatten(scenario.steps)
        self.side, self.timing = side, timing
        self.overrides = dict(variables or {})
        self.vars: dict[str, Any] = dict(self.overrides)
        self.env = env or {}
        self.read_file = read_file
        self.timeout, self.fail_close = timeout, fail_close
        self.rng = rng or random.Random()
        self.leftover = m.Leftover.FAIL.value
        self.conns: dict[str, Conn] = {}
        self.result = Result(scenario.path, side)
        self.done = False
        self.wake_at: float | None = None
        self.t0: float | None = None
        self.pc = 0
        self._entered: float | None = None
        self._cur: dict[str, Any] = {}
        self._out: list[Action] = []
        self._env_names = {step.name for step in self.program if isinstance(step, m.Env)}
        check_lines(self.program, side)

    # -- feeding -------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Start the run's clock (``@T`` offsets count from here); poll() does it too."""
        if self.t0 is None:
            self.t0 = now
            self.result.duration = now  # turned into a duration when the run ends

    def opened(self, conn: str, handshake: Handshake, now: float) -> None:
        """The handshake of an :class:`Open` ended (``status`` 101: open)."""
        c = self.conns[conn]
        c.handshake = handshake
        c.fire("open" if handshake.status == 101 else "refuse")
        self._arm_beats(c, now)

    def receive(self, conn: str, msg: Message, now: float) -> None:
        """A message arrived on ``conn`` (a close frame and a drop too). Rules take theirs
        (answers go out with the next poll); the rest joins the inbox."""
        c = self.conns.get(conn)
        if c is None or self.done:
            return
        if msg.kind is Kind.CLOSE:
            c.fire("receive close")
        elif msg.kind is Kind.DROP:
            if c.state in ENDED:
                return  # the TCP end after a finished closing handshake is no news
            c.fire("drop")
        elif self._apply_rules(c, msg):
            return
        c.inbox.append(msg)

    def send_failed(self, conn: str, error: str, now: float) -> None:
        """The shell could not send on ``conn``; the run fails."""
        self._finish_failed(Failure("send", f"could not send on {conn}: {error}", conn=conn),
                            now)

    def abort(self, reason: str, now: float) -> None:
        """Give up the run (the shell is stopping); it fails with ``reason``."""
        if not self.done:
            step = self.program[self.pc] if self.pc < len(self.program) else None
            self._finish_failed(Failure("missing", reason, step=step), now)

    # -- the mock server's side of connecting ---------------------------------------------

    def pending_connects(self) -> list[tuple[int, m.Connect]]:
        """``conn`` lines still waiting for a client, with their place in the run, in file
        order (the mock server routes clients to them)."""
        if self.done:
            return []
        seen, out = set(), []
        for index in range(self.pc, len(self.program)):
            step = self.program[index]
            if not isinstance(step, m.Connect) or step.name in seen:
                continue
            seen.add(step.name)
            c = self.conns.get(step.name)
            if c is None or (c.index != index and c.state in ENDED):
                out.append((index, step))
        return out

    def match_request(self, req: Request) -> tuple[int | None, MatchResult | None]:
        """The place of the pending ``conn`` line ``req`` matches best (the first of equals),
        else (None, the closest miss, if any)."""
        best: MatchResult | None = None
        chosen: int | None = None
        for index, hit in self.match_requests(req):
            if hit.ok and (chosen is None or hit.score > best.score):
                chosen, best = index, hit
            elif chosen is None and (best is None or hit.score > best.score):
                best = hit
        return chosen, best

    def match_requests(self, req: Request) -> list[tuple[int, MatchResult]]:
        """Every pending ``conn`` line with how ``req`` matches it, in file order (index -1:
        the run cannot take clients at all, with why)."""
        try:
            self._declare_leading()
        except (ScenarioError, TemplateError) as exc:  # an env variable not set...
            where = self.program[self.pc].pos
            return [(-1, MatchResult(False, {}, "$", f"{where}: {exc.message}", 0.0))]
        out = []
        for index, connect in self.pending_connects():
            try:
                hit = match_request(connect, req, self.vars)
            except TemplateError as exc:
                hit = MatchResult(False, {}, "$", f"{connect.pos}: {exc.message}", 0.0)
            out.append((index, hit))
        return out

    def conn_lines(self, index: int) -> Iterator[Flat]:
        """The lines after the ``conn`` line at ``index`` that bear on its connection, up to
        its next ``conn`` line: its message lines, ``unordered`` blocks holding some, and
        the ``var``/``env`` lines between them. Pure: for a lookahead (wsreplay.dispatch)."""
        name = self.program[index].name
        for step in itertools.islice(self.program, index + 1, None):
            if isinstance(step, m.Connect):
                if step.name == name:
                    return
            elif isinstance(step, (m.Var, m.Env)) or any(e.conn == name
                                                          for e in events_of(step)):
                yield step

    def _declare_leading(self) -> None:
        """Take the ``var``, ``env`` and ``set`` lines before the first ``conn`` line now: a
        client is matched against templates using them before the run starts."""
        while self.pc < len(self.program) and isinstance(self.program[self.pc],
                                                         (m.Var, m.Env, m.Setting)):
            self._declare(self.program[self.pc])
            self.pc += 1

    def accept(self, index: int, req: Request, match: MatchResult, now: float) -> Answer:
        """A client matching the ``conn`` line at ``index`` arrived (both from
        :meth:`match_request`): its inbox opens now; the shell answers the handshake with
        the returned :class:`Answer`."""
        connect = self.program[index]
        if self.t0 is None:
            self.start(now - _at(connect, self.timing))
        answer = self.answer(index, req, match)
        self.vars.update(match.captures)
        c = Conn(connect, index=index)
        self.conns[connect.name] = c
        c.fire("open" if answer.status == 101 else "refuse")
        self._arm_beats(c, now)
        return answer

    def answer(self, index: int, req: Request, match: MatchResult) -> Answer:
        """How the ``conn`` line at ``index`` would answer ``req`` (pure: nothing is
        accepted; :meth:`accept` answers the same)."""
        connect = self.program[index]
        scope = {**self.vars, **match.captures}
        status = connect.expect_status or 101
        protocol = answer_protocol(connect, req, scope)
        headers = []
        for name, template in connect.expect_headers:
            try:  # a marker answers its example, or a value fixed per line: the same for
                # every call, so candidates' answers compare (wsreplay.dispatch)
                headers.append((name, render_text(template, scope, rng=random.Random(index))))
            except TemplateError:
                continue  # a #regex with no example says what to accept, not what to answer
        compress = connect.expect_compress if connect.expect_compress is not None \
            else connect.compress
        return Answer(connect.name, status, protocol or None, tuple(headers),
                      bool(compress and req.compress))

    # -- running -------------------------------------------------------------------------

    def poll(self, now: float, budget: int | None = None) -> list[Action]:
        """Advance as far as ``now`` allows; return the actions to perform, in order.

        With ``budget``, stop once the messages to send hold that many bytes, with
        :attr:`wake_at` ``now``: perform these, then poll again. A shell that waits for each
        send to leave so holds at most about ``budget`` bytes of a run's messages, however
        many lines in a row send."""
        if self.side is m.Side.CLIENT:
            self.start(now)  # the mock server's clock starts with its first client
        if not self.done:
            self._beat(now)
        held = counted = 0
        while not self.done and self.pc < len(self.program):
            if self._entered is None:
                self._entered = now
            try:
                step = self.program[self.pc]
                wait = self._run(step, now)
            except _Fail as fail:
                self._finish_failed(fail.failure, now)
                break
            except (TemplateError, ScenarioError, OSError) as exc:
                self._finish_failed(_scenario_failure(self.program[self.pc], exc), now)
                break
            if wait is not None:
                self.wake_at = wait
                break
            self.pc += 1
            self._entered, self._cur = None, {}
            if budget is not None:
                held += sum(len(a.message.data) for a in self._out[counted:]
                            if isinstance(a, Send))
                counted = len(self._out)
                if held >= budget and self.pc < len(self.program):
                    self.wake_at = now  # more to send at once, after these
                    break
        if not self.done and self.pc >= len(self.program):
            self._finish(now)
        if not self.done:
            beat = min((t for c in self.conns.values() if c.state in CAN_SEND
                        for t in c.beats.values()), default=None)
            if beat is not None and (self.wake_at is None or beat < self.wake_at):
                self.wake_at = beat
        out, self._out = self._out, []
        return out

    # -- heartbeats ------------------------------------------------------------------------

    def _arm_beats(self, c: Conn, now: float) -> None:
        """An open connection starts the heartbeats this side sends (``every`` rules): the
        first one period after the opening."""
        if c.state is S.OPEN:
            c.beats = {i: now + rule.every * US for i, rule in enumerate(c.connect.rules)
                       if rule.every is not None and rule.side is self.side}

    def _beat(self, now: float) -> None:
        """Send the heartbeats that are due. Periods are real time, whatever the timing: a
        peer times a silent connection out by its clock. One that fell behind (a long
        stall) is sent once, not once per missed period."""
        for c in self.conns.values():
            if not c.beats or c.state not in CAN_SEND:
                continue
            for i, due in c.beats.items():
                if due > now:
                    continue
                rule = c.connect.rules[i]
                try:
                    msg = self._build(rule.match, rule.pos)
                except (TemplateError, ScenarioError, OSError) as exc:
                    self._finish_failed(Failure("scenario", f"{rule.pos}: cannot send the "
                                                f"heartbeat: {getattr(exc, 'message', exc)}",
                                                conn=c.connect.name), now)
                    return
                self._out.append(Send(c.connect.name, msg))
                period = rule.every * US
                c.beats[i] = due + period if due + period > now else now + period

    def _run(self, step: Flat, now: float) -> float | None:
        """Do ``step``; None when it is done, else the time to look again."""
        if isinstance(step, m.Event):
            if step.side is self.side:
                return self._send(step, now)
            if isinstance(step.payload, m.Silence):
                return self._silence(step, now)
            return self._expect(step, now)
        if isinstance(step, m.Connect):
            return self._open(step, now) if self.side is m.Side.CLIENT else \
                self._await_client(step, now)
        if isinstance(step, m.Unordered):
            return self._group(step, now)
        self._declare(step)
        return None

    def _deadline(self, within: int | None) -> float:
        allowed = within * US if within is not None else self.timeout
        return self._entered + allowed

    def _due(self, at: int | None) -> float | None:
        if not self.timing.recorded or at is None or self.t0 is None:
            return None
        return self.t0 + at * US * self.timing.scale

    # -- declarations ----------------------------------------------------------------------

    def _declare(self, step: m.Var | m.Env | m.Setting) -> None:
        if isinstance(step, m.Setting):
            if step.name == "timeout":
                self.timeout = parse_duration(step.value) * US
            elif step.name == "leftover":
                self.leftover = step.value
            return
        if step.name in self.overrides:
            return  # the command line wins
        self.vars[step.name] = declared_value(step, self.vars, self.env)

    # -- sending ---------------------------------------------------------------------------

    def _send(self, event: m.Event, now: float) -> float | None:
        payload = event.payload
        if isinstance(payload, m.Silence):  # our side keeps quiet: a pause, when pacing
            if not self.timing.recorded:
                return None
            until = self._entered + payload.duration * US * self.timing.scale
            return until if now < until else None
        due = self._due(event.at)
        if due is not None and now < due:
            return due
        c = self.conns[event.conn]
        if isinstance(payload, m.Drop) and c.state is S.CLOSED:
            return None  # after a complete closing handshake, ending the TCP connection is all
            # that is left (a browser tab closing right after its close frame is recorded so)
        if c.state not in CAN_SEND:
            raise _Fail(Failure("scenario", f"cannot send on {event.conn}: the connection is "
                                f"{c.state.value}", step=event, conn=event.conn))
        msg = self._build(payload, event.pos)
        if msg.kind is Kind.CLOSE:
            c.fire("send close")
            c.close_sent = True
        elif msg.kind is Kind.DROP:
            c.fire("send drop")
        self._out.append(Send(event.conn, msg, event))
        self.result.sent += 1
        return None

    def _build(self, payload: m.Payload, pos: m.Pos,
               variables: Mapping[str, Any] | None = None) -> Message:
        scope = self.vars if variables is None else variables
        if isinstance(payload, m.Text):
            bound: dict[str, Any] = {}
            text = render_text(payload.text, scope, bound, self.rng, self.overrides)
            self.vars.update(bound)  # what a capture sent, for later lines and the peer's
            return Message.of_text(text)
        if isinstance(payload, m.Json) and payload.codec != "json":
            bound = {}
            value = payload.value if payload.value is not None else json.loads(payload.source)
            value = render_json_value(value, scope, bound, self.rng, self.overrides)
            self.vars.update(bound)
            return Message.of_binary(encode(payload.codec, value))
        if isinstance(payload, m.Json):
            bound = {}
            text = render_json_source(payload.source, scope, bound, self.rng, self.overrides)
            self.vars.update(bound)
            return Message.of_text(text)
        if isinstance(payload, m.Binary):
            if payload.template is None:
                return Message.of_binary(payload.data)
            bound = {}
            data = render_binary(payload.template, scope, bound, self.rng,
                                 overrides=self.overrides)
            self.vars.update(bound)  # what a capture sent, for later lines and the peer's
            return Message.of_binary(data)
        if isinstance(payload, m.File):
            if self.read_file is None:
                raise OSError(f"cannot read {payload.path}: no file reader")
            return Message.of_binary(self.read_file(payload.path, pos))
        if isinstance(payload, m.Ping):
            return Message.ping(payload.data)
        if isinstance(payload, m.Pong):
            return Message.pong(payload.data)
        if isinstance(payload, m.Close):
            return Message.close(payload.code, payload.reason or "")
        if isinstance(payload, m.Drop):
            return Message.drop()
        raise ScenarioError(f"a {type(payload).__name__.lower()} line cannot be sent",
                            m.NOWHERE)

    # -- connecting ------------------------------------------------------------------------

    def _open(self, connect: m.Connect, now: float) -> float | None:
        c = self.conns.get(connect.name)
        if not self._cur.get("asked"):
            due = self._due(connect.at)
            if due is not None and now < due:
                return due
            if c is not None and c.state not in ENDED | {S.IDLE}:
                self._out.append(Close(connect.name, 1000))  # reused name: end the old one
            c = self.conns[connect.name] = Conn(connect, index=self.pc)
            c.fire("connect")
            self._out.append(Open(connect.name, *self._handshake_request(connect)))
            self._cur["asked"] = True
        if c.handshake is None:
            return self._wait_or_fail(now, connect, "handshake",
                                      f"{connect.name}: no handshake answer")
        hit = match_handshake(connect, c.handshake, self.vars)
        if not hit.ok:
            raise _Fail(Failure("handshake", f"{connect.name}: {hit.reason}", step=connect,
                                conn=connect.name, path=hit.path, reason=hit.reason))
        self.vars.update(hit.captures)
        self.result.matched += 1
        return None

    def _handshake_request(self, connect: m.Connect):
        bound: dict[str, Any] = {}  # a capture in the handshake binds the value it sent

        def render(template: str) -> str:
            return render_text(template, self.vars, bound, self.rng, self.overrides)

        url = render(connect.url)
        if connect.query:
            query = urllib.parse.urlencode([(k, render(v)) for k, v in connect.query])
            url += ("&" if "?" in url else "?") + query
        headers = tuple((k, render(v)) for k, v in connect.headers)
        protocols = tuple(render(p) for p in connect.protocols)
        self.vars.update(bound)
        return url, headers, protocols, connect.compress

    def _await_client(self, connect: m.Connect, now: float) -> float | None:
        c = self.conns.get(connect.name)
        if c is None or c.index != self.pc:
            return self._wait_or_fail(now, connect, "connect",
                                      f"no client connected as {connect.name}")
        self.result.matched += 1
        return None

    def _wait_or_fail(self, now: float, connect: m.Connect, kind: str, what: str) -> float:
        """Until the default deadline: when to poll again; then a ``kind`` failure."""
        deadline = self._deadline(None)
        if now < deadline:
            return deadline
        raise _Fail(Failure(kind, f"{what} within {self.timeout:g}s", step=connect,
                            conn=connect.name, waited=now - self._entered,
                            allowed=self.timeout))

    # -- expecting -------------------------------------------------------------------------

    def reader(self, pos: m.Pos) -> Callable[[str], bytes] | None:
        """The file reader for the line at ``pos`` (None when the engine has none)."""
        if self.read_file is None:
            return None
        return lambda path: self.read_file(path, pos)

    def _match(self, payload: m.Payload, msg: Message, pos: m.Pos = m.NOWHERE) -> MatchResult:
        return match_message(payload, msg, self.vars, self.reader(pos))

    def _expect(self, event: m.Event, now: float) -> float | None:
        c = self.conns[event.conn]
        if c.inbox:
            msg = c.inbox[0]
            hit = self._match(event.payload, msg, event.pos)
            if hit.ok:
                c.inbox.popleft()
                self.vars.update(hit.captures)
                self.result.matched += 1
                return None
            raise _Fail(mismatch_failure(self, event, c, hit, now))
        if c.state in ENDED:
            if isinstance(event.payload, m.Drop) and c.state is S.CLOSED:
                return None  # the closing handshake is complete: the TCP end is all that is left
            raise _Fail(closed_failure(self, event, c, now))
        deadline = self._deadline(event.within)
        if now < deadline:
            return deadline
        raise _Fail(missing_failure(self, event, c, now, deadline - self._entered))

    def _silence(self, event: m.Event, now: float) -> float | None:
        c = self.conns[event.conn]
        until = self._entered + event.payload.duration * US
        if c.inbox:
            msg = c.inbox[0]
            raise _Fail(Failure(
                "silence", f"{event.conn} expected silence, got {msg.short()}", step=event,
                conn=event.conn, received=msg, inbox=tuple(c.inbox)[1:],
                waited=now - self._entered, allowed=until - self._entered))
        return until if now < until else None

    def _group(self, group: m.Unordered, now: float) -> float | None:
        cur = self._cur
        if "pending" not in cur:
            lines = group.steps
            cur["pending"] = [e for e in lines if e.side is not self.side]
            cur["sends"] = [e for e in lines if e.side is self.side]
        wake = None
        while cur["sends"]:
            wake = self._send(cur["sends"][0], now)
            if wake is not None:
                break
            cur["sends"].pop(0)
        pending = cur["pending"]
        for name in dict.fromkeys(e.conn for e in pending):
            self._group_take(self.conns[name], pending, group, now)
        if not pending and not cur["sends"]:
            return None
        deadline = self._deadline(group.within)
        if pending and now >= deadline:
            raise _Fail(missing_failure(self, group, None, now, deadline - self._entered,
                                        missing=tuple(pending)))
        return deadline if wake is None else min(wake, deadline)

    def _group_take(self, c: Conn, pending: list[m.Event], group: m.Unordered,
                    now: float) -> None:
        while c.inbox:
            msg, best = c.inbox[0], None
            lines = [e for e in pending if e.conn == c.connect.name]
            if not lines:
                return
            for line in lines:
                hit = self._match(line.payload, msg, line.pos)
                if hit.ok:
                    pending.remove(line)
                    c.inbox.popleft()
                    self.vars.update(hit.captures)
                    self.result.matched += 1
                    break
                if best is None or hit.score > best[1].score:
                    best = (line, hit)
            else:
                raise _Fail(mismatch_failure(self, best[0], c, best[1], now, group=group))

    # -- rules -----------------------------------------------------------------------------

    def _apply_rules(self, c: Conn, msg: Message) -> bool:
        """Whether a rule of ``c`` takes ``msg`` (answering it when the rule says so)."""
        for rule in c.connect.rules:
            theirs = rule.side is not self.side
            pattern = rule.match if theirs else rule.reply
            if pattern is None or (not theirs and rule.reply is None):
                continue
            try:
                if isinstance(pattern, (m.Ping, m.Pong)) and not pattern.data:
                    # in a rule, a bare ping (pong) stands for any: heartbeats carry stamps
                    kind = Kind.PING if isinstance(pattern, m.Ping) else Kind.PONG
                    hit = MatchResult(msg.kind is kind)
                else:
                    hit = self._match(pattern, msg, rule.pos)
            except (TemplateError, ScenarioError, OSError):
                continue  # e.g. a variable not captured yet: the rule does not apply
            if not hit.ok:
                continue
            if theirs and rule.reply is not None and c.state in CAN_SEND:
                try:
                    reply = self._build(rule.reply, rule.pos, {**self.vars, **hit.captures})
                except (TemplateError, ScenarioError, OSError):
                    return False  # cannot answer: leave the message to the lines
                self._out.append(Send(c.connect.name, reply))
            elif theirs and msg.kind is Kind.PING and c.state in CAN_SEND:
                # an ignored ping is still answered: the protocol requires the pong
                self._out.append(Send(c.connect.name, Message.pong(msg.data)))
            return True
        return False

    # -- ending ----------------------------------------------------------------------------

    def _finish(self, now: float) -> None:
        for name, c in self.conns.items():
            policy = c.connect.leftover or self.leftover
            for msg in c.inbox:
                if c.close_sent and msg.kind in (Kind.CLOSE, Kind.DROP):
                    continue  # the answer to our close frame is not a leftover
                failure = leftover_failure(self, c, msg)
                (self.result.warnings if policy == m.Leftover.WARN.value
                 else self.result.failures).append(failure)
        self._end(now, 1000 if self.result.passed else self.fail_close)

    def _finish_failed(self, failure: Failure, now: float) -> None:
        self.result.failures.append(failure)
        self._end(now, self.fail_close, _short_reason(failure))

    def _end(self, now: float, code: int, reason: str = "") -> None:
        self.done = True
        self.wake_at = None
        self.result.secrets = frozenset(
            value for name, value in self.vars.items()
            if isinstance(value, str) and (name in self._env_names or _SECRET_NAME.match(name)))
        if self.t0 is not None:
            self.result.duration = now - self.result.duration
        for name, c in self.conns.items():
            if c.state in (S.OPEN, S.CLOSE_RECEIVED, S.CONNECTING):
                self._out.append(Close(name, code, reason))
            elif c.state is S.CLOSE_SENT:
                self._out.append(Close(name, None))


_SECRET_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")  # a variable named in capitals: a secret


def declared_value(step: m.Var | m.Env, variables: Mapping[str, Any],
                   env: Mapping[str, str]) -> Any:
    """The value a ``var`` or ``env`` line gives its variable, with ``variables`` known so
    far and ``env`` standing for the environment. Raises :class:`ScenarioError` for an
    ``env`` not set with no default, :class:`TemplateError` for a ``var`` that cannot render."""
    if isinstance(step, m.Var):
        value = step.value if step.value is not None else json.loads(step.source)
        return render_json_value(value, variables)
    if step.name in env:
        return env[step.name]
    if step.default_source is not None:
        return json.loads(step.default_source)
    raise ScenarioError(f"environment variable {step.name} is not set (set it, or pass "
                        f"--var {step.name}=VALUE)", step.pos)


def _at(connect: m.Connect, timing: Timing) -> float:
    return (connect.at or 0) * US * timing.scale if timing.recorded else 0.0


def _short_reason(failure: Failure) -> str:
    """A close reason fits in 123 bytes: say where the run broke."""
    pos = failure.pos
    where = f"line {pos.line}: " if pos and pos.line else ""
    text = f"wsreplay: {where}{failure.kind}"
    return text.encode("utf-8")[:123].decode("utf-8", "ignore")


def _scenario_failure(step: Flat, exc: Exception) -> Failure:
    message = getattr(exc, "message", None) or str(exc)
    target = getattr(exc, "pos", None)
    if target is not None and target.line:  # the error knows its own line
        step = m.Comment(message, pos=target)
    return Failure("scenario", message, step=step)
