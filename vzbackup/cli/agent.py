"""``vzbackup agent``: one job from a controller, run on this node (over SSH).

The job is one JSON line on stdin; the answer is frames on stdout (``nodes.frames``):
progress, then ``done`` or ``error``. Nothing else may reach stdout, so the original stdout
is kept for frames and fd 1 is pointed at stderr for everything else. Secrets in the job
(passphrase, S3 keys) are redacted from anything logged. SIGHUP (the SSH connection
dropped) and SIGTERM unwind like an error: snapshots are removed, nothing is installed.
"""

from __future__ import annotations

import dataclasses

import json
import logging
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from .. import __version__
from ..domain.guests import GuestRef, parse_guest
from ..errors import EnvironmentBroken, UsageError, VzError
from ..logs import setup_logging
from ..nodes.frames import PROTOCOL, FramedStream, write_json, write_stream
from ..nodes.jobs import error_to_dict
from ..ops.backup import store_dump
from ..ops.restore import restore_point
from ..ports import Advance, GuestInfo, Leftover
from ..wiring import node_from_spec, repository_from_spec
from .main import cli

log = logging.getLogger(__name__)

MAX_JOB = 16 << 20
PROGRESS_EVERY = 0.5  # seconds between progress frames
HEARTBEAT = 20.0  # seconds of silence before a heartbeat frame (command_timeout >= 5 x this)


@cli.command(hidden=True)
def agent() -> None:
    """Run one job sent by a vzbackup controller on stdin (used over SSH, not by hand)."""
    out = _Serialized(os.fdopen(os.dup(1), "wb"))
    os.dup2(2, 1)  # stray prints and children's stdout go to stderr, never into the frames
    sys.stdout = sys.stderr
    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, _unwind)
    beat = threading.Thread(target=_heartbeat, args=(out,), daemon=True, name="vzbackup-beat")
    beat.start()
    raise SystemExit(run_job(sys.stdin.buffer, out))


class _Serialized:
    """The frame stream, written by the job and the heartbeat thread: one frame at a time
    (``write_frame`` writes a frame in one call); remembers when it last wrote."""

    def __init__(self, inner: BinaryIO):
        self._inner, self._lock = inner, threading.Lock()
        self.last = time.monotonic()

    def write(self, data: bytes) -> int:
        with self._lock:
            self.last = time.monotonic()
            return self._inner.write(data)

    def flush(self) -> None:
        with self._lock:
            self._inner.flush()


def _heartbeat(out: _Serialized) -> None:
    """A sign of life whenever the job has said nothing for ``HEARTBEAT`` seconds (vzdump
    waiting on its lock, tar reading a huge sparse file...): the controller's inactivity
    timeout then only fires when the node or the connection is really gone."""
    while True:
        time.sleep(HEARTBEAT / 4)
        if time.monotonic() - out.last >= HEARTBEAT:
            _send(out, {"alive": True})  # type: ignore[arg-type]


def _unwind(signum, frame):  # noqa: ANN001
    raise SystemExit(128 + signum)


def run_job(inp: BinaryIO, out: BinaryIO) -> int:
    """Read one job, run it, answer with frames. Returns the exit status."""
    secrets: set[str] = set()
    try:
        job = _read_job(inp)
        secrets = _secrets(job)
        setup_logging("info", None, stderr=True, secrets=secrets)
        result = _dispatch(job, inp, out)
    except VzError as e:
        _send(out, {"error": _scrub(error_to_dict(e), secrets)})
        return e.exit_code
    except Exception as e:  # a bug: still an answer the controller can show
        log.exception("agent job failed")
        _send(out, {"error": _scrub({"type": "VzError", "exit_code": 2,
                                     "message": f"unexpected error: {type(e).__name__}: {e}",
                                     "hint": "Report a bug with the node's stderr."}, secrets)})
        return 2
    _send(out, {"done": result})
    return 0


def _read_job(inp: BinaryIO) -> dict[str, Any]:
    line = inp.readline(MAX_JOB)
    try:
        job = json.loads(line)
    except ValueError:
        raise UsageError("vzbackup agent: expected a JSON job on stdin (this command is run "
                         "by a controller over SSH)") from None
    if job.get("protocol") != PROTOCOL:
        raise EnvironmentBroken(
            f"vzbackup agent {__version__} speaks protocol {PROTOCOL}, the controller "
            f"{job.get('protocol')}", hint="Install the same vzbackup version on every node "
                                           "and on the controller.")
    return job


def _secrets(job: dict[str, Any]) -> set[str]:
    specs = [v for k in ("repository", "source", "target") if isinstance(v := job.get(k), dict)]
    return {v for spec in specs for k in ("passphrase", "secret_key", "access_key")
            if (v := spec.get(k))}


def _scrub(error: dict[str, Any], secrets: set[str]) -> dict[str, Any]:
    """No secret of the job in the error sent back (it will be shown and logged there)."""
    for key in ("message", "hint"):
        for secret in secrets:
            if isinstance(error.get(key), str) and len(secret) >= 4:
                error[key] = error[key].replace(secret, "***")
    return error


def _dispatch(job: dict[str, Any], inp: BinaryIO, out: BinaryIO) -> dict[str, Any]:
    node = node_from_spec(job["node"])
    op = job.get("op")
    if op == "check":
        node.check()
        return {"version": __version__}
    if op == "guests":
        node.check()
        return {"guests": [g.to_dict() for g in node.list_guests()]}
    if op == "dump":
        with node.dump(GuestInfo.from_dict(job["guest"])) as dump:
            _send(out, {"header": {"config": dump.config}})
            write_stream(out, dump.stream)
        return {"warnings": dump.warnings}
    if op == "restore":
        stream = FramedStream(inp, f"restore stream of {job['target']} from the controller")
        guest = node.restore(_ref(job["target"]), stream, name=job["name"],  # type: ignore[arg-type]
                             config=job["config"], force=job["force"])
        return {"guest": guest.to_dict()}
    if op == "checkpoint" and job.get("verb") == "space":
        node.checkpoint_space([_ref(t) for t in job["targets"]], str(job["label"]))
        return {}
    if op == "checkpoint":
        verb, ref, label = job["verb"], _ref(job["target"]), str(job["label"])
        if verb == "take":
            node.checkpoint(ref, label)
        elif verb == "rollback":
            node.rollback(ref, label)
        elif verb == "drop":
            node.drop_checkpoint(ref, label)
        else:
            raise UsageError(f"vzbackup agent: unknown checkpoint verb {verb!r}")
        return {}
    if op == "reconfigure":
        changes = {str(k): str(v) for k, v in dict(job["changes"]).items()}
        return {"guest": node.reconfigure(_ref(job["target"]), changes).to_dict()}
    if op == "start":
        return {"guest": node.start(_ref(job["target"])).to_dict()}
    if op == "destroy":
        node.destroy(_ref(job["target"]))
        return {}
    if op == "sanitize":
        env = {str(k): str(v) for k, v in (job.get("env") or {}).items()}
        node.sanitize(_ref(job["target"]), str(job["script"]), env)
        return {}
    if op == "snapshots":
        return {"leftovers": [lo.to_dict() for lo in node.leftover_snapshots()]}
    if op == "snapshot-remove":
        node.remove_snapshot(Leftover(**job["leftover"]))
        return {}
    cache = Path(job["node"]["cache_dir"]) if job["node"].get("cache_dir") else None
    if op == "backup":
        repo = repository_from_spec(job["repository"], cache)
        with _progress(out) as advance:
            manifest, stats, warnings = store_dump(
                node, GuestInfo.from_dict(job["guest"]), repo,
                datetime.fromisoformat(job["created"]), job["labels"], advance)
        return {"point_id": manifest.id, "warnings": warnings,
                "stats": {"bytes_in": stats.bytes_in, "chunks": stats.chunks,
                          "new_chunks": stats.new_chunks,
                          "new_bytes_stored": stats.new_bytes_stored}}
    if op == "restore-from":
        repo = repository_from_spec(job["repository"], cache)
        with _progress(out) as advance:
            guest, size = restore_point(node, repo, job["point"], _ref(job["target"]),
                                        job["force"], advance)
        return {"guest": guest.to_dict(), "bytes": size}
    if op == "verify":
        repo = repository_from_spec(job["repository"], cache)
        with _progress(out) as advance:
            report = repo.verify_point(job["point"], full=job["full"], advance=advance)
        return {"ok": report.ok, "chunks_checked": report.chunks_checked,
                "problems": list(report.problems),
                "damaged_chunks": [c.hex() for c in report.damaged_chunks]}
    if op == "gc":
        repo = repository_from_spec(job["repository"], cache)
        report = repo.collect_garbage(grace=float(job["grace"]), now=float(job["now"]),
                                      dry_run=bool(job["dry_run"]))
        return dataclasses.asdict(report)
    if op == "replicate":
        source = repository_from_spec(job["source"], cache)
        target = repository_from_spec(job["target"], cache)
        with _progress(out) as advance:
            stats = source.copy_point(job["point"], target, advance)
        return {"chunks": stats.chunks, "chunks_sent": stats.chunks_sent,
                "bytes_sent": stats.bytes_sent}
    raise UsageError(f"vzbackup agent: unknown job {op!r}")


def _ref(text: str) -> GuestRef:
    ref = parse_guest(text).ref
    if ref is None:
        raise UsageError(f"vzbackup agent: {text!r} is not a guest (ct<ID> or vm<ID>)")
    return ref


@contextmanager
def _progress(out: BinaryIO) -> Iterator[Advance]:
    """Progress frames, at most every ``PROGRESS_EVERY`` seconds (also a sign of life)."""
    pending, last = [0], [time.monotonic()]

    def advance(n: int) -> None:
        pending[0] += n
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY:
            _send(out, {"advance": pending[0]})
            pending[0], last[0] = 0, now

    yield advance
    if pending[0]:
        _send(out, {"advance": pending[0]})


def _send(out: BinaryIO, message: dict[str, Any]) -> None:
    try:
        write_json(out, message)
    except OSError:
        pass  # the controller is gone; the exit status is all that is left

