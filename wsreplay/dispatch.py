"""Which scenario connection a client is, when its handshake fits several: pure (no sockets,
no clocks), driven by the mock server (``wsreplay.serve``).

A client's handshake may match several pending ``conn`` lines: in runs going on, and in a
fresh run of every scenario served. The shell gives them to :class:`Dispatch` as
:class:`Candidate` s in recorded order (runs going on first, then scenarios in file order,
``conn`` lines in file order). The dispatch then:

1. picks the handshake answer: the best handshake score's (the first of equals); candidates
   that would answer differently are dropped, since the client sees one answer;
2. is fed the client's messages (:meth:`Dispatch.feed`) and matches each, without touching
   any engine, against every candidate's client lines on that connection, in order, with
   a scratch copy of its variables (messages the connection's ``ignore``/``on`` rules take
   are skipped, as the run would); a candidate that misses is dropped, with its line and
   first difference;
3. decides when one candidate is left. It decides sooner, for the best handshake score
   (then recorded order), when waiting cannot tell: every candidate left would have to
   speak first (or has no line left, or cannot be judged: a line using a variable that
   another connection captures); the client sent more than the buffer holds; or the shell
   says the client went quiet (:meth:`Dispatch.expire`: then candidates that need no
   message from the client come first) or closed.

When every candidate misses, :attr:`Dispatch.closest` is the one that came closest: the
client fails alone and no run is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from . import model as m
from .engine import Answer, Engine, declared_value
from .errors import ScenarioError
from .matchers import MatchResult, match_message
from .messages import Kind, Message, Request
from .program import events_of
from .template import TemplateError

MAX_MESSAGES = 64  # buffered before a decision is forced (the first candidate wins)
MAX_BYTES = 1 << 20


@dataclass(frozen=True, eq=False)
class Candidate:
    """The pending ``conn`` line at ``index`` of ``engine``'s program, which the client's
    handshake matched as ``hit``. ``owner`` is the shell's (a run, or a scenario to start)."""

    engine: Engine
    index: int
    hit: MatchResult
    owner: Any = None

    @property
    def connect(self) -> m.Connect:
        return self.engine.program[self.index]

    def __str__(self) -> str:
        """``conn NAME (file:line)``."""
        pos = self.connect.pos
        return f"conn {self.connect.name} ({pos.path}:{pos.line})"


@dataclass(frozen=True)
class Dropped:
    """Why ``candidate`` is not the client's connection: ``why`` in words; for a message
    that missed, the line (``step``), the message (``received``), the first difference
    (``path``, ``reason``), how close it came (``score``) and how many messages matched
    before (``matched``)."""

    candidate: Candidate
    why: str
    step: m.Event | m.Connect | None = None
    received: Message | None = None
    path: str | None = None
    reason: str | None = None
    score: float = 0.0
    matched: int = -1

    def __str__(self) -> str:
        return f"{self.candidate}: {self.why}"


class _Lookahead:
    """One candidate's client lines on its connection, walked with scratch variables."""

    def __init__(self, cand: Candidate, rank: int):
        self.cand, self.rank = cand, rank
        engine = cand.engine
        self.vars: dict[str, Any] = {**engine.vars, **cand.hit.captures}
        self.lines = engine.conn_lines(cand.index)
        self.expect: list[m.Event] = []  # what the next message may be: a line, or a block's
        self.speaks = False  # a line the server sends comes before the next expectation
        self.parked: str | None = None  # why it cannot be judged any further
        self.ended = False  # no line of the connection is left
        self.matched = 0
        self._advance()

    @property
    def waiting(self) -> bool:
        """Whether the run would wait for the client's next message, sending nothing."""
        return bool(self.expect) and not (self.speaks or self.parked)

    def _advance(self) -> None:
        name = self.cand.connect.name
        while not self.expect and not self.parked:
            step = next(self.lines, None)
            if step is None:
                self.ended = True
                return
            if isinstance(step, (m.Var, m.Env)):
                self._declare(step)
                continue
            mine = [e for e in events_of(step) if e.conn == name]
            if any(e.side is m.Side.SERVER and not isinstance(e.payload, m.Silence)
                   for e in mine):
                self.speaks = True
            expect = [e for e in mine if e.side is m.Side.CLIENT]
            if any(isinstance(e.payload, m.Silence) for e in expect):
                self.parked = f"line {step.pos.line} is a silence"
                return
            self.expect = expect

    def _declare(self, step: m.Var | m.Env) -> None:
        engine = self.cand.engine
        if step.name in engine.overrides:
            return
        try:
            self.vars[step.name] = declared_value(step, self.vars, engine.env)
        except ScenarioError:
            self.parked = f"line {step.pos.line}: {step.name} is not set"
        except (TemplateError, ValueError):
            self.parked = f"line {step.pos.line} cannot be read yet"

    def feed(self, msg: Message) -> tuple[m.Event, MatchResult] | None:
        """Take ``msg``; the line it missed and how, or None (taken, or not judged)."""
        if self.parked or self._rule_takes(msg):
            return None
        if self.ended:
            connect = self.cand.connect
            return connect, MatchResult(False, {}, "$", "no line of the connection is left "
                                                        "for it", 0.0)
        best: tuple[m.Event, MatchResult] | None = None
        for line in self.expect:
            try:
                hit = match_message(line.payload, msg, self.vars,
                                    self.cand.engine.reader(line.pos))
            except (TemplateError, ScenarioError, OSError):
                self.parked = f"line {line.pos.line} cannot be matched yet"
                return None
            if hit.ok:
                self.expect.remove(line)
                self.vars.update(hit.captures)
                self.matched += 1
                self.speaks = False
                self._advance()
                return None
            if best is None or hit.score > best[1].score:
                best = (line, hit)
        return best

    def _rule_takes(self, msg: Message) -> bool:
        """Whether a rule of the connection takes ``msg`` (as Engine._apply_rules would)."""
        for rule in self.cand.connect.rules:
            pattern = rule.match if rule.side is m.Side.CLIENT else rule.reply
            if pattern is None:
                continue
            if isinstance(pattern, (m.Ping, m.Pong)) and not pattern.data:
                if msg.kind is (Kind.PING if isinstance(pattern, m.Ping) else Kind.PONG):
                    return True
                continue
            try:
                if match_message(pattern, msg, self.vars,
                                 self.cand.engine.reader(rule.pos)).ok:
                    return True
            except (TemplateError, ScenarioError, OSError):
                continue
        return False


class Dispatch:
    """Deciding which of ``candidates`` (recorded order; at least one) a client is.

    :attr:`answer` is the handshake answer to send. :attr:`chosen` is set once decided
    (then :attr:`why` says how and :attr:`dropped` why every other candidate lost);
    :attr:`closest` is set instead when every candidate missed. Until then, feed the
    client's messages with :meth:`feed` (they are kept in :attr:`buffered`, to be given
    to the chosen run in order), and call :meth:`expire` when the client has been quiet
    long enough, :meth:`feed` with its close (or drop) when it ends.
    """

    def __init__(self, candidates: Sequence[Candidate], req: Request, *,
                 max_messages: int = MAX_MESSAGES, max_bytes: int = MAX_BYTES):
        if not candidates:
            raise ValueError("a dispatch needs a candidate")
        self.max_messages, self.max_bytes = max_messages, max_bytes
        self.buffered: list[Message] = []
        self.size = 0
        self.dropped: list[Dropped] = []
        self.chosen: Candidate | None = None
        self.closest: Dropped | None = None
        self.why = ""
        order = sorted(range(len(candidates)), key=lambda i: (-candidates[i].hit.score, i))
        best = candidates[order[0]]
        self.answer: Answer = best.engine.answer(best.index, req, best.hit)
        self.alive: list[_Lookahead] = []
        for rank, i in enumerate(order):
            cand = candidates[i]
            answer = cand.engine.answer(cand.index, req, cand.hit)
            differs = _answer_difference(self.answer, answer)
            if differs:
                self.dropped.append(Dropped(cand, f"it would answer the handshake with "
                                                  f"{differs}", cand.connect))
            else:
                self.alive.append(_Lookahead(cand, rank))
        self.alive.sort(key=lambda a: a.rank)  # best handshake first, then recorded order
        if self.answer.status != 101:
            self._choose(self.alive[0], "the handshake is refused: no message can tell")
        else:
            self._settle()

    @property
    def done(self) -> bool:
        return self.chosen is not None or self.closest is not None

    def feed(self, msg: Message) -> None:
        """The client's next message (a close or drop too: then a decision is made)."""
        if self.done:
            raise RuntimeError("the dispatch is over")
        self.buffered.append(msg)
        self.size += len(msg.data)
        for ahead in list(self.alive):
            miss = ahead.feed(msg)
            if miss is not None:
                line, hit = miss
                self.alive.remove(ahead)
                where = f"line {line.pos.line}"
                self.dropped.append(Dropped(ahead.cand, f"{where}: {hit.reason}", line, msg,
                                            hit.path, hit.reason, hit.score, ahead.matched))
        if msg.kind in (Kind.CLOSE, Kind.DROP) and self.alive and len(self.alive) > 1:
            return self._choose(self.alive[0], "the client ended the connection first")
        if (len(self.buffered) >= self.max_messages or self.size >= self.max_bytes) \
                and len(self.alive) > 1:
            return self._choose(self.alive[0], f"the client sent {len(self.buffered)} "
                                               "messages without telling")
        self._settle()

    def expire(self) -> None:
        """The client has gone quiet: decide now, for a candidate whose run would speak or
        end (the client is likely waiting for it), else the first."""
        if self.done:
            return
        quiet = [a for a in self.alive if not a.waiting] or self.alive
        self._choose(quiet[0], "the client went quiet")

    def withdraw(self, cand: Candidate, why: str) -> None:
        """``cand`` cannot be taken after all (its run ended, another client took it): the
        next best is chosen (the decision was due), or the dispatch goes on."""
        was_chosen = self.chosen is cand
        self.alive = [a for a in self.alive if a.cand is not cand]
        self.dropped = [d for d in self.dropped if d.candidate is not cand]
        self.dropped.append(Dropped(cand, why, cand.connect))
        if was_chosen:
            self.chosen = None
            self.dropped = [d for d in self.dropped if not d.why.startswith("not chosen")]
            if self.alive:
                return self._choose(self.alive[0], self.why)
        self._settle()

    def _settle(self) -> None:
        if not self.alive:
            tried = [d for d in self.dropped if d.matched >= 0] or self.dropped
            self.closest = max(tried, key=lambda d: (d.matched, d.score))
            return
        if len(self.alive) == 1:
            return self._choose(self.alive[0], "the only one left")
        if not any(a.waiting for a in self.alive):
            self._choose(self.alive[0], "the server would speak first (or no message can "
                                        "tell)")

    def _choose(self, ahead: _Lookahead, why: str) -> None:
        self.chosen, self.why = ahead.cand, why
        for other in self.alive:
            if other is not ahead:
                self.dropped.append(Dropped(other.cand, f"not chosen: {why}; "
                                                        f"{ahead.cand} ranks first",
                                            other.cand.connect))

    def notes(self) -> list[str]:
        """What the decision was, for the run's report and the serve log."""
        if self.chosen is None:
            return []
        out = [f"{self.chosen} chosen among {1 + len(self.dropped)} candidates ({self.why})"]
        return out + [f"dropped {d}" for d in self.dropped]


def _answer_difference(want: Answer, got: Answer) -> str | None:
    if got.status != want.status:
        return f"status {got.status}"
    if got.protocol != want.protocol:
        return f"protocol {got.protocol or 'none'}"
    if got.headers != want.headers:
        return "other headers"
    if got.compress != want.compress:
        return f"compress {'on' if got.compress else 'off'}"
    return None
