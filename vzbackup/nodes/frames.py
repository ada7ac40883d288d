"""The agent protocol's framing: what the controller and ``vzbackup agent`` on a node say to
each other over one SSH channel.

The controller sends one JSON line (the job), then, for a restore streamed through it,
data frames and an end frame. The agent answers with frames only. A frame is a kind byte,
a 4-byte big-endian length and the payload:

    D  stream bytes
    J  a JSON message: {"header": ...}, {"advance": N}, {"alive": true} (a heartbeat while
       the agent waits, e.g. on vzdump's lock), {"done": ...} or {"error": ...}
    E  the stream is complete (sent only after the sender verified all of it)

A stream that ends without ``E`` was cut: its reader raises, so a restore fed from a
dying controller, or from a copy that failed verification half-way, installs nothing.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

from ..errors import EnvironmentBroken, NodeUnreachable

PROTOCOL = 1
DATA, JSON, END = b"D", b"J", b"E"
_HEADER = struct.Struct(">cI")
MAX_JSON = 64 << 20
MAX_DATA = 4 << 20
DATA_FRAME = 1 << 20  # bytes per data frame written


def write_frame(out: BinaryIO, kind: bytes, payload: bytes = b"") -> None:
    """One ``write`` per frame, so that a writer serialising writes (the agent's heartbeat
    beside its data) never interleaves two frames."""
    out.write(_HEADER.pack(kind, len(payload)) + payload)


def write_json(out: BinaryIO, message: dict[str, Any]) -> None:
    write_frame(out, JSON, json.dumps(message, separators=(",", ":")).encode())
    out.flush()


def write_stream(out: BinaryIO, stream: BinaryIO, size: int = DATA_FRAME) -> int:
    """Copy ``stream`` to EOF as data frames, then the end frame. Returns the bytes sent."""
    sent = 0
    while data := stream.read(size):
        write_frame(out, DATA, data)
        sent += len(data)
    write_frame(out, END)
    out.flush()
    return sent


def parse_json(payload: bytes, what: str) -> dict[str, Any]:
    try:
        message = json.loads(payload)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        raise EnvironmentBroken(f"{what}: a message that is not JSON: {payload[:80]!r}")
    return message


def read_frame(inp: BinaryIO, what: str) -> tuple[bytes, bytes] | None:
    """The next ``(kind, payload)``; None at a clean end of input (between frames)."""
    head = _read_exactly(inp, _HEADER.size, what, allow_eof=True)
    if head is None:
        return None
    kind, length = _HEADER.unpack(head)
    limit = MAX_JSON if kind == JSON else MAX_DATA
    if kind not in (DATA, JSON, END) or length > limit:
        raise EnvironmentBroken(f"{what}: not the vzbackup agent protocol (frame {kind!r}, "
                            f"{length} bytes)",
                            hint="Check that the same vzbackup version runs on both ends and "
                                 "that nothing prints from the node's shell start-up files.")
    payload = _read_exactly(inp, length, what, allow_eof=False) if length else b""
    assert payload is not None
    return kind, payload


def _read_exactly(inp: BinaryIO, n: int, what: str, *, allow_eof: bool) -> bytes | None:
    parts, got = [], 0
    while got < n:
        data = inp.read(n - got)
        if not data:
            if allow_eof and got == 0:
                return None
            raise NodeUnreachable(f"{what}: the connection ended in the middle of a message")
        parts.append(data)
        got += len(data)
    return b"".join(parts)


class FramedStream:
    """A readable stream over data frames. JSON frames met on the way go to ``on_json``;
    reading past the end frame gives EOF, and so does reaching ``stop_at`` JSON (left in
    ``last``). A stream cut before its end frame raises ``NodeUnreachable``."""

    def __init__(self, inp: BinaryIO, what: str, on_json=None):  # noqa: ANN001
        self._inp, self._what, self._on_json = inp, what, on_json
        self._buffer = memoryview(b"")
        self.ended = False
        self.last: dict[str, Any] | None = None  # a "done" or "error" that ended the stream

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return b"".join(iter(lambda: self.read(DATA_FRAME), b""))
        while not self._buffer and not self.ended:
            self._next()
        data = bytes(self._buffer[:n])
        self._buffer = self._buffer[len(data):]
        return data

    def readinto(self, buf) -> int:  # noqa: ANN001
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def _next(self) -> None:
        try:
            frame = read_frame(self._inp, self._what)
        except (OSError, EOFError) as e:  # socket.timeout included
            raise NodeUnreachable(f"{self._what}: the connection failed: "
                                  f"{e or type(e).__name__}") from None
        if frame is None:
            raise NodeUnreachable(f"{self._what}: the stream was cut before its end")
        kind, payload = frame
        if kind == DATA:
            self._buffer = memoryview(payload)
        elif kind == END:
            self.ended = True
        else:
            message = parse_json(payload, self._what)
            if "done" in message or "error" in message:
                self.ended, self.last = True, message
            elif self._on_json is not None:
                self._on_json(message)
