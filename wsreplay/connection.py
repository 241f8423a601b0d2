"""A connection's life, as one table: every state and every transition between them
(as h11 keeps its states). The engine fires events; anything not in the table leaves the
state as it is."""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from . import model as m
from .messages import Handshake


class State(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSE_SENT = "close sent"
    CLOSE_RECEIVED = "close received"
    CLOSED = "closed"
    REFUSED = "refused"
    DROPPED = "dropped"


S = State
TRANSITIONS: dict[tuple[State, str], State] = {
    (S.IDLE, "connect"): S.CONNECTING,
    (S.CONNECTING, "open"): S.OPEN,
    (S.CONNECTING, "refuse"): S.REFUSED,
    (S.IDLE, "open"): S.OPEN,  # the mock server accepts a client
    (S.IDLE, "refuse"): S.REFUSED,
    (S.OPEN, "send close"): S.CLOSE_SENT,
    (S.OPEN, "receive close"): S.CLOSE_RECEIVED,
    (S.CLOSE_SENT, "receive close"): S.CLOSED,
    (S.CLOSE_RECEIVED, "send close"): S.CLOSED,
    **{(s, "drop"): S.DROPPED for s in (S.CONNECTING, S.OPEN, S.CLOSE_SENT, S.CLOSE_RECEIVED)},
    **{(s, "send drop"): S.DROPPED for s in (S.OPEN, S.CLOSE_SENT, S.CLOSE_RECEIVED)},
}
CAN_SEND = {S.OPEN, S.CLOSE_RECEIVED}
ENDED = {S.CLOSED, S.REFUSED, S.DROPPED}


@dataclass(slots=True)
class Conn:
    """One connection of the run: its ``conn`` line, state and inbox."""

    connect: m.Connect
    state: State = S.IDLE
    inbox: deque = field(default_factory=deque)
    handshake: Handshake | None = None
    index: int = -1
    close_sent: bool = False
    beats: dict[int, float] = field(default_factory=dict)  # heartbeat rule → when next due

    def fire(self, event: str) -> None:
        self.state = TRANSITIONS.get((self.state, event), self.state)
