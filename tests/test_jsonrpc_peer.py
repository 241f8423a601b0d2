"""The JSON-RPC 2.0 peer pair (npm json-rpc-2.0 over ws, ``tests/peers/jsonrpc_*.js``) talks to
itself directly, and its server answers differently on every run, as the recordings made of it
assume (the client's request ids are random integers; the server's session, subscription id
and times are fresh per process)."""

from __future__ import annotations

import re

from .peerkit import PEERS_BY_NAME, peer_client, peer_server  # noqa: F401 (fixtures)

JSONRPC = PEERS_BY_NAME["jsonrpc"]


def _talk(peer_server, peer_client):
    server = peer_server(JSONRPC)
    conversation = peer_client(JSONRPC, server.port)
    assert conversation.ok, conversation.describe() + "\n--- server ---\n" + server.describe()
    return conversation, server


def test_the_client_and_server_hold_the_whole_conversation(peer_server, peer_client):
    conversation, server = _talk(peer_server, peer_client)
    kinds = [e["event"] for e in conversation.events]
    assert kinds == ["connected", "session", "subscribed", "update", "update", "update",
                     "unsubscribed", "echo", "closed", "done"]
    updates = [(e["seq"], e["value"]) for e in conversation.events if e["event"] == "update"]
    assert updates == [(1, 10), (2, 20), (3, 30)]
    subscribed = next(e for e in conversation.events if e["event"] == "subscribed")
    assert re.fullmatch(r"0x[0-9a-f]{16}", subscribed["id"])
    assert next(e for e in conversation.events if e["event"] == "closed")["code"] == 1000
    server.wait_line(lambda line: '"method":"echo"' in line)  # its reader thread may lag
    calls = [e["method"] for e in server.events() if e.get("event") == "call"]
    assert calls == ["session.open", "feed.subscribe", "feed.unsubscribe", "echo"]


def test_two_fresh_servers_give_different_session_ids(peer_server, peer_client):
    sessions = []
    for _ in range(2):
        conversation, _server = _talk(peer_server, peer_client)
        session = next(e for e in conversation.events if e["event"] == "session")["session"]
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                            session)
        sessions.append(session)
    assert sessions[0] != sessions[1]
