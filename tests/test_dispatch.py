"""``wsreplay.dispatch``: choosing the scenario connection a client is, from its handshake and
first messages, with no sockets and no engine touched."""

from __future__ import annotations

import copy

from wsreplay.dispatch import Candidate, Dispatch
from wsreplay.engine import Engine
from wsreplay.messages import Request

from .enginekit import S, scenario, text

TWO = """
conn a ws://h/feed
  ignore > text ping
a > json {"op":"sub","topic":"{{topic = #string}}"}
a < json {"op":"subbed","topic":"{{topic}}"}
a > text {{topic}} please
conn b ws://h/feed
b > json {"op":"sub","topic":"news"}
b > text more news
b < text ok
"""


def candidates(*sources: str, req: Request) -> list[Candidate]:
    out = []
    for i, source in enumerate(sources):
        engine = Engine(scenario(source, f"f{i}.wsr"), S)
        out += [Candidate(engine, index, hit) for index, hit in engine.match_requests(req)
                if hit.ok]
    return out


def names(dispatch: Dispatch) -> str | None:
    return dispatch.chosen and dispatch.chosen.connect.name


FEED = Request("/feed", (), (), ())


def test_content_decides_between_connections_on_one_path_without_touching_engines():
    cands = candidates(TWO, req=FEED)
    before = [(c.engine.pc, dict(c.engine.vars), copy.copy(c.engine.conns)) for c in cands]
    dispatch = Dispatch(cands, FEED)
    assert [c.connect.name for c in cands] == ["a", "b"] and not dispatch.done
    dispatch.feed(text("ping"))  # a's ignore rule takes it; b has no line for it
    assert [d.candidate.connect.name for d in dispatch.dropped] == ["b"]
    assert dispatch.dropped[0].why.startswith("line 8: not JSON")
    assert names(dispatch) == "a" and "only one left" in dispatch.why
    assert [(c.engine.pc, dict(c.engine.vars), c.engine.conns) for c in cands] == before


def test_captures_are_scratch_and_the_first_difference_is_named():
    cands = candidates(TWO, req=FEED)
    dispatch = Dispatch(cands, FEED)
    dispatch.feed(text('{"op":"sub","topic":"news"}'))  # both take it
    assert not dispatch.done and dispatch.buffered == [text('{"op":"sub","topic":"news"}')]
    # a speaks next (its subbed line), b waits for "more news": the client tells
    dispatch.feed(text("more news"))
    assert names(dispatch) == "b"
    (dropped,) = dispatch.dropped
    assert str(dropped).startswith("conn a (f0.wsr:2): line 6: ")
    assert dropped.step.pos.line == 6 and dropped.received == text("more news")
    assert "topic" not in cands[0].engine.vars


def test_every_candidate_missing_names_the_closest():
    dispatch = Dispatch(candidates(TWO, req=FEED), FEED)
    dispatch.feed(text('{"op":"sub","topic":"news"}'))
    dispatch.feed(text("nope"))
    assert dispatch.chosen is None and dispatch.closest is not None
    assert dispatch.closest.matched == 1  # both got as far; the closer score wins
    assert len(dispatch.dropped) == 2


def test_server_speaking_first_decides_at_once_by_handshake_score_then_order():
    greet = """
    conn a ws://h/chat?user=alice
    a < text hello alice
    conn b ws://h/chat?user=bob
    b < text hello bob
    """
    bob = Request("/chat", (("user", "bob"),), (), ())
    dispatch = Dispatch(candidates(greet, req=bob), bob)
    assert names(dispatch) == "b"  # user=alice is only an example: a lower score
    anyone = Request("/chat", (("user", "carol"),), (), ())
    assert names(Dispatch(candidates(greet, req=anyone), anyone)) == "a"


def test_quiet_client_prefers_a_candidate_that_speaks():
    mixed = """
    conn a ws://h/x
    a > text hi
    conn b ws://h/x
    b < text welcome
    b > text hi
    """
    req = Request("/x", (), (), ())
    dispatch = Dispatch(candidates(mixed, req=req), req)
    assert not dispatch.done  # a needs the client to talk, b would speak: wait a little
    dispatch.expire()
    assert names(dispatch) == "b" and "quiet" in dispatch.why
    dispatch = Dispatch(candidates(mixed, req=req), req)
    dispatch.feed(text("hi"))  # both take it (b after its welcome, as its run would)
    assert names(dispatch) == "a"  # and have no line left: no message can tell


def test_different_answers_leave_only_the_best_and_a_refusal_decides_at_once():
    two = """
    conn a ws://h/x?v=1
      expect status 403
    conn b ws://h/x?v=2
      protocol p
      expect protocol p
    b > text hi
    """
    req = Request("/x", (("v", "2"),), (), ("p",))
    dispatch = Dispatch(candidates(two, req=req), req)
    assert names(dispatch) == "b" and dispatch.answer.protocol == "p"
    assert "answer the handshake with status 403" in dispatch.dropped[0].why
    v1 = Request("/x", (("v", "1"),), (), ())
    dispatch = Dispatch(candidates(two, req=v1), v1)
    assert names(dispatch) == "a" and dispatch.answer.status == 403


def test_a_capped_buffer_commits_to_the_first():
    same = """
    conn a ws://h/x
    a > text {{#any}}
    a > text {{#any}}
    a > text {{#any}}
    conn b ws://h/x
    b > text {{#any}}
    b > text {{#any}}
    b > text {{#any}}
    """
    req = Request("/x", (), (), ())
    dispatch = Dispatch(candidates(same, req=req), req, max_messages=2)
    dispatch.feed(text("1"))
    assert not dispatch.done
    dispatch.feed(text("2"))
    assert names(dispatch) == "a" and "2 messages" in dispatch.why


def test_a_line_using_a_variable_not_captured_yet_cannot_tell():
    later = """
    conn a ws://h/x
    conn b ws://h/y
    b > text {{secret = #string}}
    a > text {{secret}}
    """
    other = """
    conn c ws://h/x
    c > text hello
    """
    req = Request("/x", (), (), ())
    dispatch = Dispatch(candidates(later, other, req=req), req)
    assert not dispatch.done
    dispatch.feed(text("bye"))  # c misses; a cannot be judged (secret unknown): a stays
    assert names(dispatch) == "a"
    assert "line 3: texts differ" in str(dispatch.dropped[0])
