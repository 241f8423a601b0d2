"""The pure engine, on a fake clock in milliseconds: every rule of the language."""

from __future__ import annotations

import json
import random
import uuid

import pytest

from wsreplay.engine import Close, Engine, Open, Send
from wsreplay.errors import ScenarioError
from wsreplay.messages import Handshake, Kind, Message
from wsreplay.program import RECORDED, Timing

from .enginekit import C, S, Run, scenario, text

CHAT = """
@0.000 conn alice ws://127.0.0.1:8765/chat?user=alice
@0.004 alice < json {"type":"welcome","id":"{{alice_id = #string}}"}
@0.010 conn bob ws://127.0.0.1:8765/chat?user=bob
@0.013 bob < json {"type":"welcome","id":"#string"}
@0.120 alice > json {"type":"say","text":"hi bob"}
@0.122 bob < json {"type":"said","from":"{{alice_id}}","text":"hi bob"}
@0.500 alice > close 1000 bye
@0.501 alice < close 1000 bye
"""


def test_the_chat_example_passes_and_captures_cross_connections():
    run = Run(CHAT)
    assert [o.url for o in run.opens()] == ["ws://127.0.0.1:8765/chat?user=alice"]
    run.recv("alice", '{"type":"welcome","id":"u-1"}', 1)
    assert [o.conn for o in run.opens()] == ["alice", "bob"]
    run.recv("bob", '{"id":"u-2","type":"welcome"}', 2)
    assert run.sent_texts("alice") == ['{"type":"say","text":"hi bob"}']
    run.recv("bob", '{"type":"said","from":"u-1","text":"hi bob"}', 3)
    assert run.sends("alice")[-1] == Message.close(1000, "bye")
    run.recv("alice", Message.close(1000, "bye"), 4)
    assert run.done and run.result.passed, run.result.failures
    assert run.result.sent == 2 and run.result.matched == 6
    # bob is still open at the end: closed politely; alice's handshake is complete
    assert run.closes() == [Close("bob", 1000, "")]


def test_a_capture_that_differs_names_the_variable_and_path():
    run = Run(CHAT)
    run.recv("alice", '{"type":"welcome","id":"u-1"}', 1)
    run.recv("bob", '{"type":"welcome","id":"u-2"}', 2)
    run.recv("bob", '{"type":"said","from":"u-9","text":"hi bob"}', 3)
    f = run.failure
    assert f.kind == "mismatch" and f.path == "$.from"
    assert '{{alice_id}} = "u-1"' in f.reason and '"u-9"' in f.reason
    assert f.step.pos.line == 7 and f.conn == "bob"
    assert run.closes() == [Close("alice", 1000, "wsreplay: line 7: mismatch"),
                            Close("bob", 1000, "wsreplay: line 7: mismatch")]


def test_causality_a_send_waits_for_every_earlier_expectation_on_any_connection():
    run = Run("""
        conn a ws://h/a
        conn b ws://h/b
        a < text ping
        b > text pong
    """)
    assert run.sends() == []
    run.recv("b", "unrelated", 5)  # bob's inbox does not unblock alice's line
    assert run.sends() == []
    run.recv("a", "ping", 7)
    assert run.send_times() == [(7, "pong")]


def test_the_inbox_buffers_from_the_moment_the_connection_opens():
    run = Run("""
        conn a ws://h/a
        a > text first
        a < text one
        a < text two
    """)
    run.recv("a", "one", 1).recv("a", "two", 1)
    assert run.done and run.result.passed


def test_recorded_timing_sends_at_each_offset_never_before_predecessors():
    run = Run("""
        @0.000 conn a ws://h/a
        @0.100 a > text one
        @0.150 a < text reply
        @0.200 a > text two
        @0.300 a > text three
    """, timing=RECORDED)
    assert run.sends() == [] and run.engine.wake_at == pytest.approx(0.1)
    run.at(100)
    assert run.send_times() == [(100, "one")]
    run.at(250)  # two is due at 200 but waits for the reply
    assert len(run.sends()) == 1
    run.recv("a", "reply", 260)
    assert run.send_times()[1] == (260, "two")
    assert run.engine.wake_at == pytest.approx(0.3)
    run.at(300)
    assert run.send_times()[2] == (300, "three") and run.done


def test_scaled_timing_halves_the_gaps_and_fast_ignores_them():
    source = """
        @0.000 conn a ws://h/a
        @1.000 a > text one
        @3.000 a > text two
    """
    half = Run(source, timing=Timing.parse("0.5"))
    half.at(500).at(1499).at(1500)
    assert half.send_times() == [(500, "one"), (1500, "two")]
    fast = Run(source)
    assert fast.send_times() == [(0, "one"), (0, "two")] and fast.done


def test_a_line_without_time_goes_right_after_the_line_before():
    run = Run("""
        @0.000 conn a ws://h/a
        @0.100 a > text one
        a > text inserted
        @0.200 a > text two
    """, timing=RECORDED)
    run.at(100)
    assert run.send_times() == [(100, "one"), (100, "inserted")]


def test_missing_reply_fails_at_the_default_deadline_of_five_seconds():
    run = Run("""
        conn a ws://h/a
        a < text hello
    """)
    assert run.engine.wake_at == pytest.approx(5.0)
    run.at(4999)
    assert not run.done
    run.at(5000)
    f = run.failure
    assert f.kind == "missing" and f.allowed == pytest.approx(5.0)
    assert f.waited == pytest.approx(5.0) and "nothing arrived within 5s" in f.summary


def test_within_and_set_timeout_set_the_deadline_from_the_line_on():
    run = Run("""
        conn a ws://h/a
        a < within 200ms text one
        set timeout 1s
        a < text two
    """)
    assert run.engine.wake_at == pytest.approx(0.2)
    run.recv("a", "one", 150)
    assert run.engine.wake_at == pytest.approx(1.15)
    run.at(1150)
    assert run.failure.kind == "missing" and run.failure.step.pos.line == 5


def test_a_reordered_reply_is_reported_as_such():
    run = Run("""
        conn a ws://h/a
        a > text go
        a < text one
        a < text two
    """)
    run.recv("a", "two", 1).recv("a", "one", 1)
    f = run.failure
    assert f.kind == "reordered" and f.later.pos.line == 5
    assert f.received == text("two") and f.inbox == ()


def test_an_extra_reply_before_the_expected_one_is_reported():
    run = Run("""
        conn a ws://h/a
        a < text one
    """, auto_open=False)
    run.engine.opened("a", Handshake(101), 0)
    run.engine.receive("a", text("surprise"), 0)
    run.engine.receive("a", text("one"), 0)
    run.poll()
    f = run.failure
    assert f.kind == "extra" and "message 2 in the inbox" in f.summary
    assert f.received == text("surprise") and f.inbox == (text("one"),)


def test_an_extra_reply_at_the_end_is_a_leftover_and_warn_makes_it_a_warning():
    source = """
        {setting}
        conn a ws://h/a
        a < text one
    """
    run = Run(source.format(setting=""), auto_open=False)
    run.engine.opened("a", Handshake(101), 0)
    run.engine.receive("a", text("one"), 0)
    run.engine.receive("a", text("two"), 0)
    run.poll()
    assert not run.result.passed and run.failure.kind == "leftover"
    assert run.failure.received == text("two")
    warn = Run(source.format(setting="set leftover warn"), auto_open=False)
    warn.engine.opened("a", Handshake(101), 0)
    warn.engine.receive("a", text("one"), 0)
    warn.engine.receive("a", text("two"), 0)
    warn.poll()
    assert warn.result.passed and [w.kind for w in warn.result.warnings] == ["leftover"]


def test_a_connections_leftover_policy_wins_over_the_setting():
    run = Run("""
        set leftover warn
        conn a ws://h/a
          leftover fail
        a < text one
    """, auto_open=False)
    run.engine.opened("a", Handshake(101), 0)
    run.engine.receive("a", text("one"), 0)
    run.engine.receive("a", text("two"), 0)
    run.poll()
    assert not run.result.passed


def test_unordered_lines_are_met_in_any_order_by_one_deadline():
    source = """
        conn a ws://h/a
        conn b ws://h/b
        unordered within 1s
          a < text x
          a < text y
          b < json {"n":"{{n = #number}}"}
        end
        a > text n={{n}}
    """
    run = Run(source)
    run.recv("b", '{"n":3}', 10).recv("a", "y", 20)
    assert run.sends() == []
    run.recv("a", "x", 30)
    assert run.sent_texts() == ["n=3"] and run.result.passed
    late = Run(source)
    late.recv("a", "y", 10).at(1000)
    f = late.failure
    assert f.kind == "missing" and [e.pos.line for e in f.missing] == [5, 7]


def test_a_message_matching_no_line_of_an_unordered_group_fails():
    run = Run("""
        conn a ws://h/a
        unordered
          a < text x
          a < text y
        end
    """)
    run.recv("a", "z", 5)
    assert run.failure.kind == "mismatch" and run.failure.received == text("z")


def test_silence_passes_when_nothing_arrives_and_fails_on_the_first_message():
    source = """
        conn a ws://h/a
        a < silence 500ms
        a > text after
    """
    quiet = Run(source)
    quiet.at(499)
    assert quiet.sends() == []
    quiet.at(500)
    assert quiet.send_times() == [(500, "after")] and quiet.result.passed
    loud = Run(source)
    loud.recv("a", "noise", 200)
    assert loud.failure.kind == "silence" and loud.failure.received == text("noise")
    assert loud.sends() == []


def test_silence_ignores_what_the_ignore_rules_take():
    run = Run("""
        conn a ws://h/a
          ignore < json subset {"type":"heartbeat"}
        a < silence 100ms
    """)
    run.recv("a", '{"type":"heartbeat","n":1}', 50).at(100)
    assert run.done and run.result.passed


def test_ignore_rules_take_messages_as_they_arrive_and_an_ignored_ping_is_ponged():
    run = Run("""
        conn a ws://h/a
          ignore < ping
        a < text one
    """)
    run.recv("a", Message.ping(b"hb"), 1)
    assert run.sends() == [Message.pong(b"hb")]
    run.recv("a", "one", 2)
    assert run.result.passed


def test_auto_replies_answer_with_the_rule_captures_and_are_not_leftovers():
    run = Run("""
        conn a ws://h/a
          on < json {"op":"ping","id":"{{pid = #number}}"}
          reply > json {"op":"pong","id":"{{pid}}"}
        a > text hello
        a < text world
    """)
    run.recv("a", '{"op":"ping","id":41}', 1)
    assert run.sent_texts() == ["hello", '{"op":"pong","id":41}']
    run.recv("a", "world", 2)
    assert run.result.passed and "pid" not in run.engine.vars


def test_serving_a_rule_whose_reply_is_the_clients_drops_those_replies():
    run = Run("""
        conn a ws://h/a
          on < text ping
          reply > text pong
        a > text hello
    """, S)
    run.connect("/a")
    run.recv("a", "pong", 1)  # the client's automatic answer: not the expected line
    assert not run.done
    run.recv("a", "hello", 2)
    assert run.result.passed


HEARTBEAT = """
    conn a ws://h/socket.io/
      on < text 2
      reply > text 3
      every 100ms < text 2
    a > text 40
    a < text 40{"sid":"x"}
    a > text 42["bye"]
    a < silence 350ms
    a > close 1000
    a < close 1000
"""


def test_serving_sends_the_heartbeat_on_its_period_and_drops_the_clients_answers():
    run = Run(HEARTBEAT, S)
    run.connect("/socket.io/")
    assert run.engine.wake_at == pytest.approx(0.1)
    run.at(50)
    assert run.sends() == []
    run.recv("a", "40", 60)
    assert run.sent_texts() == ['40{"sid":"x"}']
    run.at(100)
    assert run.sent_texts()[-1] == "2"
    run.recv("a", "3", 101)  # the client's answer to it: dropped by the rule, no mismatch
    run.recv("a", '42["bye"]', 120)
    run.at(200).at(260).at(300).at(400)
    # real time, one period apart; silence on the served side is a pause in recorded timing
    # only, so the run has gone on to wait for the client's close frame meanwhile
    beats = [ms for ms, act in run.timed if isinstance(act, Send) and act.message == text("2")]
    assert beats == [100, 200, 300, 400], run.timed
    run.recv("a", Message.close(1000, ""), 480)
    assert run.done and run.result.passed, run.result.failures


def test_replaying_answers_the_servers_heartbeats_and_ignores_them_anywhere():
    run = Run(HEARTBEAT, C)
    assert run.sent_texts() == ["40"]
    run.recv("a", "2", 30)  # a heartbeat before the expected line: answered, not consumed
    assert run.sent_texts() == ["40", "3"]
    run.recv("a", '40{"sid":"x"}', 40)
    run.recv("a", "2", 200)  # and during the silence
    run.at(400)
    assert run.sent_texts() == ["40", "3", '42["bye"]', "3"]
    run.recv("a", Message.close(1000, ""), 420)
    assert run.done and run.result.passed, run.result.failures
    assert all(not (isinstance(a, Send) and a.message == text("2")) for a in run.actions)


def test_a_client_heartbeat_is_sent_when_replaying_and_ignored_when_serving():
    source = """
        conn a ws://h/a
          every 100ms > json {"type":"ping"}
        a > text hi
        a < text ho
        a < silence 250ms
    """
    replay = Run(source, C)
    replay.recv("a", "ho", 10).at(100).at(200).at(260)
    assert replay.sent_texts() == ["hi", '{"type":"ping"}', '{"type":"ping"}']
    assert replay.done and replay.result.passed
    serve = Run(source, S)
    serve.connect("/a")
    serve.recv("a", '{"type":"ping"}', 5).recv("a", "hi", 6)
    assert serve.sent_texts() == ["ho"]
    serve.at(300)
    assert serve.done and serve.result.passed, serve.result.failures
    assert serve.sent_texts() == ["ho"]  # the server side sends no client heartbeat


def test_heartbeats_stop_with_the_connection_and_a_stall_sends_one_not_many():
    run = Run("""
        conn a ws://h/a
          every 10ms > ping hb
        a < close 1000
    """, C)
    run.at(5).at(10).at(1000)
    pings = [a for a in run.actions if isinstance(a, Send) and a.message.kind is Kind.PING]
    assert len(pings) == 2
    run.recv("a", Message.close(1000, ""), 1001)
    run.at(1100)
    assert [a for a in run.actions if isinstance(a, Send) and a.message.kind is Kind.PING] == pings


def test_a_regex_heartbeat_cannot_be_sent():
    with pytest.raises(ScenarioError, match="regex heartbeat only matches"):
        Engine(scenario("""
            conn a ws://h/a
              every 1s > regex p.*
        """), C)
    Engine(scenario("""
        conn a ws://h/a
          every 1s > regex p.*
    """), S)  # serving: it only matches the client's


def test_close_codes_and_reasons_are_checked():
    source = """
        conn a ws://h/a
        a > text bye
        a < close 1001{reason}
    """
    assert Run(source.format(reason="")).recv("a", Message.close(1001, "x"), 1).result.passed
    bad = Run(source.format(reason=" gone")).recv("a", Message.close(1001, "went"), 1)
    assert bad.failure.kind == "mismatch" and "close reason 'gone'" in bad.failure.reason
    code = Run(source.format(reason="")).recv("a", Message.close(1011, ""), 1)
    assert "expected close code 1001, got 1011" in code.failure.reason


def test_no_close_code_matches_a_close_without_status():
    run = Run("""
        conn a ws://h/a
        a < close
    """).recv("a", Message.close(1005), 1)
    assert run.result.passed


def test_our_close_frame_then_the_peers_close_needs_no_extra_action():
    run = Run("""
        conn a ws://h/a
        a > close 1000
    """, auto_open=True)
    assert run.sends() == [Message.close(1000, "")]
    assert run.done and run.closes() == [Close("a", None)]


def test_a_connection_that_ends_while_a_line_waits_fails_at_once():
    run = Run("""
        conn a ws://h/a
        a > text hi
        a < text there
    """)
    run.recv("a", Message.drop("reset"), 3)
    f = run.failure
    assert f.kind == "mismatch" and f.received.kind is Kind.DROP
    assert "expected a text message, got a drop" in f.reason


def test_expecting_a_drop_passes_when_the_connection_dies():
    run = Run("""
        conn a ws://h/a
        a < drop
        a > text never
    """)
    run.recv("a", Message.drop(), 2)
    assert run.failure.kind == "scenario" and "connection is dropped" in run.failure.summary


def test_a_refused_upgrade_is_an_expected_outcome():
    run = Run("""
        conn a ws://h/a
          expect status 401
        conn b ws://h/b
    """, auto_open=False)
    run.open("a", Handshake(401))
    assert [o.conn for o in run.opens()] == ["a", "b"]
    run.open("b", Handshake(101))
    assert run.result.passed and run.closes() == [Close("b", 1000, "")]


def test_an_unexpected_refusal_or_protocol_fails_the_handshake():
    source = """
        conn a ws://h/a
          protocol v2 v1
          expect protocol v2
          expect header X-Region: {{region = #regex [a-z]+}}
        a > text {{region}}
    """
    refused = Run(source, auto_open=False).open("a", Handshake(403))
    assert refused.failure.kind == "handshake" and "expected status 101, got 403" in \
        refused.failure.reason
    wrong = Run(source, auto_open=False).open("a", Handshake(101, "v1"))
    assert "expected protocol v2, got v1" in wrong.failure.reason
    good = Run(source, auto_open=False).open("a", Handshake(101, "v2", (("x-region", "eu"),)))
    assert good.sent_texts() == ["eu"] and good.result.passed
    assert good.opens()[0].protocols == ("v2", "v1")


def test_no_answer_to_a_handshake_fails_at_the_deadline():
    run = Run("""
        conn a ws://h/a
    """, auto_open=False)
    run.at(5000)
    assert run.failure.kind == "handshake" and "no handshake answer" in run.failure.summary


def test_urls_query_and_headers_are_rendered():
    run = Run("""
        var room = "lob by"
        env TOKEN
        conn a ws://h/chat/{{room}}?x=1
          query token = {{TOKEN}}
          header Authorization: Bearer {{TOKEN}}
    """, env={"TOKEN": "s3cr&t"})
    o = run.opens()[0]
    assert o.url == "ws://h/chat/lob by?x=1&token=s3cr%26t"
    assert o.headers == (("Authorization", "Bearer s3cr&t"),)


def test_variables_command_line_wins_over_environment_over_file():
    source = """
        var a = 1
        env B = "file"
        env D
        conn c ws://h/{{a}}/{{B}}/{{D}}
    """
    run = Run(source, variables={"a": 7}, env={"B": "env", "D": "d"})
    assert run.opens()[0].url == "ws://h/7/env/d"
    run2 = Run(source, env={"D": "d"})
    assert run2.opens()[0].url == "ws://h/1/file/d"
    unset = Run(source)
    assert unset.failure.kind == "scenario" and "D is not set" in unset.failure.summary


def test_json_substitution_keeps_types():
    run = Run("""
        var n = 3
        var tags = ["a","b"]
        conn c ws://h/
        c > json {"count": "{{n}}", "tags": "{{tags}}", "label": "n={{n}}", "lit": "##x"}
    """)
    assert run.sent_texts() == ['{"count": 3, "tags": ["a","b"], "label": "n=3", "lit": "#x"}']


def test_json_without_placeholders_is_sent_byte_for_byte():
    run = Run("""
        conn c ws://h/
        c > json {"b":1,   "a":[1,2]}
    """)
    assert run.sent_texts() == ['{"b":1,   "a":[1,2]}']


@pytest.mark.parametrize("line,why", [
    ("c > regex ^a$", "a regex line only matches"),
    ("c > text id={{#regex [0-9]+}}", "cannot be sent without an example"),
    ("c > text id={{#number like ten}}", "does not accept its example"),
    ('c > json {"n":"#number like \\"ten\\""}', "does not accept its example"),
    ("c > text {{#array}}", "cannot be written in text"),
])
def test_a_line_that_cannot_be_sent_is_refused_before_the_run(line, why):
    with pytest.raises(ScenarioError) as err:
        Engine(scenario(f"conn c ws://h/\n{line}\n"), C)
    assert err.value.pos.line == 3
    assert err.value.message.startswith("cannot replay: ") and why in err.value.message


def test_markers_and_captures_on_sent_lines_send_values_and_bind_them():
    run = Run("""
        conn c ws://h/
        c > json {"id":"{{id = #uuid}}","n":"#number","s":"#string like abc","gone":"#absent"}
        c < json {"echo":"{{id}}"}
        c > text n={{k = #number like 7}} again={{k}} {{#boolean}}
    """, rng=random.Random(1))
    sent = json.loads(run.sent_texts()[0])
    assert set(sent) == {"id", "n", "s"} and sent["s"] == "abc"
    assert uuid.UUID(sent["id"]).version == 4 and isinstance(sent["n"], int)
    run.recv("c", json.dumps({"echo": sent["id"]}))
    assert run.sent_texts()[1] == "n=7 again=7 true"
    assert run.engine.vars["k"] == 7 and run.result.passed


def test_a_capture_on_a_sent_line_takes_the_command_lines_value():
    run = Run("""
        conn c ws://h/
        c > json {"sid":"{{sid = #string}}"}
    """, variables={"sid": "fixed"})
    assert run.sent_texts() == ['{"sid":"fixed"}']


def test_a_repeat_sends_a_fresh_value_each_time():
    run = Run("""
        conn c ws://h/
        repeat 3
          c > text {{#uuid}}
        end
    """)
    assert len(set(run.sent_texts())) == 3


def test_markers_on_the_other_sides_lines_are_sent_when_serving():
    source = """
        conn c ws://h/
        c < json {"id":"{{id = #string like abc}}"}
    """
    Engine(scenario(source), S)
    Engine(scenario(source), C)


def test_repeat_runs_its_lines_n_times():
    run = Run("""
        conn c ws://h/
        repeat 3
          c > text ping
          c < text pong
        end
    """)
    for i in range(3):
        assert len(run.sends()) == i + 1
        run.recv("c", "pong", i)
    assert run.result.passed and run.result.sent == 3


def test_file_payloads_come_through_the_reader_with_the_line():
    seen = []

    def read(path, pos):
        seen.append((path, pos.line))
        return b"\x00\x01"

    run = Run("""
        conn c ws://h/
        c > file frames/a.bin
        c < file frames/a.bin
    """, read_file=read)
    assert run.sends() == [Message.of_binary(b"\x00\x01")]
    run.recv("c", Message.of_binary(b"\x00\x01"), 1)
    assert run.result.passed and seen == [("frames/a.bin", 3), ("frames/a.bin", 4)]


def test_text_never_matches_binary():
    run = Run("""
        conn c ws://h/
        c < hex 6869
    """).recv("c", "hi", 1)
    assert "expected a binary message, got a text message" in run.failure.reason


# --- serving: the same engine, the other side -------------------------------------------

RPC = """
conn rpc ws://h/rpc?v=1
  protocol jsonrpc
  expect protocol jsonrpc
  expect header X-Server: mock
rpc > json {"jsonrpc":"2.0","id":"{{id = #number}}","method":"add","params":[1,2]}
@0.050 rpc < json {"jsonrpc":"2.0","id":"{{id}}","result":3}
rpc > close 1000
rpc < close 1000
"""


def test_serving_routes_answers_the_handshake_and_echoes_captured_ids():
    run = Run(RPC, S)
    answer = run.connect("/rpc", query=[("v", "1")], protocols=["jsonrpc"], ms=10)
    assert (answer.status, answer.protocol, answer.headers) == (101, "jsonrpc",
                                                                (("X-Server", "mock"),))
    run.recv("rpc", '{"method":"add","params":[1,2],"id":77,"jsonrpc":"2.0"}', 11)
    assert run.sent_texts() == ['{"jsonrpc":"2.0","id":77,"result":3}']
    run.recv("rpc", Message.close(1000), 12)
    assert run.sends()[-1] == Message.close(1000, "") and run.result.passed


def test_serving_recorded_timing_counts_from_the_clients_arrival():
    run = Run(RPC, S, timing=RECORDED)
    run.connect("/rpc", query=[("v", "1")], protocols=["jsonrpc"], ms=1000)
    run.recv("rpc", '{"jsonrpc":"2.0","id":1,"method":"add","params":[1,2]}', 1010)
    assert run.sends() == [] and run.engine.wake_at == pytest.approx(1.05)
    run.at(1050)
    assert len(run.sends()) == 1


def test_serving_a_deviating_client_fails_and_closes_1008():
    run = Run(RPC, S, fail_close=1008)
    run.connect("/rpc", query=[("v", "1")], protocols=["jsonrpc"])
    run.recv("rpc", '{"jsonrpc":"2.0","id":1,"method":"sub","params":[1,2]}', 1)
    assert run.failure.path == "$.method"
    assert run.closes() == [Close("rpc", 1008, "wsreplay: line 6: mismatch")]


def test_request_routing_checks_path_query_headers_and_offered_protocol():
    engine = Engine(scenario(RPC), S)
    from wsreplay.messages import Request

    index, hit = engine.match_request(Request("/other", (("v", "1"),), (), ("jsonrpc",)))
    assert index is None and "path" in hit.reason
    index, other = engine.match_request(Request("/rpc", (("v", "2"),), (), ("jsonrpc",)))
    assert index == 0 and other.ok  # a literal query value in the URL is an example
    assert other.score < engine.match_request(Request("/rpc", (("v", "1"),), (),
                                                      ("jsonrpc",)))[1].score
    pinned = Engine(scenario(RPC.replace("?v=1", "\n  query v = 1")), S)
    index, hit = pinned.match_request(Request("/rpc", (("v", "2"),), (), ("jsonrpc",)))
    assert index is None and "query v: expected '1', got '2'" in hit.reason
    index, hit = engine.match_request(Request("/rpc", (("v", "1"),), (), ()))
    assert index is None and "did not offer subprotocol jsonrpc" in hit.reason
    index, hit = engine.match_request(Request("/rpc", (("v", "1"), ("x", "y")), (),
                                              ("jsonrpc",)))
    assert index == 0 and hit.ok


def test_serving_waits_for_every_connection_of_a_scenario():
    run = Run("""
        conn a ws://h/a
        conn b ws://h/b
        a > text hi
        b < text hi from a
    """, S)
    run.connect("/a")
    run.recv("a", "hi", 1)
    assert run.sends() == [] and [c.name for _, c in run.engine.pending_connects()] == ["b"]
    run.connect("/b", ms=2)
    assert run.sent_texts("b") == ["hi from a"] and run.result.passed


def test_serving_fails_when_a_client_never_connects():
    run = Run("""
        conn a ws://h/a
        conn b ws://h/b
    """, S)
    run.connect("/a")
    run.at(5000)
    assert run.failure.kind == "connect" and "no client connected as b" in run.failure.summary


def test_serving_a_refused_upgrade_answers_the_recorded_status():
    run = Run("""
        conn a ws://h/a
          expect status 401
    """, S)
    answer = run.connect("/a")
    assert answer.status == 401 and run.result.passed and run.closes() == []


def test_abort_fails_the_run_and_closes():
    run = Run("""
        conn a ws://h/a
        a < text x
    """)
    run.engine.abort("server stopping", 0.5)
    assert run.engine.done and run.engine.result.failures[0].summary == "server stopping"
    assert isinstance(run.engine.poll(0.6), list)


def test_events_after_close_sent_and_sends_on_an_unopened_connection():
    run = Run("""
        conn a ws://h/a
        a > close 1000
        a > text too late
    """)
    assert run.failure.kind == "scenario" and "close sent" in run.failure.summary


def test_actions_are_plain_values():
    run = Run("""
        conn a ws://h/a
        a > ping 01
    """)
    assert isinstance(run.actions[0], Open) and isinstance(run.actions[1], Send)
    assert run.actions[1].message == Message.ping(b"01")


def test_serving_routes_by_headers_when_paths_are_equal():
    run = Run("""
        conn a ws://h/chat
          header X-User: alice
        conn b ws://h/chat
          header X-User: bob
        b < text for bob
        a < text for alice
    """, S)
    run.connect("/chat", headers=[("x-user", "bob")])
    assert run.sends() == []  # bob came first: routed to b, the run still waits for a
    run.connect("/chat", headers=[("User-Agent", "curl")])  # no header matches: first line
    assert run.sent_texts("b") == ["for bob"] and run.sent_texts("a") == ["for alice"]


def test_a_silence_on_the_side_being_played_is_a_pause_in_recorded_timing():
    source = """
        conn a ws://h/
        a > silence 300ms
        a > text after
    """
    paced = Run(source, timing=RECORDED)
    paced.at(299)
    assert paced.sends() == []
    paced.at(300)
    assert paced.send_times() == [(300, "after")]
    assert Run(source).send_times() == [(0, "after")]


def test_lines_of_our_side_in_an_unordered_block_go_out_when_it_is_reached():
    run = Run("""
        conn a ws://h/
        unordered
          a > text q1
          a < text r2
          a > text q2
          a < text r1
        end
    """)
    assert run.sent_texts() == ["q1", "q2"]
    run.recv("a", "r1", 1).recv("a", "r2", 2)
    assert run.result.passed


@pytest.mark.parametrize("side", [C, S])
def test_a_drop_after_a_complete_closing_handshake_is_no_news(side):
    # What a browser tab closing right after its close frame looks like in a recording.
    source = """
        conn a ws://h/x
        a > close 1001
        a < close 1000
        a > drop
    """
    if side is C:
        run = Run(source).recv("a", Message.close(1000), 1)
        assert run.sends() == [Message.close(1001, "")]
    else:
        run = Run(source, S)
        run.connect("/x")
        run.recv("a", Message.close(1001), 1)
        assert run.sends() == [Message.close(1000, "")]
    assert run.engine.done and run.result.passed, run.result.failures


# --- binary templates (MQTT 3.1.1 over WebSocket) ------------------------------------------

MQTT = """
conn m ws://127.0.0.1:1883/mqtt
  protocol mqtt
m > hex 10 varint( 0004 "MQTT" 04 02 003c u16({{cid = #bytes}}) )
m < hex 20 02 00 00
m > hex 82 varint( {{sid = #bytes 2}} u16("a/b") 01 )
m < hex 90 varint( {{sid}} 01 )
m < hex 32 varint( u16("a/b") {{pid = #bytes 2}} {{body = #bytes}} )
m > hex 40 02 {{pid}}
m > hex 30 varint( u16("a/b") {{cid}} )
"""


def _binary(hex_text: str, tail: bytes = b"") -> Message:
    return Message.of_binary(bytes.fromhex(hex_text) + tail)


def test_replaying_mqtt_binds_what_it_sends_and_echoes_what_it_captured():
    import random

    run = Run(MQTT, C, rng=random.Random(7))
    connect = run.sends("m")[0].data
    cid = run.engine.vars["cid"]
    assert len(cid) == 8 and connect == bytes.fromhex("101400044d5154540402003c0008") + cid
    run.recv("m", _binary("20020000"))
    subscribe = run.sends("m")[1].data
    sid = run.engine.vars["sid"]
    assert subscribe == b"\x82\x08" + sid + b"\x00\x03a/b\x01"
    run.recv("m", Message.of_binary(b"\x90\x03" + sid + b"\x01"))
    run.recv("m", _binary("320c0003", b"a/b\x00\x2ahello"))
    assert run.done and run.result.passed, run.result.failures
    assert [msg.data for msg in run.sends("m")[2:]] == [
        bytes.fromhex("4002002a"), b"\x30\x0d\x00\x03a/b" + cid]
    assert run.engine.vars["body"] == b"hello"


def test_a_wrong_packet_id_fails_with_the_byte_offset():
    import random

    run = Run(MQTT, C, rng=random.Random(7))
    run.recv("m", _binary("20020000"))
    sid = run.engine.vars["sid"]
    other = bytes([sid[0], sid[1] ^ 1])
    run.recv("m", Message.of_binary(b"\x90\x03" + other + b"\x01"))
    assert run.done and not run.result.passed
    assert run.failure.reason == (f"byte 3: expected 0x{sid[1]:02x} ({{{{sid}}}} = "
                                  f"{sid.hex(' ')}), got 0x{other[1]:02x}")


def test_serving_mqtt_captures_the_clients_ids_and_sends_fresh_ones_it_then_expects():
    import random

    run = Run(MQTT, S, rng=random.Random(3))
    run.connect("/mqtt", protocols=("mqtt",))
    run.recv("m", _binary("101b00044d5154540402003c000f", b"mqttjs_3f2a9c1b"))
    assert run.engine.vars["cid"] == b"mqttjs_3f2a9c1b"
    run.recv("m", _binary("8208" "1234" "0003", b"a/b\x01"))
    suback, publish = [msg.data for msg in run.sends("m")[1:]]
    assert suback == bytes.fromhex("9003123401")
    pid = run.engine.vars["pid"]
    assert publish[:7] == b"\x32\x0f\x00\x03a/b" and publish[7:9] == pid
    assert publish[9:] == run.engine.vars["body"] and len(run.engine.vars["body"]) == 8
    run.recv("m", Message.of_binary(b"\x40\x02" + pid))
    run.recv("m", Message.of_binary(b"\x30\x14\x00\x03a/bmqttjs_3f2a9c1b"))
    assert run.done and run.result.passed, run.result.failures
