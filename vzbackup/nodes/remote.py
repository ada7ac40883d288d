"""A node reached over SSH, where ``vzbackup agent`` does the work (``ports.Node``).

Every operation is one agent command on the node: a JSON job on its stdin, frames back
(``frames``). Listing guests and checking the node are small jobs; a dump or a restore
streams through this process when the repository is a folder here; and ``run`` executes
a whole backup or restore on the node, which then talks to the repository itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from ..domain.guests import GuestRef
from ..errors import EnvironmentBroken, NodeUnreachable, VzError
from ..ports import Advance, Dump, GuestInfo, Leftover
from .frames import (DATA, DATA_FRAME, END, JSON, PROTOCOL, FramedStream, parse_json,
                     read_frame, write_frame)
from .jobs import error_from_dict
from .ssh import RemoteProcess, SshSession

log = logging.getLogger(__name__)

EXIT_NOT_FOUND = 127  # the shell's "command not found"


class SshNode:
    """``spec`` is the node's own view (platform, root, snapshotter, cache folder), sent with
    every job; ``command`` the agent's argv prefix (``["vzbackup"]``)."""

    def __init__(self, name: str, session: SshSession, command: list[str], spec: dict[str, Any],
                 *, timeout: float = 300.0):
        self.name, self.session, self.command, self.spec = name, session, command, spec
        self.platform_name = spec["platform"]
        self.timeout = timeout
        self.agent = self

    def __repr__(self) -> str:
        return f"SshNode({self.name!r}, {self.session.target.where!r})"

    # ---- ports.Node ------------------------------------------------------------------

    def check(self) -> None:
        """The node answers over SSH. Whether its agent works shows in the first job, with
        the same clarity and without starting one more process here."""
        self.session.client()

    def list_guests(self) -> list[GuestInfo]:
        return [GuestInfo.from_dict(g) for g in self.run({"op": "guests"})["guests"]]

    @contextmanager
    def dump(self, guest: GuestInfo) -> Iterator[Dump]:
        proc = self._start({"op": "dump", "guest": guest.to_dict()})
        try:
            header = self._next_message(proc)
            if "header" not in header:
                raise self._unexpected(proc, header)
            stream = FramedStream(proc.stdout, f"dump of {guest.ref} from node {self.name}")
            dump = Dump(guest, stream, header["header"].get("config", {}))  # type: ignore[arg-type]
            yield dump
            if not stream.ended:  # the reader stopped early: nothing to check, the dump is void
                raise NodeUnreachable(f"dump of {guest.ref} on node {self.name} was not read "
                                      "to its end")
            done = stream.last or self._next_message(proc)
            dump.warnings += self._result(proc, done).get("warnings", [])
        finally:
            proc.kill()

    def restore(self, target: GuestRef, stream: BinaryIO, *, name: str, config: dict[str, Any],
                force: bool = False) -> GuestInfo:
        proc = self._start({"op": "restore", "target": str(target), "name": name,
                            "config": config, "force": force})
        try:
            self._send_stream(proc, stream)
            return GuestInfo.from_dict(self._result(proc, self._next_message(proc))["guest"])
        finally:
            proc.kill()  # before a verified EOF: the agent is hung up on and installs nothing

    def _send_stream(self, proc: RemoteProcess, stream: BinaryIO) -> None:
        """Send ``stream`` as data frames, then the end frame once it read to its verified
        EOF. An error reading ``stream`` propagates; one writing to the node means the agent
        stopped reading, and its own message (GuestExists...) says why."""
        while data := stream.read(DATA_FRAME):
            try:
                write_frame(proc.stdin, DATA, data)
            except OSError as e:
                log.debug("restore stream to node %s cut: %s", self.name, e)
                return
        try:
            write_frame(proc.stdin, END)
            proc.close_stdin()
        except OSError as e:
            log.debug("restore stream to node %s cut at its end: %s", self.name, e)

    def reconfigure(self, target: GuestRef, changes: dict[str, str]) -> GuestInfo:
        done = self.run({"op": "reconfigure", "target": str(target), "changes": changes})
        return GuestInfo.from_dict(done["guest"])

    def start(self, ref: GuestRef) -> GuestInfo:
        return GuestInfo.from_dict(self.run({"op": "start", "target": str(ref)})["guest"])

    def checkpoint_space(self, refs: list[GuestRef], label: str) -> None:
        self.run({"op": "checkpoint", "verb": "space", "targets": [str(r) for r in refs],
                  "label": label})

    def destroy(self, target: GuestRef) -> None:
        self.run({"op": "destroy", "target": str(target)})

    def sanitize(self, target: GuestRef, script: str, env: dict[str, str]) -> None:
        self.run({"op": "sanitize", "target": str(target), "script": script, "env": env})

    def checkpoint(self, ref: GuestRef, label: str) -> None:
        self.run({"op": "checkpoint", "verb": "take", "target": str(ref), "label": label})

    def rollback(self, ref: GuestRef, label: str) -> None:
        self.run({"op": "checkpoint", "verb": "rollback", "target": str(ref), "label": label})

    def drop_checkpoint(self, ref: GuestRef, label: str) -> None:
        self.run({"op": "checkpoint", "verb": "drop", "target": str(ref), "label": label})

    def leftover_snapshots(self) -> list[Leftover]:
        return [Leftover(**lo) for lo in self.run({"op": "snapshots"})["leftovers"]]

    def remove_snapshot(self, leftover: Leftover) -> None:
        self.run({"op": "snapshot-remove", "leftover": leftover.to_dict()})

    # ---- ports.NodeAgent -------------------------------------------------------------

    def run(self, job: dict[str, Any], advance: Advance | None = None) -> dict[str, Any]:
        proc = self._start(job)
        try:
            while True:
                message = self._next_message(proc)
                if "advance" in message:
                    if advance is not None:
                        advance(int(message["advance"]))
                    continue
                return self._result(proc, message)
        finally:
            proc.kill()

    # ---- the protocol ----------------------------------------------------------------

    def _start(self, job: dict[str, Any]) -> RemoteProcess:
        proc = self.session.start([*self.command, "agent"], timeout=self.timeout)
        line = json.dumps({"protocol": PROTOCOL, "node": self.spec, **job},
                          separators=(",", ":")).encode() + b"\n"
        try:
            proc.stdin.write(line)  # secrets travel here only: never in argv
            proc.stdin.flush()
        except OSError as e:
            proc.kill()
            raise NodeUnreachable(f"node {self.name}: cannot send the job: {e}") from None
        return proc

    def _next_message(self, proc: RemoteProcess) -> dict[str, Any]:
        """The next JSON message but heartbeats; data here is a protocol error."""
        while "alive" in (message := self._next_frame(proc)):
            pass
        return message

    def _next_frame(self, proc: RemoteProcess) -> dict[str, Any]:
        what = f"node {self.name}"
        try:
            frame = read_frame(proc.stdout, what)
        except (OSError, EOFError) as e:  # socket.timeout included
            raise NodeUnreachable(f"node {self.name} ({self.session.target.where}) stopped "
                                  f"answering: {e or type(e).__name__}",
                                  hint="Check the node; the job is safe to run again.") from None
        if frame is None:
            raise self._ended(proc)
        kind, payload = frame
        if kind != JSON:
            raise EnvironmentBroken(f"{what}: the agent sent data where a message was due")
        return parse_json(payload, what)

    def _result(self, proc: RemoteProcess, message: dict[str, Any]) -> dict[str, Any]:
        if "error" in message:
            raise error_from_dict(message["error"], self.name)
        if "done" in message:
            return message["done"]
        raise self._unexpected(proc, message)

    def _unexpected(self, proc: RemoteProcess, message: dict[str, Any]) -> VzError:
        if "error" in message:
            return error_from_dict(message["error"], self.name)
        return EnvironmentBroken(f"node {self.name}: unexpected agent message {sorted(message)}")

    def _ended(self, proc: RemoteProcess) -> VzError:
        """The agent's output ended without a result: say how it exited and what it said."""
        try:
            code = proc.wait(timeout=5)
        except NodeUnreachable:
            code = None
        said = proc.stderr[-2000:]
        argv = " ".join(self.command)
        if code == EXIT_NOT_FOUND:
            return EnvironmentBroken(
                f"node {self.name}: the vzbackup agent '{argv}' is not installed there ({said})",
                hint=f"Install vzbackup on {self.name} (the same version as here), or set "
                     f"nodes.{self.name}.vzbackup to its path.")
        if code is None or code < 0:
            return NodeUnreachable(f"node {self.name}: the agent was cut off"
                                   + (f": {said}" if said else ""),
                                   hint="Check the node; the job is safe to run again.")
        return EnvironmentBroken(f"node {self.name}: the agent '{argv} agent' exited with "
                                 f"status {code} without a result" + (f": {said}" if said else ""),
                                 hint=f"Run '{argv} --version' on {self.name}; it must match "
                                      "this controller's version.")
