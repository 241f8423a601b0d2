"""Self-describing binary encodings compared by meaning: MessagePack and CBOR. Pure.

A ``msgpack`` or ``cbor`` line holds a JSON value (with markers, placeholders, ``subset``,
``ignore``, exactly as a ``json`` line); the message is binary. :func:`decode` turns a received
frame into the JSON-like value the JSON comparison walks, :func:`encode` a rendered value into
the frame to send, and :func:`recordable` tells the recorder whether a frame can be written in
that form, byte for byte: it decodes to a value JSON can hold, and encoding that value again
gives the very same bytes.

What JSON cannot hold -- MessagePack ``bin`` and extension types, CBOR tags, byte strings and
``undefined``, map keys that are not strings -- makes a frame *not representable*: a mismatch
with a reason, never an exception. Nesting is bounded (:data:`MAX_DEPTH`), so a hostile frame
cannot exhaust the stack of the walkers after it.
"""

from __future__ import annotations

import math
from typing import Any

import cbor2
import msgpack
import orjson

CODECS = ("msgpack", "cbor")
MAX_DEPTH = 256


class CodecError(ValueError):
    """A frame that does not decode, or decodes to what JSON cannot hold; ``reason`` says
    which."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def decode(codec: str, data: bytes) -> Any:
    """The JSON-like value of the ``codec`` frame ``data``; raises :class:`CodecError`."""
    try:
        if codec == "msgpack":
            value = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True,
                                    timestamp=0)
        elif codec == "cbor":
            value = cbor2.loads(data)
        else:
            raise CodecError(f"unknown codec {codec!r}")
    except CodecError:
        raise
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError,
            msgpack.ExtraData, msgpack.FormatError, msgpack.StackError,
            cbor2.CBORDecodeError) as exc:
        raise CodecError(f"not {_NAME[codec]}: {_short(exc)}") from None
    if codec == "cbor" and any(tag in data for tag in _REFERENCE_TAGS):
        _check_expansion(value, len(data))  # before anything walks the value as a tree
    if not _plain(value):
        _check(codec, value)  # slow, but only to say what is wrong, and where
    return value


# CBOR's shared references (tags 28, 29) and string references (25, 256): cbor2 resolves them,
# so 400 bytes can stand for 2**40 items. A frame holding none of these heads has none.
_REFERENCE_TAGS = (b"\xd8\x1c", b"\xd8\x1d", b"\xd8\x19", b"\xd9\x01\x00")


def _check_expansion(value: Any, size: int) -> None:
    """Refuse a value bigger than its frame could hold written out plainly (each item, and
    each character of a string, takes a byte at least): it was built by references.
    Iterative, and it stops as soon as the budget is spent, so it costs O(size)."""
    budget = size
    stack = [value]
    while stack:
        item = stack.pop()
        budget -= 1 + (len(item) if isinstance(item, str) else 0)
        if budget < 0:
            raise CodecError("CBOR shared or string references: the value is bigger than "
                             "its frame written out, which JSON cannot say")
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            budget -= sum(len(k) if isinstance(k, str) else 1 for k in item)
            stack.extend(item.values())


def _plain(value: Any) -> bool:
    """Whether ``value`` holds only JSON types (string keys), not too deep: orjson, in C,
    serialises exactly those (its own depth limit is under :data:`MAX_DEPTH`) and refuses the
    rest. (A NaN passes: as a number it equals nothing, and the recorder, which re-encodes
    through the file, never writes one.)"""
    try:
        orjson.dumps(value, option=orjson.OPT_PASSTHROUGH_DATETIME |
                     orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


def encode(codec: str, value: Any) -> bytes:
    """``value`` (JSON-like) as a ``codec`` frame: MessagePack with the str/bin types
    apart, CBOR as ``cbor2`` writes it (shortest forms)."""
    if codec == "msgpack":
        return msgpack.packb(value, use_bin_type=True)
    if codec == "cbor":
        return cbor2.dumps(value)
    raise CodecError(f"unknown codec {codec!r}")


def recordable(codec: str, data: bytes) -> Any | None:
    """The value to record ``data`` as, in ``codec``: when it decodes to a map or an array
    JSON can hold and that value, as a scenario file gives it back (through JSON text),
    encodes to the same bytes; else None."""
    value, exact = decoded(codec, data)
    return value if exact else None


def decoded(codec: str, data: bytes) -> tuple[Any | None, bool]:
    """``(value, exact)``: the map or array JSON can hold that ``data`` decodes to in
    ``codec`` (as a scenario file gives it back, through JSON text), and whether that value
    encodes to the very same bytes; ``(None, False)`` when it is no such thing."""
    if not data or not _container_head(codec, data[0]):
        return None, False
    try:
        value = orjson.loads(orjson.dumps(decode(codec, data)))
        if not isinstance(value, (dict, list)):
            return None, False
        return value, encode(codec, value) == data
    except (CodecError, ValueError, TypeError, OverflowError, orjson.JSONEncodeError):
        return None, False


_NAME = {"msgpack": "MessagePack", "cbor": "CBOR"}


def _container_head(codec: str, first: int) -> bool:
    if codec == "msgpack":  # fixmap, fixarray, array 16/32, map 16/32
        return 0x80 <= first <= 0x9F or first in (0xDC, 0xDD, 0xDE, 0xDF)
    return 0x80 <= first <= 0xBF  # CBOR major types 4 (array) and 5 (map)


def _check(codec: str, value: Any) -> None:
    """Raise :class:`CodecError` for what JSON cannot hold, or nesting past MAX_DEPTH;
    iterative, so depth costs no stack. The walk keeps no paths (they would cost more than
    the decoding): the path is looked for only when something is wrong."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    push, pop = stack.append, stack.pop
    while stack:
        item, depth = pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if item != item or item in _INFINITIES:
                raise CodecError(f"{_path_of(value, item)}: {item} is not a JSON number")
            continue
        if depth >= MAX_DEPTH:
            raise CodecError(f"{_NAME[codec]} nested deeper than {MAX_DEPTH}")
        if kind is list:
            for v in item:
                push((v, depth + 1))
        elif kind is dict:
            for key, v in item.items():
                if type(key) is not str:
                    raise CodecError(f"{_path_of(value, item)}: a map key {key!r} is not a "
                                     "string")
                push((v, depth + 1))
        else:
            raise CodecError(f"{_path_of(value, item)}: {_kind(item)} has no JSON form")


_INFINITIES = (float("inf"), float("-inf"))


def _path_of(root: Any, target: Any) -> str:
    """The JSON path of ``target`` (by identity) in ``root``, for an error message."""
    stack: list[tuple[Any, str]] = [(root, "$")]
    while stack:
        item, path = stack.pop()
        if item is target:
            return path
        if isinstance(item, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))
        elif isinstance(item, dict):
            stack.extend((v, f"{path}.{k}") for k, v in item.items())
    return "$"


def _kind(item: Any) -> str:
    if isinstance(item, (bytes, bytearray)):
        return "a byte string"
    if isinstance(item, msgpack.ExtType):
        return f"an extension type {item.code}"
    if isinstance(item, cbor2.CBORTag):
        return f"a CBOR tag {item.tag}"
    if item is cbor2.undefined:
        return "undefined"
    return f"a {type(item).__name__}"


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 80 else text[:79] + "…"
