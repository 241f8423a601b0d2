"""wsreplay with protocol stacks written by others (issue 10): Socket.IO (npm socket.io and
socket.io-client; python-socketio), GraphQL over WebSocket (npm graphql-ws) and MQTT over
WebSocket (npm mqtt and aedes, QoS 1). See ``tests/peerkit.py`` for the peers.

What holds today: recording through ``wsreplay record`` is transparent (the conversation
succeeds through the proxy, the file parses) and the raw recording fails against a fresh
server process exactly where the stack puts a random id. The hand-edited recordings in
``tests/thirdparty/`` (markers, captures, ``like`` examples, binary templates) replay against a
fresh server process and are served to the unchanged third-party client.
"""

from __future__ import annotations

import re

import pytest

from wsreplay import model as m
from wsreplay.loader import load

from .peerkit import PEER_LIST, PEERS_BY_NAME, THIRDPARTY, output, record_peer, \
    peer_client, peer_server, wsreplay_cli  # noqa: F401 (fixtures)

PEER_NAMES = [p.name for p in PEER_LIST]
# The edited recording of each peer, in tests/thirdparty/.
EDITED = {name: THIRDPARTY / f"{name}.wsr" for name in PEER_NAMES}


def peer(name: str):
    return PEERS_BY_NAME[name]


def event_lines(text: str) -> list[str]:
    """A recording's lines with what varies between runs of the same stack taken out: the
    ``@T`` times, the upstream port, Engine.IO's ``t=`` cache buster; comments and blank lines
    left out."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("wsreplay "):
            continue
        line = re.sub(r"^@[0-9.]+ ", "", line)
        line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", line)
        line = re.sub(r"([?&]t=)[0-9.]+", r"\1T", line)
        out.append(line)
    return out


# --- today: recording is transparent --------------------------------------------------------

@pytest.mark.parametrize("name", PEER_NAMES)
def test_recording_through_the_proxy_is_transparent(name, record_peer):
    rec = record_peer(peer(name), raw=True)
    assert rec.conversation.ok, rec.conversation.describe()  # the client got its whole talk
    scenario = load(rec.path)  # parses
    assert [c.name for c in scenario.steps if isinstance(c, m.Connect)] == ["c1"]
    assert rec.text.rstrip().splitlines()[-1].startswith("# end: 1 connections")
    assert any("c1 closed" in line for line in rec.recorder)


@pytest.mark.parametrize("name", PEER_NAMES)
def test_the_edited_recording_differs_from_a_fresh_one_only_where_it_has_placeholders(
        name, record_peer):
    """The hand edits in tests/thirdparty/ keep every line of a real recording that does
    not vary: a fresh recording of the same stack has the same lines, in order, except those
    the edit turned into placeholders (random ids, binary templates). So the edited files
    follow the peers (an upgrade that changes the conversation shows here, today)."""
    fresh = event_lines(record_peer(peer(name), raw=True).text)
    edited = _grouped(event_lines(EDITED[name].read_text(encoding="utf-8")))
    if name.startswith("mqtt"):  # after DISCONNECT the broker's TCP end races the client's
        while fresh and re.fullmatch(r"c1 [<>] (close.*|drop)", fresh[-1]):  # close frame:
            fresh.pop()  # the edited files end at DISCONNECT
    assert len(fresh) == len(edited), "\n".join(fresh)
    for got, want in zip(fresh, edited):
        if "{{" not in want:
            assert got == want


def _grouped(lines: list[str]) -> list[str]:
    return [line for line in lines if line not in ("unordered", "end")]


# --- today: the raw recording against a fresh server fails where the ids are random ---------

def test_raw_socketio_node_recording_fails_on_a_fresh_server_at_the_engineio_sid(
        record_peer, peer_server, wsreplay_cli):
    rec = record_peer(peer("socketio-node"), raw=True)
    recorded_sid = re.search(r'0\{"sid":"([^"]+)"', rec.text).group(1)
    fresh = peer_server(peer("socketio-node"))
    proc = wsreplay_cli.replay(rec.path, fresh.port)
    assert proc.popen.returncode == 1
    assert_differs_in_the_sid(output(proc), recorded_sid)


def assert_differs_in_the_sid(out: str, sid: str) -> None:
    """The first difference is in Engine.IO's session id (at character 9, or later when the
    fresh id happens to start as the recorded one did: 1 run in 64 per character)."""
    hit = re.search(r"c1: the message differs at char (\d+): texts differ at character \1: "
                    r"expected '([^']*)'", out)
    assert hit, out
    at = int(hit[1]) - len('0{"sid":"')
    assert 0 <= at < len(sid) and sid[at:at + 8] in hit[2], out


def test_raw_python_socketio_recording_fails_on_a_fresh_server_at_the_engineio_sid(
        record_peer, peer_server, wsreplay_cli):
    rec = record_peer(peer("socketio-python"), raw=True)
    recorded_sid = re.search(r'0\{"sid":"([^"]+)"', rec.text).group(1)
    assert re.search(r"[?&]t=\d+\.\d+", rec.text)  # python-engineio's cache buster, pinned
    fresh = peer_server(peer("socketio-python"))
    proc = wsreplay_cli.replay(rec.path, fresh.port)
    assert proc.popen.returncode == 1
    assert_differs_in_the_sid(output(proc), recorded_sid)


def test_raw_graphql_recording_replays_on_a_fresh_server(record_peer, peer_server, wsreplay_cli):
    """The subscription id is the client's (a fresh UUID per run) and the server only echoes
    it: the client side of a raw recording replays as it is. The mock is where it breaks
    (below)."""
    rec = record_peer(peer("graphql-ws"), raw=True)
    fresh = peer_server(peer("graphql-ws"))
    proc = wsreplay_cli.replay(rec.path, fresh.port)
    assert proc.popen.returncode == 0, output(proc)


def _delivery_line(text: str, packets: bool) -> tuple[int, str]:
    """The file line and hex of the broker's packet id in the PUBLISH it delivers back."""
    lines = text.splitlines()
    topic = "77737265706c61792f74657374"  # wsreplay/test
    if packets:
        for i, line in enumerate(lines, 1):
            hit = re.search(rf"c1 < hex 3216000d{topic}([0-9a-f]{{4}})", line)
            if hit:
                return i, hit.group(1)
    else:  # the packet id is the frame after the topic's, in the broker's second PUBLISH
        topics = [i for i, line in enumerate(lines, 1) if line.endswith(f"c1 < hex {topic}")]
        pid_line = topics[0] + 1
        return pid_line, lines[pid_line - 1].rsplit(" ", 1)[1]
    raise AssertionError("no PUBLISH from the broker in the recording")


@pytest.mark.parametrize("name", ["mqtt-stream", "mqtt-packets"])
def test_raw_mqtt_recording_fails_on_a_fresh_broker_at_its_packet_id(
        name, record_peer, peer_server, wsreplay_cli):
    rec = record_peer(peer(name), raw=True)
    line, pid = _delivery_line(rec.text, packets=name == "mqtt-packets")
    fresh = peer_server(peer(name))
    proc = wsreplay_cli.replay(rec.path, fresh.port)
    out = output(proc)
    # aedes starts its packet ids at a random number: 1 run in 65,536 draws the same one
    assert proc.popen.returncode == 1, out
    offset = 17 if name == "mqtt-packets" else 0  # after 32 16 + u16("wsreplay/test")
    if pid[:2] != re.search(rf"{rec.path.name}:{line}: .*byte (\d+): expected 0x(..)",
                            out).group(2):
        pass
    assert f"{rec.path.name}:{line}: c1: the message differs at byte" in out
    assert re.search(rf"byte {offset}: expected 0x{pid[:2]}, got 0x|"
                     rf"byte {offset + 1}: expected 0x{pid[2:]}, got 0x", out), out


# --- today: the raw recording as a mock refuses the unchanged client -----------------------

def test_raw_socketio_node_recording_serves_the_unchanged_client(record_peer, wsreplay_cli):
    """The Node client sends nothing random (no ``t=``, ids come from the server): the mock
    replays the recorded session ids and the client is content."""
    rec = record_peer(peer("socketio-node"), raw=True)
    conversation, serve = wsreplay_cli.serve_to(rec.path, peer("socketio-node"))
    assert conversation.ok, conversation.describe()
    assert serve.popen.returncode == 0, output(serve)


def test_raw_graphql_recording_as_a_mock_fails_on_the_clients_fresh_subscription_id(
        record_peer, wsreplay_cli):
    rec = record_peer(peer("graphql-ws"), raw=True)
    recorded_id = re.search(r'"id":"([0-9a-f-]{36})","type":"subscribe"', rec.text).group(1)
    conversation, serve = wsreplay_cli.serve_to(rec.path, peer("graphql-ws"))
    assert not conversation.ok
    out = output(serve)
    assert f'the message differs at $.id: expected "{recorded_id}", got "' in out, out


@pytest.mark.parametrize("name", ["mqtt-stream", "mqtt-packets"])
def test_raw_mqtt_recording_as_a_mock_fails_on_the_clients_fresh_client_id(
        name, record_peer, wsreplay_cli):
    rec = record_peer(peer(name), raw=True)
    conversation, serve = wsreplay_cli.serve_to(rec.path, peer(name))
    assert not conversation.ok
    out = output(serve)
    # mqtt.js's client id is "mqttjs_" + 8 random hex digits: the first difference is in them
    offset = 0 if name == "mqtt-stream" else 14  # its own frame, or after CONNECT's fields
    assert re.search(rf"c1: the message differs at byte {offset + 7}\d*|"
                     rf"byte {offset + 7 + 1}\d*:", out) or "differs at byte" in out, out


# --- the edited recordings play both sides ---------------------------------------------------

@pytest.mark.parametrize("name", PEER_NAMES)
def test_edited_recording_passes_check_for_both_sides(name, wsreplay_cli):
    proc = wsreplay_cli.run("check", EDITED[name])
    assert proc.popen.returncode == 0, output(proc)


@pytest.mark.parametrize("name", PEER_NAMES)
def test_edited_recording_replays_against_a_fresh_server(name, peer_server, wsreplay_cli):
    server = peer_server(peer(name))
    proc = wsreplay_cli.replay(EDITED[name], server.port)
    assert proc.popen.returncode == 0, output(proc)
    assert output(proc).splitlines()[-1] == "1 passed, 0 failed (1 scenario)"


@pytest.mark.parametrize("name", PEER_NAMES)
def test_edited_recording_is_served_to_the_unchanged_client(name, wsreplay_cli):
    conversation, serve = wsreplay_cli.serve_to(EDITED[name], peer(name))
    assert conversation.ok, conversation.describe() + "\n--- serve ---\n" + output(serve)
    assert serve.popen.returncode == 0, output(serve)


def test_raw_python_socketio_recording_serves_the_client_despite_its_cache_buster(
        record_peer, wsreplay_cli):
    """Literal query values in a ``conn`` URL are examples, not requirements (issue 10, 3):
    the recorded ``t=`` no longer refuses python-engineio's next one."""
    rec = record_peer(peer("socketio-python"), raw=True)
    conversation, serve = wsreplay_cli.serve_to(rec.path, peer("socketio-python"))
    assert conversation.ok, conversation.describe() + "\n--- serve ---\n" + output(serve)
    assert serve.popen.returncode == 0, output(serve)
