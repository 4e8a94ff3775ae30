"""What the parent and the confined worker agree on: the wire format, and nothing else.

This package is the only ground the two sides of :mod:`sandbox` share: the worker's
code (:mod:`sandbox.worker`) and the parent's (:mod:`sandbox.host` and the modules
beside it) each import from here and never from each other. Every module in it is
imported by both, so a value they must agree on is written once:

- this module: the framing, and :data:`FD_BATCH`, the descriptors sent per batch when
  the corpus is handed over (:mod:`sandbox.handover` sends, the worker's REPL receives);
- :mod:`sandbox.protocol.messages`: the name of every message (:class:`Op`);
- :mod:`sandbox.protocol.names`: which names user code may define (the worker's policy,
  the parent's snapshot check);
- :mod:`sandbox.protocol.snapshots`: the snapshot format's tags and bounds;
- :mod:`sandbox.protocol.modules`: the modules code may import (``sandbox.SAFE_MODULES``).

It imports nothing from :mod:`sandbox` outside this package.

Framing
-------

Every message is a JSON object preceded by its length as a 4-byte big-endian
integer. JSON (never pickle) because the worker is untrusted: whatever it sends
is parsed as data and nothing else. ``ensure_ascii`` keeps lone surrogates that
user code may build representable on the wire.

A frame nested deeper than :data:`MAX_DEPTH` is refused: the deepest message
either side sends is four levels. The bound is checked on the decoded value,
without recursion; while decoding, CPython's JSON decoder counts its own
nesting against the interpreter's recursion limit and raises
``RecursionError``, which is refused the same way, so nothing deep is ever
walked by recursive code. (A linear scan of the raw bytes before decoding was
tried and measured at up to four times the cost of ``json.loads`` itself on a
large frame whose strings are full of brackets and quotes, as prompts holding
code or JSON are.)

The worker side is synchronous (it runs one thing at a time); the parent side
lives in :mod:`sandbox.host` and reads the same frames with anyio.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

from sandbox.protocol.messages import ANSWERS as ANSWERS
from sandbox.protocol.messages import WORKER_REQUESTS as WORKER_REQUESTS
from sandbox.protocol.messages import Op as Op

HEADER = struct.Struct(">I")
FD_BATCH = 200
"""Descriptors per message when the corpus is handed over: the parent sends at most this many at a time,
the worker reads up to as many at a time (:mod:`sandbox.handover`, :mod:`sandbox.worker.repl`)."""
MAX_FRAME = 2**32 - 1
MAX_DEPTH = 16
"""Deepest nesting of arrays and objects a frame may have (the protocol itself uses four)."""


class ProtocolError(Exception):
    """The peer sent something that is not a well-formed frame."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode("ascii")
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"message of {len(body)} bytes does not fit in one frame")
    return HEADER.pack(len(body)) + body


def too_deep(value: Any, limit: int) -> bool:
    """Whether arrays and objects in ``value`` nest deeper than ``limit`` (an explicit stack, no recursion)."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def decode(body: bytes) -> dict[str, Any]:
    """One frame's JSON object, nested at most :data:`MAX_DEPTH` deep."""
    try:
        message = json.loads(body)
    except RecursionError:
        raise ProtocolError(f"frame is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise ProtocolError(f"frame is not valid JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    if too_deep(message, MAX_DEPTH):
        raise ProtocolError(f"frame is nested deeper than {MAX_DEPTH} levels")
    return message


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise EOFError("channel closed")
        got += n
    return bytes(buf)


def read_frame(sock: socket.socket, max_bytes: int) -> dict[str, Any]:
    """Blocking read of one message (worker side)."""
    (size,) = HEADER.unpack(_recv_exactly(sock, HEADER.size))
    if size > max_bytes:
        raise ProtocolError(f"frame of {size} bytes exceeds the limit of {max_bytes}")
    return decode(_recv_exactly(sock, size))


def write_frame(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(encode(message))


class Channel:
    """The worker's end of the channel: blocking frames, and descriptors in batches."""

    def __init__(self, sock: socket.socket, max_bytes: int):
        self.sock = sock
        self.max_bytes = max_bytes

    def send(self, message: dict[str, Any]) -> None:
        write_frame(self.sock, message)

    def recv(self) -> dict[str, Any]:
        return read_frame(self.sock, self.max_bytes)

    def recv_fds(self, count: int) -> list[int]:
        fds: list[int] = []
        while len(fds) < count:
            _, batch, _, _ = socket.recv_fds(self.sock, 1, min(FD_BATCH, count - len(fds)))
            if not batch:
                raise ProtocolError("expected file descriptors from the parent")
            fds.extend(batch)
        return fds
