"""Put a restored folder in place of a guest's folder by renames only.

With Linux ``renameat2`` the swap is one atomic ``RENAME_EXCHANGE``: the guest's name
always holds a whole guest, and the staging name holds the other one (new before the
swap, old after it), so deleting a leftover staging folder is always right. Where
``renameat2`` is missing (other kernels, some file systems) the old folder is first
renamed to ``.replaced-<guest>-<random>``; a crash between the two renames leaves that
folder, which ``recover_replaced`` renames back when the guest's name is empty.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import secrets
import shutil
import stat
from pathlib import Path

log = logging.getLogger(__name__)

REPLACED_PREFIX = ".replaced-"
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """True when done; False when renameat2 or the flag is unsupported here."""
    if _renameat2 is None:
        return False
    rc = _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def install_folder(new: Path, dest: Path, *, replace: bool) -> Path | None:
    """Rename ``new`` to ``dest``. An existing ``dest`` raises ``FileExistsError`` unless
    ``replace``; then it is swapped out and its new path returned for the caller to delete
    (None when there was none)."""
    if not os.path.lexists(dest):
        if _rename2(new, dest, _RENAME_NOREPLACE):
            return None
        os.rename(new, dest)  # fallback: no guard against a racing creator
        return None
    if not replace:
        raise FileExistsError(errno.EEXIST, "already exists", str(dest))
    if _rename2(new, dest, _RENAME_EXCHANGE):
        return new
    aside = dest.with_name(f"{REPLACED_PREFIX}{dest.name}-{secrets.token_hex(4)}")
    os.rename(dest, aside)
    os.rename(new, dest)
    return aside


def recover_replaced(dest: Path) -> list[Path]:
    """After a crash in the fallback swap: put an old folder back if ``dest`` is missing,
    and return the leftover ``.replaced-`` folders of ``dest`` that can now be deleted."""
    leftovers = sorted(dest.parent.glob(f"{REPLACED_PREFIX}{dest.name}-*"))
    if leftovers and not os.path.lexists(dest):
        log.warning("putting %s back in place of the missing %s", leftovers[-1], dest)
        os.rename(leftovers.pop(), dest)
    return leftovers


def remove_tree(path: Path) -> None:
    """Delete ``path``, even where extracted directories have taken away write permission
    (a second pass gives every directory u+rwx first). Symlinks are never followed."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path):
        os.unlink(path)
        return
    try:
        shutil.rmtree(path)
    except OSError:
        for folder, dirs, _files in os.walk(path):
            for d in dirs:
                full = os.path.join(folder, d)
                if not os.path.islink(full):
                    os.chmod(full, stat.S_IRWXU)
        shutil.rmtree(path)
