"""A fake-clock driver for the pure engine: feed handshakes and messages at given
milliseconds, collect the actions. No sockets, no sleeping."""

from __future__ import annotations

import textwrap

from wsreplay import model as m
from wsreplay.engine import Close, Engine, Open, Send
from wsreplay.messages import Handshake, Message, Request
from wsreplay.parser import parse

C, S = m.Side.CLIENT, m.Side.SERVER


def scenario(text: str, path: str = "t.wsr") -> m.Scenario:
    return parse("wsreplay 1\n" + textwrap.dedent(text).lstrip("\n"), path)


def text(s: str) -> Message:
    return Message.of_text(s)


class Run:
    """One engine run on a fake clock. ``auto_open`` answers every Open with a 101."""

    def __init__(self, source: str, side: m.Side = C, *, auto_open: bool = True, **options):
        self.engine = Engine(scenario(source), side, **options)
        self.now = 0.0
        self.actions: list = []
        self.timed: list = []  # (ms, action)
        self.auto_open = auto_open
        self.poll()

    def poll(self) -> list:
        out = []
        while True:
            batch = self.engine.poll(self.now)
            out += batch
            opens = [a for a in batch if isinstance(a, Open)]
            if not (self.auto_open and opens):
                break
            for action in opens:
                self.engine.opened(action.conn, Handshake(101), self.now)
        self.actions += out
        self.timed += [(round(self.now * 1000, 3), a) for a in out]
        return out

    def at(self, ms: float) -> "Run":
        """Move the clock to ``ms`` milliseconds and poll."""
        self.now = ms / 1000
        self.poll()
        return self

    def recv(self, conn: str, msg: Message | str, ms: float | None = None) -> "Run":
        if ms is not None:
            self.now = ms / 1000
        if isinstance(msg, str):
            msg = text(msg)
        self.engine.receive(conn, msg, self.now)
        self.poll()
        return self

    def open(self, conn: str, hs: Handshake) -> "Run":
        self.engine.opened(conn, hs, self.now)
        self.poll()
        return self

    def connect(self, path: str, query=(), headers=(), protocols=(), ms: float | None = None):
        """(Serve side) a client asks to connect: route and accept it; the Answer."""
        if ms is not None:
            self.now = ms / 1000
        req = Request(path, tuple(query), tuple(headers), tuple(protocols))
        index, hit = self.engine.match_request(req)
        assert index is not None, hit
        answer = self.engine.accept(index, req, hit, self.now)
        self.poll()
        return answer

    # -- what happened -------------------------------------------------------------------

    def sends(self, conn: str | None = None) -> list[Message]:
        return [a.message for a in self.actions
                if isinstance(a, Send) and (conn is None or a.conn == conn)]

    def sent_texts(self, conn: str | None = None) -> list[str]:
        return [msg.text for msg in self.sends(conn) if msg.kind.value == "text"]

    def send_times(self) -> list[tuple[float, str]]:
        """(ms, text or kind) of every Send, in order."""
        return [(ms, a.message.text if a.message.kind.value == "text" else a.message.kind.value)
                for ms, a in self.timed if isinstance(a, Send)]

    def opens(self) -> list[Open]:
        return [a for a in self.actions if isinstance(a, Open)]

    def closes(self) -> list[Close]:
        return [a for a in self.actions if isinstance(a, Close)]

    @property
    def done(self) -> bool:
        return self.engine.done

    @property
    def result(self):
        return self.engine.result

    @property
    def failure(self):
        assert self.engine.result.failures, "the run did not fail"
        return self.engine.result.failures[0]
