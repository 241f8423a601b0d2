"""The compliance cases, grouped as the Autobahn TestSuite groups them (1 framing, 2 pings and
pongs, 3 reserved bits, 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close codes, 8 closing
handshake, 9 limits, 12 compression).

Four shapes, each with its expectations derived in one place:

* :func:`echo`: the client sends, the aiohttp server echoes (and answers pings); the client
  waits for each answer, so the recording's order is the conversation's; the client closes.
* :func:`push`: a raw server sends, the client answers pings; the server closes.
* :func:`bad`: the client breaks the protocol: it gets the right close code, the server is
  told (1011), the recording says what happened.
* :func:`bad_push`: the same, the server breaking it.
"""

from __future__ import annotations

import random

from .frames import BINARY, CLOSE, CONT, PING, PONG, RSV1, RSV2, RSV3, TEXT, Frame, close_payload
from .peers import Msg, Send, Wait
from .run import Case, render

KiB, MiB = 1 << 10, 1 << 20
BYE = (1000, b"bye")
# Known bugs (see docs/known-bugs.md), as (column, bug) pairs for Case.known.
# B1 (a protocol error recorded with no word of what happened) is fixed.
MOCK_LIMIT = ("close 1008 *", "EOF")  # the mock's own limit is 16 MiB: it reads, then mismatches


def _conn(kw: dict) -> str:
    if not kw.get("client_deflate"):
        return "conn"
    return "conn compress " + ("expect compress" if kw.get("server_deflate")
                               else "expect no compress")


def _close(close: tuple[int | None, bytes]) -> str:
    return render(("close", close[0], close[1].decode("utf-8")))


def _step(step):
    return Send(step) if isinstance(step, Frame) else step


def echo(cid: str, group: str, title: str, *sends, close=BYE, **kw) -> Case:
    """``sends``: ``(step, what the server receives from it)`` (None: nothing yet)."""
    script, client, server, recorded = [], [], [], [_conn(kw)]
    for step, item in sends:
        script.append(_step(step))
        if item is None:
            continue
        server.append(render(item))
        recorded.append("> " + render(item))
        reply = ("pong", item[1]) if item[0] == "ping" else item if item[0] != "pong" else None
        if reply:
            script.append(Wait())
            client.append(render(reply))
            recorded.append("< " + render(reply))
    line = _close(close)
    client += [line, "EOF"]
    server.append(line)
    recorded += ["> " + line, "< " + line]
    return Case(cid, group, title, tuple(script), tuple(client), tuple(server),
                tuple(recorded), close=close, **kw)


def push(cid: str, group: str, title: str, *sends, close=BYE, **kw) -> Case:
    """``sends``: ``(step, what the client receives from it)``; a raw server plays them."""
    script, client, server, recorded = [], [], [], [_conn(kw)]
    for step, item in sends:
        script.append(_step(step))
        if item is None:
            continue
        client.append(render(item))
        recorded.append("< " + render(item))
        if item[0] == "ping":
            script.append(Wait())
            server.append(render(("pong", item[1])))
            recorded.append("> " + render(("pong", item[1])))
    line = _close(close)
    client += [line, "EOF"]
    server += [line, "EOF"]
    recorded += ["< " + line, "> " + line]
    return Case(cid, group, title, tuple(script), tuple(client), tuple(server),
                tuple(recorded), actor="server", close=close, **kw)


def bad(cid: str, group: str, title: str, *steps, code: int | str, before=(), **kw) -> Case:
    """The client sends ``before`` (echoed, as in :func:`echo`), then ``steps``, which break
    the protocol: it must get close ``code``; the server close 1011."""
    known = kw.pop("known", ())
    ok = echo(cid, group, title, *before, **kw)
    n = len(ok.recorded) - 2  # without the closing handshake
    client = ok.client[:-2] + (f"close {code} *", "EOF")
    return Case(cid, group, title, ok.script + tuple(map(_step, steps)), client,
                ok.server[:-1] + ("close 1011 *",),
                ok.recorded[:n] + ("# c1: *", f"< close {code} *"), close=None,
                serve_waits=True, serve_result="failed: *", known=known, **kw)


def bad_push(cid: str, group: str, title: str, *steps, code: int | str, **kw) -> Case:
    """A raw server sends ``steps``, which break the protocol: it must get close ``code``,
    the client close 1011."""
    return Case(cid, group, title, tuple(map(_step, steps)), ("close 1011 *", "EOF"),
                (f"close {code} *", "EOF"), ("conn", "# c1: *", f"> close {code} *"),
                actor="server", close=None, served=False, known=kw.pop("known", ()), **kw)


def _bytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def _text(n: int) -> bytes:
    return (b"wsreplay compliance " * (n // 20 + 1))[:n]


def _sent(opcode: int, data: bytes, cuts=(), deflate=False):
    kind = "text" if opcode == TEXT else "binary"
    return (Msg(opcode, data, tuple(cuts), deflate), (kind, data))


HELLO = (Msg(TEXT, b"Hello"), ("text", b"Hello"))


def _framing() -> list[Case]:
    g = "1 Framing and payload lengths"
    cases = []
    for i, n in enumerate((0, 125, 126, 127, 65535, 65536)):
        cases.append(echo(f"1.{i + 1:02}", g, f"text, {n} bytes", _sent(TEXT, _text(n))))
        cases.append(echo(f"1.{i + 7:02}", g, f"binary, {n} bytes", _sent(BINARY, _bytes(n, n))))
    cases.sort(key=lambda c: c.id)
    big = dict(max_size=8 * MiB)
    cases += [
        echo("1.13", g, "text, 6 MiB (limit raised to 8 MiB)", _sent(TEXT, _text(6 * MiB)), **big),
        echo("1.14", g, "binary, 6 MiB (limit raised to 8 MiB)", _sent(BINARY, _bytes(6 * MiB)),
             **big),
        push("1.15", g, "server to client: text and binary, 65536 bytes each",
             _sent(TEXT, _text(65536)), _sent(BINARY, _bytes(65536))),
        push("1.16", g, "server to client: binary, 6 MiB (limit raised)",
             _sent(BINARY, _bytes(6 * MiB, 6)), **big),
    ]
    return cases


def _pings() -> list[Case]:
    g = "2 Pings and pongs"
    p125, b125 = _text(125), bytes(range(125))
    return [
        echo("2.01", g, "ping, empty payload", (Frame(PING), ("ping", b""))),
        echo("2.02", g, "ping, 125-byte text payload", (Frame(PING, p125), ("ping", p125))),
        echo("2.03", g, "ping, 125-byte binary payload", (Frame(PING, b125), ("ping", b125))),
        echo("2.04", g, "unsolicited pong, empty, then a message",
             (Frame(PONG), ("pong", b"")), HELLO),
        echo("2.05", g, "unsolicited pong, 125 bytes, then a message",
             (Frame(PONG, b125), ("pong", b125)), HELLO),
        echo("2.06", g, "three pings, different payloads", *[
            (Frame(PING, bytes([i]) * i), ("ping", bytes([i]) * i)) for i in (1, 2, 3)]),
        bad("2.07", g, "ping, 126-byte payload (oversized control frame)",
            Frame(PING, _text(126)), code=1002),
        push("2.08", g, "server ping, empty payload", (Frame(PING), ("ping", b""))),
        push("2.09", g, "server ping, 125-byte payload", (Frame(PING, b125), ("ping", b125))),
        push("2.10", g, "server unsolicited pongs, empty and 125 bytes",
             (Frame(PONG), ("pong", b"")), (Frame(PONG, b125), ("pong", b125))),
        bad_push("2.11", g, "server ping, 126-byte payload", Frame(PING, _text(126)), code=1002),
    ]


def _reserved() -> list[Case]:
    g = "3 Reserved bits"
    cases = [bad(f"3.{rsv:02}", g, f"text with RSV bits {rsv:03b} (no extension)",
                 Frame(TEXT, b"Hello", rsv=rsv), code=1002, before=[HELLO])
             for rsv in range(1, 8)]
    return cases + [
        bad("3.08", g, "binary with RSV1 (no extension)", Frame(BINARY, b"\x00\xff", rsv=RSV1),
            code=1002),
        bad("3.09", g, "ping with RSV1 and RSV3", Frame(PING, b"p", rsv=RSV1 | RSV3), code=1002),
        bad("3.10", g, "close with all RSV bits", Frame(CLOSE, close_payload(1000), rsv=7),
            code=1002),
        bad_push("3.11", g, "server text with RSV2", Frame(TEXT, b"Hello", rsv=RSV2), code=1002),
        bad_push("3.12", g, "server text with RSV1 (no extension)",
                 Frame(TEXT, b"Hello", rsv=RSV1), code=1002),
    ]


def _opcodes() -> list[Case]:
    g = "4 Opcodes"
    cases = [bad(f"4.{i + 1:02}", g, f"reserved data opcode {op}", Frame(op, b"x"), code=1002,
                 before=[HELLO]) for i, op in enumerate((3, 4, 5, 6, 7))]
    cases += [bad(f"4.{i + 6:02}", g, f"reserved control opcode {op}", Frame(op, b"x"),
                  code=1002) for i, op in enumerate((11, 12, 13, 14, 15))]
    return cases + [
        bad_push("4.11", g, "server: reserved data opcode 3", Frame(3, b"x"), code=1002),
        bad_push("4.12", g, "server: reserved control opcode 11", Frame(11, b"x"), code=1002),
    ]


def _fragmentation() -> list[Case]:
    g = "5 Fragmentation"
    b64k = _bytes(65536, 5)
    return [
        echo("5.01", g, "text in 2 fragments", _sent(TEXT, b"fragmented", cuts=(4,))),
        echo("5.02", g, "text in 3 fragments, the middle one empty",
             _sent(TEXT, b"fragmented", cuts=(4, 4))),
        echo("5.03", g, "binary 65536 bytes in 16 fragments",
             _sent(BINARY, b64k, cuts=range(4096, 65536, 4096))),
        echo("5.04", g, "text fragments with a ping between",
             (Frame(TEXT, b"frag", fin=False), None), (Frame(PING, b"between"), ("ping", b"between")),
             (Frame(CONT, b"mented"), ("text", b"fragmented"))),
        echo("5.05", g, "text fragments with two pings and a pong between",
             (Frame(TEXT, b"a", fin=False), None), (Frame(PING, b"1"), ("ping", b"1")),
             (Frame(CONT, b"b", fin=False), None), (Frame(PONG, b"2"), ("pong", b"2")),
             (Frame(PING, b"3"), ("ping", b"3")), (Frame(CONT, b"c"), ("text", b"abc"))),
        echo("5.06", g, "empty text in 3 empty fragments", _sent(TEXT, b"", cuts=(0, 0))),
        echo("5.07", g, "binary in 1-byte fragments", _sent(BINARY, b"0123456789",
                                                           cuts=range(1, 10))),
        bad("5.08", g, "continuation frame with nothing to continue", Frame(CONT, b"x"),
            code=1002, before=[HELLO]),
        bad("5.09", g, "a new text frame inside a fragmented message",
            Frame(TEXT, b"a", fin=False), Frame(TEXT, b"b"), code=1002),
        bad("5.10", g, "fragmented ping", Frame(PING, b"a", fin=False), Frame(CONT, b"b"),
            code=1002),
        bad("5.11", g, "fragmented close", Frame(CLOSE, close_payload(1000), fin=False),
            Frame(CONT, b"x"), code=1002),
        push("5.12", g, "server: text in 3 fragments with a ping between",
             (Frame(TEXT, b"frag", fin=False), None), (Frame(PING, b"p"), ("ping", b"p")),
             (Frame(CONT, b"men", fin=False), None), (Frame(CONT, b"ted"), ("text", b"fragmented"))),
        bad_push("5.13", g, "server: continuation with nothing to continue", Frame(CONT, b"x"),
                 code=1002),
    ]


KOSME = "κόσμε".encode()
SMILE = "😀".encode()


def _utf8() -> list[Case]:
    g = "6 UTF-8"
    mixed = "a é € 😀 \uffff \U0010ffff".encode()
    cases = [
        echo("6.01", g, "valid text: κόσμε", _sent(TEXT, KOSME)),
        echo("6.02", g, "valid text: 1- to 4-byte characters, U+FFFF, U+10FFFF",
             _sent(TEXT, mixed)),
        echo("6.03", g, "κόσμε in 1-byte fragments", _sent(TEXT, KOSME, cuts=range(1, 11))),
    ]
    cases += [echo(f"6.{i + 4:02}", g, f"😀 split {cut}|{4 - cut} across fragments",
                   _sent(TEXT, b"<" + SMILE + b">", cuts=(1 + cut,))) for i, cut in enumerate((1, 2, 3))]
    cases.append(echo("6.07", g, "😀 in 4 fragments, one byte each",
                      _sent(TEXT, SMILE, cuts=(1, 2, 3))))
    invalid = [("a UTF-16 surrogate (ED A0 80)", b"ab\xed\xa0\x80cd"),
               ("an overlong encoding (C0 AF)", b"ab\xc0\xafcd"),
               ("a code point above U+10FFFF (F4 90 80 80)", b"\xf4\x90\x80\x80"),
               ("a lone continuation byte (80)", b"ab\x80"),
               ("a character cut at the end (CE)", b"ab\xce")]
    cases += [bad(f"6.{i + 8:02}", g, f"invalid text: {what}", Frame(TEXT, data), code=1007,
                  before=[HELLO]) for i, (what, data) in enumerate(invalid)]
    return cases + [
        bad("6.13", g, "invalid text: a character cut at the end of a fragmented message",
            Frame(TEXT, KOSME[:4], fin=False), Frame(CONT, KOSME[4:5]), code=1007),
        bad("6.14", g, "invalid text in the first fragment, valid after",
            Frame(TEXT, b"\xff", fin=False), Frame(CONT, b"valid"), code=1007),
        push("6.15", g, "server: 😀 split 2|2 across fragments",
             _sent(TEXT, SMILE, cuts=(2,))),
        bad_push("6.16", g, "server: invalid text (surrogate)", Frame(TEXT, b"\xed\xa0\x80"),
                 code=1007),
    ]


VALID_CODES = (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999)
INVALID_CODES = (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535)


def _closes() -> list[Case]:
    g = "7 Close codes and reasons"
    cases = [echo(f"7.{i + 1:02}", g, f"client closes with {code}",
                  close=(code, f"code {code}".encode())) for i, code in enumerate(VALID_CODES)]
    cases += [
        echo("7.12", g, "client closes with an empty close frame", close=(None, b"")),
        echo("7.13", g, "client closes with 1000 and no reason", close=(1000, b"")),
        echo("7.14", g, "client closes with a 123-byte reason", close=(1000, _text(123))),
        echo("7.15", g, "client closes with a UTF-8 reason", close=(1000, "κόσμε 😀".encode())),
    ]
    cases += [push(f"7.{i + 21:02}", g, f"server closes with {code}",
                   close=(code, f"code {code}".encode())) for i, code in enumerate(VALID_CODES)]
    cases += [
        push("7.32", g, "server closes with an empty close frame", close=(None, b"")),
        push("7.33", g, "server closes with a 123-byte reason", close=(1000, _text(123))),
    ]
    cases += [bad(f"7.{i + 41}", g, f"client close code {code} (invalid)",
                  Frame(CLOSE, close_payload(code)), code=1002)
              for i, code in enumerate(INVALID_CODES)]
    return cases + [
        bad("7.51", g, "client close frame with a 1-byte payload", Frame(CLOSE, b"\x03"),
            code=1002),
        bad("7.52", g, "client close reason not UTF-8", Frame(CLOSE, close_payload(1000, b"\xff")),
            code=1007),
        bad("7.53", g, "client close with a 124-byte reason (126-byte frame)",
            Frame(CLOSE, close_payload(1000, _text(124))), code=1002),
        bad_push("7.61", g, "server close code 1005 (invalid)", Frame(CLOSE, close_payload(1005)),
                 code=1002),
        bad_push("7.62", g, "server close code 999 (invalid)", Frame(CLOSE, close_payload(999)),
                 code=1002),
        bad_push("7.63", g, "server close frame with a 1-byte payload", Frame(CLOSE, b"\x03"),
                 code=1002),
        bad_push("7.64", g, "server close reason not UTF-8",
                 Frame(CLOSE, close_payload(1000, b"\xff")), code=1007),
        bad_push("7.65", g, "server close code 1006 (invalid)", Frame(CLOSE, close_payload(1006)),
                 code=1002),
        bad_push("7.66", g, "server close code 5000 (invalid)", Frame(CLOSE, close_payload(5000)),
                 code=1002),
    ]


def _limits() -> list[Case]:
    g = "9 Limits"
    small = dict(max_size=64 * KiB)
    return [
        echo("9.01", g, "binary of exactly the limit (64 KiB)", _sent(BINARY, _bytes(64 * KiB)),
             **small),
        bad("9.02", g, "binary one byte over the limit", Msg(BINARY, _bytes(64 * KiB + 1)),
            code=1009, serve=MOCK_LIMIT, **small),
        bad("9.03", g, "text over the limit in 4 fragments",
            Msg(TEXT, _text(64 * KiB + 4), cuts=(16 * KiB, 32 * KiB, 48 * KiB)),
            code=1009, serve=MOCK_LIMIT, **small),
        bad_push("9.04", g, "server: binary one byte over the limit",
                 Msg(BINARY, _bytes(64 * KiB + 1)), code=1009, **small),
        bad("9.05", g, "binary one byte over the mock's 16 MiB limit (the proxy's: 4 MiB)",
            Msg(BINARY, bytes(16 * MiB + 1)), code=1009),
    ]


def _compression() -> list[Case]:
    g = "12 Compression (permessage-deflate)"
    both = dict(client_deflate=True, server_deflate=True)
    hello = b"hello, compression " * 8
    return [
        echo("12.01", g, "both legs: three compressed texts (context kept between them)",
             *[_sent(TEXT, hello, deflate=True)] * 3, **both),
        echo("12.02", g, "both legs: compressed binary, 65536 bytes",
             _sent(BINARY, _text(65536), deflate=True), **both),
        echo("12.03", g, "both legs: a compressed message in 3 fragments",
             _sent(TEXT, hello, cuts=(3, 9), deflate=True), **both),
        echo("12.04", g, "both legs: an uncompressed message between compressed ones",
             _sent(TEXT, hello, deflate=True), _sent(TEXT, b"plain"),
             _sent(TEXT, hello, deflate=True), **both),
        echo("12.05", g, "both legs: an empty compressed message",
             _sent(BINARY, b"", deflate=True), **both),
        push("12.06", g, "both legs: the server sends compressed messages",
             _sent(TEXT, hello, deflate=True), _sent(BINARY, _text(65536), deflate=True), **both),
        echo("12.07", g, "the client offers, the server refuses: plain on both legs",
             _sent(TEXT, hello), client_deflate=True),
        echo("12.08", g, "the server would accept, the client does not offer",
             _sent(TEXT, hello), server_deflate=True),
        push("12.09", g, "the server would accept, the client does not offer (server sends)",
             _sent(TEXT, hello), server_deflate=True),
        bad("12.10", g, "both legs: RSV1 on a continuation frame",
            Frame(TEXT, b"a", fin=False), Frame(CONT, b"b", rsv=RSV1), code=1002, **both),
        bad("12.11", g, "both legs: a compressed message that inflates past the limit",
            Msg(BINARY, bytes(2 * MiB), deflate=True), code=1009, max_size=1 * MiB,
            serve=MOCK_LIMIT, **both),
        bad("12.12", g, "both legs: corrupt deflate data",
            Frame(BINARY, b"\xff\xff\xff\xff", rsv=RSV1), code="{1002|1007}", **both),
    ]


def _closing() -> list[Case]:
    g = "8 Closing handshake"
    return [
        Case("8.01", g, "the server closes; the client answers with a bad frame instead of a "
             "close: the proxy sends it no second close frame",
             (Msg(TEXT, b"__close"), Wait(), Send(Frame(TEXT, b"x", rsv=RSV2))),
             client=('close 1000 "server"', "EOF"), server=('text "__close"', "*"),
             recorded=("conn", '> text "__close"', '< close 1000 "server"', "# c1: *"),
             close=None, echo_close=False),
    ]


CASES: list[Case] = [*_framing(), *_pings(), *_reserved(), *_opcodes(), *_fragmentation(),
                     *_utf8(), *_closes(), *_closing(), *_limits(), *_compression()]
BY_ID = {case.id: case for case in CASES}
assert len(BY_ID) == len(CASES), "case ids must be unique"
