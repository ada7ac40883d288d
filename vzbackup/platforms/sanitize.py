"""Sanitize scripts: an executable on the node, run once per branch member to scrub it
(customer data, keys, mail queues) before the branch is used or shipped.

The script runs on the member's node, as root, with the clone's root file system as its
only argument when there is one (a container's rootfs, mounted offline; a directory
platform's guest folder), none for a Proxmox VM (its disks are not mounted: such a script
scrubs through libguestfs or leaves VMs alone). Its working directory is that root (or
``/``); its environment is ``PATH``, ``LC_ALL=C`` and ``VZBACKUP_BRANCH``,
``VZBACKUP_GUEST`` (ct201), ``VZBACKUP_SOURCE`` (ct101), ``VZBACKUP_HOSTNAME``,
``VZBACKUP_KIND`` (ct|vm), ``VZBACKUP_ROOT`` (as the argument, or empty). Exit 0 means
done; anything else fails the member, with the last lines of its output.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections import deque
from pathlib import Path

from ..errors import GuestCommandFailed

log = logging.getLogger(__name__)

TIMEOUT = 3600.0
KEEP = 5  # output lines quoted in an error
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def run_sanitize(script: str, root: Path | None, env: dict[str, str], where: str) -> None:
    """Run ``script`` for one member; ``GuestCommandFailed`` naming it and ``where``."""
    if not os.path.isabs(script):
        raise GuestCommandFailed(f"{where}: sanitize script {script!r} is not an absolute path",
                                 hint="Give the script's absolute path on the node.")
    if not os.path.isfile(script) or not os.access(script, os.X_OK):
        raise GuestCommandFailed(f"{where}: sanitize script {script} does not exist or is not "
                                 "executable on the node",
                                 hint=f"Copy it to the node and 'chmod +x {script}'.")
    argv = [script] + ([str(root)] if root is not None else [])
    full_env = {"PATH": PATH, "LC_ALL": "C", **env, "VZBACKUP_ROOT": str(root or "")}
    try:
        proc = subprocess.run(argv, cwd=str(root or "/"), env=full_env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise GuestCommandFailed(f"{where}: sanitize script {script} failed: {e}") from None
    lines = proc.stdout.decode("utf-8", "replace").splitlines()
    for line in lines:
        log.info("%s: sanitize %s: %s", where, os.path.basename(script), line)
    if proc.returncode != 0:
        tail = deque((line for line in lines if line.strip()), maxlen=KEEP)
        said = f": {' / '.join(tail)}" if tail else ""
        raise GuestCommandFailed(f"{where}: sanitize script {script} exited with "
                                 f"{proc.returncode}{said}",
                                 hint="Fix the script (it gets the clone's root as $1), then "
                                      "create the branch again.")
