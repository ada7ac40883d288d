"""vzdump-style hook scripts, called by vzbackup itself for platforms that do not run vzdump
(shared/reference/pve.md section 5; the proxmox platform hands the script to vzdump).

Same as vzdump: the script is checked before each call (``Error: The hook script '<path>'
does not exist.`` / ``is not executable.``); job phases get ``<phase>``, guest phases
``<phase> <mode> <vmid>``; the environment is empty but for the variables that have a value;
a non-zero exit reads ``command '<script> <phase> [<mode> <vmid>]' failed: exit code <n>``;
each output line is logged as ``INFO: <line>``. The effect of a failure follows vzdump's table:
``job-init``, ``job-start``, ``job-end`` fail the job (``job-abort`` runs after the last two);
``backup-start``, ``pre-stop``, ``pre-restart``, ``post-restart``, ``backup-end`` fail the guest
(``backup-abort`` runs); ``backup-abort``, ``log-end``, ``job-abort`` only warn.

Mapping to vzbackup: each guest is one job (job phases run once per guest); the mode is
``snapshot`` (the snapshotter's view is taken between ``pre-stop`` and ``pre-restart``; with
the ``none`` snapshotter nothing is stopped: the guest is read live); ``TARGET`` is ``-`` (the
stream goes to a repository); there is no storage, dump directory or log file, so ``STOREID``,
``DUMPDIR`` and ``LOGFILE`` are never set. ``backup-end`` runs after the dumper exited
cleanly and before the restore point is committed: its failure keeps no restore point.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..domain.guests import GuestRef
from ..errors import DumpFailed

log = logging.getLogger(__name__)

MODE = "snapshot"
TIMEOUT = 3600.0  # seconds; vzdump itself has none


class HookFailed(Exception):
    pass


class HookScript:
    def __init__(self, path: str):
        self.path = path

    def run(self, phase: str, ref: GuestRef | None = None, env: dict[str, str] | None = None
            ) -> None:
        args = [phase] + ([MODE, str(ref.vmid)] if ref else [])
        if not os.path.exists(self.path):
            raise HookFailed(f"Error: The hook script '{self.path}' does not exist.")
        if not os.access(self.path, os.X_OK):
            raise HookFailed(f"Error: The hook script '{self.path}' is not executable.")
        try:
            proc = subprocess.run([self.path, *args], env={k: v for k, v in (env or {}).items() if v},
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise HookFailed(f"command '{' '.join([self.path, *args])}' failed: {e}") from None
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            log.info("INFO: %s", line)
        if proc.returncode != 0:
            raise HookFailed(f"command '{' '.join([self.path, *args])}' failed: "
                             f"exit code {proc.returncode}")


Phase = Callable[[str], None]


@contextmanager
def hooked(hook: HookScript | None, ref: GuestRef, name: str, where: str,
           warnings: list[str]) -> Iterator[Phase]:
    """Run the job and guest phases around a dump; yields ``phase(name)`` for the phases
    the platform calls at its moments (pre-stop, pre-restart, post-restart)."""
    if hook is None:
        yield lambda phase: None
        return
    env = {"VMTYPE": "lxc" if ref.kind == "ct" else "qemu", "HOSTNAME": name, "TARGET": "-"}

    def guest(phase: str) -> None:
        hook.run(phase, ref, env)

    def warn(phase: str, guest_phase: bool = True) -> None:
        try:
            hook.run(phase, ref if guest_phase else None, env if guest_phase else None)
        except HookFailed as e:
            log.warning("%s: %s", where, e)
            warnings.append(f"hook: {e}")

    _job(hook, "job-init", where, None)
    _job(hook, "job-start", where, lambda: warn("job-abort", False))
    try:
        guest("backup-start")
        yield guest
        guest("backup-end")
    except BaseException as e:
        warn("backup-abort")
        warn("log-end")
        if not isinstance(e, Exception):  # interrupted: the job ends with job-abort
            warn("job-abort", False)
            raise
        try:  # the guest failed, the job goes on to job-end
            hook.run("job-end")
        except HookFailed as end:
            warn("job-abort", False)
            warnings.append(f"hook: {end}")
        if isinstance(e, HookFailed):
            raise DumpFailed(f"{where}: {e}", hint=HINT) from None
        raise
    warn("log-end")
    _job(hook, "job-end", where, lambda: warn("job-abort", False))


HINT = "The node's hook script failed in the phase named above; fix it, then back up again."


def _job(hook: HookScript, phase: str, where: str, on_failure: Callable[[], None] | None) -> None:
    try:
        hook.run(phase)
    except HookFailed as e:
        if on_failure is not None:
            on_failure()
        raise DumpFailed(f"{where}: {e}", hint=HINT) from None
