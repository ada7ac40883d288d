"""Running the Proxmox VE tools (pvesh, vzdump, pct, qm, qmrestore) as argv lists.

Facts relied on (shared/reference/pve.md): every tool exits non-zero on failure (255 from
Perl's ``die``, sometimes an errno); errors before a task are on stderr; a task's log goes to
stdout (to stderr for ``vzdump --stdout``) and a failed task's message is the last stderr
line. Parsing is by keyword only: option order in logged lines is random (6.2).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import subprocess
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO

log = logging.getLogger(__name__)

KEEP_LINES = 200  # lines of a tool's output kept for messages


@dataclass(frozen=True)
class ToolResult:
    code: int
    out: str
    err: str

    def message(self) -> str:
        """What the tool said went wrong, on one line: its ERROR lines, else stderr."""
        lines = self.err.splitlines() + self.out.splitlines()
        errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR: ")]
        plain = [line for line in self.err.splitlines()
                 if line.strip() and not line.startswith(("INFO: ", "WARN: "))]
        found = errors or plain or [f"exit status {self.code}"]
        return "; ".join(dict.fromkeys(found))


class Tools:
    """The tools of one node; ``bin_dir`` empty: found on PATH."""

    def __init__(self, bin_dir: str = ""):
        self.bin_dir = bin_dir

    def argv(self, tool: str, *args: str) -> list[str]:
        return [os.path.join(self.bin_dir, tool) if self.bin_dir else tool, *args]

    def env(self) -> dict[str, str]:
        return {**os.environ, "LC_ALL": "C"}

    def run(self, tool: str, *args: str, timeout: float = 600) -> ToolResult:
        argv = self.argv(tool, *args)
        log.debug("running %s", argv)
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  env=self.env(), timeout=timeout)
        except FileNotFoundError:
            return ToolResult(127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            return ToolResult(124, "", f"{argv[0]}: no answer after {timeout:.0f} s")
        return ToolResult(proc.returncode, proc.stdout.decode("utf-8", "replace"),
                          proc.stderr.decode("utf-8", "replace"))

    def pvesh_json(self, path: str, *args: str) -> Any:
        """``pvesh get PATH ... --output-format json``; None when the call failed."""
        r = self.run("pvesh", "get", path, *args, "--output-format", "json")
        if r.code != 0:
            raise ToolFailed(f"pvesh get {path}", r)
        try:
            return json.loads(r.out)
        except ValueError:
            raise ToolFailed(f"pvesh get {path}", ToolResult(r.code, r.out, "not JSON")) from None

    def start(self, tool: str, *args: str, stdin: bool = False) -> "Running":
        argv = self.argv(tool, *args)
        log.debug("starting %s", argv)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=self.env(), close_fds=True)
        except FileNotFoundError:
            raise ToolFailed(argv[0], ToolResult(127, "", f"{argv[0]}: command not found")) from None
        return Running(proc, drain_stdout=stdin)


class ToolFailed(Exception):
    """A tool exited non-zero (the platform turns it into the right ``VzError``)."""

    def __init__(self, what: str, result: ToolResult):
        super().__init__(f"{what}: {result.message()}")
        self.what, self.result = what, result


class Running:
    """A tool started with pipes; its stderr (and, for a restore, its stdout: the task
    log) is drained by threads into bounded buffers."""

    def __init__(self, proc: subprocess.Popen[bytes], *, drain_stdout: bool):
        self.proc = proc
        self.err: collections.deque[str] = collections.deque(maxlen=KEEP_LINES)
        self.out: collections.deque[str] = collections.deque(maxlen=KEEP_LINES)
        self.marks: list[str] = []  # lines that matter whatever their number (vzdumplog reads them)
        assert proc.stderr is not None and proc.stdout is not None
        self._threads = [threading.Thread(target=self._drain, args=(proc.stderr, self.err),
                                          daemon=True)]
        if drain_stdout:
            self._threads.append(threading.Thread(target=self._drain, args=(proc.stdout, self.out),
                                                  daemon=True))
        for t in self._threads:
            t.start()

    @property
    def stdout(self) -> BinaryIO:
        assert self.proc.stdout is not None
        return self.proc.stdout  # type: ignore[return-value]

    def _drain(self, pipe: BinaryIO, into: collections.deque[str]) -> None:
        for raw in pipe:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            into.append(line)
            if re.match(r"^(WARN: |ERROR: |TASK |INFO: (Starting|Finished|Backup job))", line):
                self.marks.append(line)

    def finish(self) -> ToolResult:
        code = self.proc.wait()
        for t in self._threads:
            t.join()
        self._close()
        return self.result(code)

    def result(self, code: int) -> ToolResult:
        return ToolResult(code, "\n".join(self.out), "\n".join(self.err))

    def stop(self, grace: float = 10.0) -> ToolResult:
        """SIGTERM (the PVE tools then fail their task and clean up as documented), SIGKILL
        after ``grace`` seconds."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.finish()

    def _close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
