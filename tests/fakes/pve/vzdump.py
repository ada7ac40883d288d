"""Fake ``vzdump`` (pve.md 4, 5, 6): options, global lock, guest selection, hook scripts,
per-guest log lines, ``--stdout`` archives (GNU tar for CTs, ``vma`` for VMs), the ``.log``
sidecar. Not emulated: storages as targets (only ``--stdout`` and ``--dumpdir`` write
archives), compression other than 0, PBS, notifications, pruning."""

from __future__ import annotations

import errno
import fcntl
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import state
from .cli import Command, Die, Opt, parse
from .tasks import NoStatus, Task, TaskError, run_task
from .vma import write_vma

PRUNE = r"(keep-all=[01]|keep-(last|hourly|daily|weekly|monthly|yearly)=\d+)(,(keep-all=[01]|keep-(last|hourly|daily|weekly|monthly|yearly)=\d+))*"


def command() -> Command:
    major, minor = state.version()
    o = {
        "all": Opt("bool"), "exclude": Opt("vmidlist"), "pool": Opt("str"), "node": Opt("str"),
        "mode": Opt("enum", ("snapshot", "suspend", "stop")),
        "compress": Opt("enum", ("0", "1", "gzip", "lzo", "zstd")),
        "pigz": Opt("int"), "zstd": Opt("int"), "dumpdir": Opt("str"), "storage": Opt("str"),
        "stdout": Opt("bool"), "tmpdir": Opt("str"), "bwlimit": Opt("int", minimum=0),
        "ionice": Opt("int", minimum=0, maximum=8), "exclude-path": Opt("str", array=True),
        "stdexcludes": Opt("bool"), "mailto": Opt("str"),
        "mailnotification": Opt("enum", ("always", "failure")),
        "notes-template": Opt("str", maxlen=1024), "protected": Opt("bool"),
        "prune-backups": Opt("str", pattern=PRUNE), "remove": Opt("bool"),
        "script": Opt("str"), "lockwait": Opt("int", minimum=0), "stopwait": Opt("int", minimum=0),
        "stop": Opt("bool"), "quiet": Opt("bool"), "performance": Opt("str"),
        "pbs-change-detection-mode": Opt("enum", ("legacy", "data", "metadata")),
        "job-id": Opt("str", pattern=r"\S+", maxlen=50),
    }
    if (major, minor) >= (8, 1):
        o["notification-mode"] = Opt("enum", ("auto", "legacy-sendmail", "notification-system"))
    if (major, minor) >= (8, 2):
        o["fleecing"] = Opt("str", pattern=r"(enabled=)?[01](,storage=\S+)?")
    if major < 9:
        o["maxfiles"] = Opt("int", minimum=1)
    return Command("vzdump {<vmid>} [OPTIONS]", ("vmid*",), o)


def main(argv: list[str]) -> int:
    pos, given = parse(command(), argv)
    opts = {**_defaults(), **given}  # the command line wins over /etc/vzdump.conf (4.1)
    words = [v for word in pos["vmid"] for v in word.replace(",", " ").split()]
    if not all(state.VMID.match(v) for v in words):
        raise Die("400 Parameter verification failed.",
                  "vmid: invalid format - value does not look like a valid VM ID", command().usage)
    ids = [int(v) for v in words]
    problems = [f"{k}: option conflicts with option 'vmid'"
                for k in ("all", "exclude", "pool") if ids and k in opts]
    if not ids and not (opts.get("all") or "pool" in opts or opts.get("stop") or "exclude" in opts):
        problems.append("vmid: property is missing")
    if problems:
        raise Die("400 Parameter verification failed.", *problems, command().usage)
    if opts.get("stdout") and len(ids) != 1:
        raise Die("you can only backup a single VM with option --stdout")
    if "node" in opts and opts["node"] != state.node_name():
        return 0
    here, external = _select(ids, opts)
    if not here:
        return 0
    return run_task("vzdump", "", lambda t: Job(t, here, external, opts, argv).run(),
                    to_stderr=bool(opts.get("stdout")))


def _defaults() -> dict:
    """``/etc/vzdump.conf``: ``option: value`` lines and ``#`` comments; they apply to every
    run, ``--stdout`` runs included (pve.md 4.1, pitfall 9)."""
    try:
        text = (state.root() / "etc/vzdump.conf").read_text()
    except FileNotFoundError:
        return {}
    argv = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            key, _, value = line.partition(":")
            argv += [f"--{key.strip()}", value.strip()]
    return parse(command(), argv)[1]


COMPRESSORS = {"1": (["lzop"], ".lzo"), "lzo": (["lzop"], ".lzo"),
               "gzip": (["gzip", "--rsyncable"], ".gz"), "zstd": (["zstd", "--threads=1"], ".zst")}


def _select(ids: list[int], opts: dict) -> tuple[list[int], list[int]]:
    guests = state.cluster_guests()
    me = state.node_name()
    if opts.get("all") or "exclude" in opts:
        excluded = set(opts.get("exclude") or [])
        return sorted(v for v, (n, _) in guests.items() if n == me and v not in excluded), []
    if "pool" in opts:
        members = [v for v, p in state.pools().items() if p == opts["pool"]]
        return (sorted(v for v in members if guests.get(v, (me,))[0] == me),
                sorted(v for v in members if guests.get(v, (me,))[0] != me))
    here = sorted(v for v in set(ids) if v not in guests or guests[v][0] == me)
    return here, sorted(v for v in set(ids) if v in guests and guests[v][0] != me)


class GuestFailed(Exception):
    pass


class Job:
    def __init__(self, task: Task, vmids: list[int], external: list[int], opts: dict,
                 argv: list[str]):
        self.t, self.vmids, self.external, self.opts, self.argv = task, vmids, external, opts, argv
        self.stdout = bool(opts.get("stdout"))
        self.errors = 0
        self.guest_log: list[str] = []

    # ---- the job ------------------------------------------------------------------------

    def run(self) -> None:
        if "script" in self.opts:
            self.hook("job-init")  # a failure here is the task's error as is (pve.md 5)
        self.t.info(f"starting new backup job: {self._cmdline()}")
        if self.external:
            self.t.info(f"skip external VMs: {', '.join(map(str, self.external))}")
        lock = self._global_lock()
        try:
            self._check_dirs()
            try:
                if "script" in self.opts:
                    self.hook("job-start")
                for vmid in self.vmids:
                    self.backup_guest(vmid)
                if "script" in self.opts:
                    self.hook("job-end")
            except TaskError as e:
                self.t.error(f"Backup job failed - {e}")
                if "script" in self.opts:
                    try:
                        self.hook("job-abort")
                    except TaskError as e2:
                        self.t.warn(str(e2))
                raise
        finally:
            os.close(lock)
        if self.errors:
            self.t.info("Backup job finished with errors")
            raise TaskError("job errors")
        self.t.info("Backup job finished successfully")

    def _cmdline(self) -> str:
        parts = [f"--{k} {shlex.quote(self._show(v))}" for k, v in self.opts.items()
                 if not isinstance(v, list)]
        parts += [f"--{k} {shlex.quote(x)}" for k, v in self.opts.items() if isinstance(v, list)
                  for x in v]
        random.shuffle(parts)  # Perl hash order: random on every run (pve.md 6.2)
        return " ".join(["vzdump", *map(str, self.vmids), *parts])

    @staticmethod
    def _show(v: object) -> str:
        return ("1" if v else "0") if isinstance(v, bool) else str(v)

    def _global_lock(self) -> int:
        path = state.root() / "var/run/vzdump.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            (state.root() / "var/run/vzdump.pid").write_text(self.t.upid + "\n")
            return fd
        except BlockingIOError:
            pass
        wait = int(self.opts.get("lockwait", 180))
        if wait == 0:
            self.t.error("can't acquire lock '/var/run/vzdump.lock' (wait = 0)")
            raise NoStatus()
        self.t.info("trying to get global lock - waiting...")
        deadline = time.monotonic() + wait * 60
        while time.monotonic() < deadline:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.t.info("got global lock")
                return fd
            except BlockingIOError:
                time.sleep(0.2)
        self.t.error("can't acquire lock '/var/run/vzdump.lock' - got timeout")
        raise NoStatus()

    def _check_dirs(self) -> None:
        if "storage" in self.opts and "dumpdir" in self.opts:
            raise TaskError("cannot use options 'storage' and 'dumpdir' at the same time")
        if "storage" in self.opts and self.stdout:
            raise TaskError("cannot use options 'storage' and 'stdout' at the same time")
        if "dumpdir" in self.opts and not (state.root() / self.opts["dumpdir"].lstrip("/")).is_dir():
            raise TaskError(f"dumpdir '{self.opts['dumpdir']}' does not exist")
        if "tmpdir" in self.opts and not (state.root() / self.opts["tmpdir"].lstrip("/")).is_dir():
            raise TaskError(f"tmpdir '{self.opts['tmpdir']}' does not exist")
        if "storage" in self.opts:
            st = state.storages().get(self.opts["storage"])
            if st is None:
                raise TaskError(f"could not activate storage '{self.opts['storage']}': "
                                f"storage '{self.opts['storage']}' does not exist")
            if "backup" not in st.content:
                raise TaskError(f"can't use storage '{st.id}' for backups - wrong content type")

    def dumpdir(self) -> str:
        if "dumpdir" in self.opts:
            return self.opts["dumpdir"]
        st = state.storages()[self.opts.get("storage", "local")]
        return f"{st.path}/dump"

    # ---- hooks (pve.md 5) ----------------------------------------------------------------

    def hook(self, phase: str, mode: str | None = None, vmid: int | None = None,
             env: dict[str, str] | None = None) -> None:
        script = self.opts["script"]
        args = [phase] + ([mode, str(vmid)] if mode else [])
        shown = " ".join([script, *args])
        if not os.path.exists(script):
            raise TaskError(f"Error: The hook script '{script}' does not exist.")
        if not os.access(script, os.X_OK):
            raise TaskError(f"Error: The hook script '{script}' is not executable.")
        full = {"DUMPDIR": self.dumpdir() if phase != "job-init" or "dumpdir" in self.opts else None,
                "STOREID": None if "dumpdir" in self.opts else self.opts.get("storage", "local"),
                **(env or {})}
        clean = {k: v for k, v in full.items() if v}
        proc = subprocess.run([script, *args], env=clean, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            self.t.info(line)
            if vmid is not None and phase != "log-end":
                self._glog(f"INFO: {line}")
        if proc.returncode != 0:
            raise TaskError(f"command '{shown}' failed: exit code {proc.returncode}")

    # ---- one guest -------------------------------------------------------------------------

    def _glog(self, line: str) -> None:
        self.guest_log.append(f"{state.local_time()} {line}")

    def ginfo(self, msg: str) -> None:
        self.t.info(msg)
        self._glog(f"INFO: {msg}")

    def backup_guest(self, vmid: int) -> None:
        self.guest_log = []
        conf = state.load(vmid)
        type_ = conf.type if conf else "qemu"
        stamp = time.strftime("%Y_%m_%d-%H_%M_%S")
        base = f"vzdump-{type_}-{vmid}-{stamp}"
        ext = "tar" if type_ == "lxc" else "vma"
        if str(self.opts.get("compress", "0")) != "0":
            ext += COMPRESSORS[str(self.opts["compress"])][1]
        env = {"VMTYPE": type_, "HOSTNAME": None}
        started = time.monotonic()
        mode = None
        self.ginfo(f"Starting Backup of VM {vmid} ({type_})")
        self.ginfo(f"Backup started at {state.local_time()}")
        try:
            if conf is None:
                raise GuestFailed(f"unable to find VM '{vmid}'")
            running = state.status(vmid) == "running"
            env["HOSTNAME"] = conf.values.get("hostname" if type_ == "lxc" else "name")
            env["TARGET"] = "-" if self.stdout else f"{self.dumpdir()}/{base}.{ext}"
            env["LOGFILE"] = f"{self.dumpdir()}/{base}.log"
            self.ginfo(f"status = {'running' if running else 'stopped'}")
            if "lock" in conf.values:
                word = "CT" if type_ == "lxc" else "VM"
                raise GuestFailed(f"{word} is locked ({conf.values['lock']})")
            self._describe(conf)
            mode = self.opts.get("mode", "snapshot") if running else "stop"
            self.ginfo(f"backup mode: {mode}")
            if self.opts.get("bwlimit"):
                self.ginfo(f"bandwidth limit: {self.opts['bwlimit']} KiB/s")
            self.ginfo(f"ionice priority: {self.opts.get('ionice', 7)}")
            self._with_lock(conf, lambda: self._mode_and_archive(conf, mode, running, env, base, ext))
            self.ginfo(f"Finished Backup of VM {vmid} ({_hms(time.monotonic() - started)})")
            self.ginfo(f"Backup finished at {state.local_time()}")
        except (GuestFailed, TaskError, OSError) as e:
            self.errors += 1
            self.t.error(f"Backup of VM {vmid} failed - {e}")
            self._glog(f"ERROR: Backup of VM {vmid} failed - {e}")
            self.ginfo(f"Failed at {state.local_time()}")
            if "script" in self.opts and mode:
                try:
                    self.hook("backup-abort", mode, vmid, env)
                except TaskError as e2:
                    self.t.warn(str(e2))
        finally:
            self._write_sidecar(base)
            if "script" in self.opts and mode:
                try:
                    self.hook("log-end", mode, vmid, env)
                except TaskError as e2:
                    self.t.warn(str(e2))

    def _describe(self, conf: state.GuestConf) -> None:
        if conf.type == "lxc":
            self.ginfo(f"CT Name: {conf.values.get('hostname', f'CT{conf.vmid}')}")
            self.ginfo("including mount point rootfs ('/') in backup")
        else:
            self.ginfo(f"VM Name: {conf.values.get('name', f'VM{conf.vmid}')}")
            for key, prop in _disks(conf):
                self.ginfo(f"include disk '{key}' '{state.volid_of(prop)}' {state.size_of(prop)}")

    def _with_lock(self, conf: state.GuestConf, body) -> None:  # noqa: ANN001
        conf.values["lock"] = "backup"
        conf.save()
        try:
            body()
        finally:
            fresh = state.load(conf.vmid)
            if fresh is not None:
                fresh.values.pop("lock", None)
                fresh.save()

    def _mode_and_archive(self, conf: state.GuestConf, mode: str, running: bool, env: dict,
                          base: str, ext: str) -> None:
        vmid, hooks = conf.vmid, "script" in self.opts
        if hooks:
            self.hook("backup-start", mode, vmid, env)
        if mode == "stop" and running:
            if hooks:
                self.hook("pre-stop", mode, vmid, env)
            self.ginfo("stopping virtual guest")
            state.set_status(vmid, "stopped")
        elif mode == "suspend":
            if hooks:
                self.hook("pre-stop", mode, vmid, env)
            self.ginfo("suspending guest")
            if hooks:
                self.hook("pre-restart", mode, vmid, env)
            self.ginfo("resuming guest")
            if hooks:
                self.hook("post-restart", mode, vmid, env)
        elif mode == "snapshot":
            if hooks:
                self.hook("pre-stop", mode, vmid, env)
            if conf.type == "lxc":
                self.ginfo("create storage snapshot 'vzdump'")
            if hooks:
                self.hook("pre-restart", mode, vmid, env)
                self.hook("post-restart", mode, vmid, env)
        try:
            if self.stdout:
                self.ginfo("sending archive to stdout")
                out = sys.stdout.buffer
            else:
                target = state.root() / f"{self.dumpdir()}/{base}.{ext}".lstrip("/")
                self.ginfo(f"creating vzdump archive '{self.dumpdir()}/{base}.{ext}'")
                out = _Quota(open(target.with_suffix(".dat"), "wb"))
            try:
                self._archive(conf, out)
            except BrokenPipeError as e:
                raise GuestFailed(f"command 'tar' failed: {e}") from None
            except OSError as e:
                if self.stdout or e.errno != errno.ENOSPC:
                    raise
                out.close()
                target.with_suffix(".dat").unlink()  # removed on failure (4.4)
                if conf.type == "qemu":
                    raise GuestFailed("job failed with err -28 - No space left on device") from None
                self.ginfo("tar: -: Cannot write: No space left on device")
                raise GuestFailed(
                    "command 'set -o pipefail && tar cpf - --totals --one-file-system -p "
                    "--sparse --numeric-owner --acls --xattrs --directory=... ./etc/vzdump/pct.conf "
                    f"... >{self.dumpdir()}/{base}.dat' failed: exit code 2") from None
            if not self.stdout:
                out.close()
                os.replace(target.with_suffix(".dat"), target)
                self.ginfo(f"archive file size: {_size(target.stat().st_size)}")
            if hooks:
                self.hook("backup-end", mode, vmid, env)
        finally:
            if mode == "snapshot" and conf.type == "lxc":
                self.ginfo("cleanup temporary 'vzdump' snapshot")
            if mode == "stop" and running:
                if hooks:
                    self.hook("pre-restart", mode, vmid, env)
                self.ginfo("restarting vm")
                state.set_status(vmid, "running")
                if hooks:
                    self.hook("post-restart", mode, vmid, env)

    def _archive(self, conf: state.GuestConf, out) -> None:  # noqa: ANN001
        """The archive into ``out``, through the compressor when --compress is not 0."""
        method = str(self.opts.get("compress", "0"))
        if method == "0":
            self._tar(conf, out) if conf.type == "lxc" else self._vma(conf, out)
            out.flush()
            return
        out.flush()
        zproc = subprocess.Popen(COMPRESSORS[method][0], stdin=subprocess.PIPE, stdout=out)
        try:
            self._tar(conf, zproc.stdin) if conf.type == "lxc" else self._vma(conf, zproc.stdin)
        finally:
            zproc.stdin.close()
            code = zproc.wait()
        if code != 0:
            raise GuestFailed(f"{COMPRESSORS[method][0][0]} failed - wrong exit status {code}")

    def _tar(self, conf: state.GuestConf, out) -> None:  # noqa: ANN001
        rootfs = state.volume_path(state.volid_of(conf.values["rootfs"]))
        with tempfile.TemporaryDirectory(prefix=f"vzdumptmp{os.getpid()}_") as tmp:
            etc = Path(tmp) / "etc/vzdump"
            etc.mkdir(parents=True)
            saved = {k: v for k, v in conf.values.items()
                     if k not in ("lock", "snapshots", "parent", "pending")}
            (etc / "pct.conf").write_text(state.GuestConf(conf.vmid, "lxc", conf.node,
                                                          conf.description, saved).text())
            excludes = []
            if self.opts.get("stdexcludes", True):
                excludes += ["./tmp/?*", "./var/tmp/?*", "./var/run/?*.pid"]
            for pattern in self.opts.get("exclude-path", []):
                excludes.append(f".{pattern}" if pattern.startswith("/") else pattern)
            argv = ["tar", "cpf", "-", "--totals", "--one-file-system", "-p", "--sparse",
                    "--numeric-owner", "--acls", "--xattrs", f"--directory={tmp}",
                    "./etc/vzdump/pct.conf", f"--directory={rootfs}", "--anchored",
                    "--exclude=./etc/vzdump", *[f"--exclude={e}" for e in excludes], "."]
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                while chunk := proc.stdout.read(1 << 16):
                    self._throttle(len(chunk))
                    out.write(chunk)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            err = proc.stderr.read().decode("utf-8", "replace")
            code = proc.wait()
            for line in err.splitlines():
                self.ginfo(line)
            if code != 0:
                raise GuestFailed(f"command '{shlex.join(argv)}' failed: exit code {code}")

    def _throttle(self, n: int) -> None:
        limit = self.opts.get("bwlimit")
        if limit:
            time.sleep(n / (limit * 1024))

    def _vma(self, conf: state.GuestConf, out) -> None:  # noqa: ANN001
        running = state.status(conf.vmid) == "running"
        if not running:
            self.ginfo("starting kvm to execute backup task")
        text = conf.text() if not conf.sections else state.GuestConf(
            conf.vmid, "qemu", conf.node, conf.description, conf.values, conf.raw).text()
        text = "".join(line + "\n" for line in text.splitlines() if not line.startswith("lock:"))
        maps = "".join(f"#qmdump#map:{k}:drive-{k}:{state.volid_of(p).split(':')[0]}:raw:\n"
                       for k, p in _disks(conf))
        devices = []
        files = []
        for key, prop in _disks(conf):
            path = state.volume_path(state.volid_of(prop))
            f = open(path, "rb")
            files.append(f)
            devices.append((f"drive-{key}", f, path.stat().st_size))
        self.ginfo(f"started backup task '{_uuid()}'")
        if running:
            self.ginfo("resuming VM again")
        begun = time.monotonic()
        try:
            total = write_vma(out, {"qemu-server.conf": (maps + text).encode()}, devices)
        finally:
            for f in files:
                f.close()
        took = time.monotonic() - begun
        self.ginfo(f"100% ({_render(total)} of {_render(total)}) in {int(took)}s, "
                   f"read: {_render(total / max(took, 0.001))}/s, "
                   f"write: {_render(total / max(took, 0.001))}/s")
        self.ginfo(f"transferred {_render(total)} in <1 seconds" if took < 1 else
                   f"transferred {_render(total)} in {int(took)} seconds")
        if not running:
            self.ginfo("stopping kvm after backup task")

    def _write_sidecar(self, base: str) -> None:
        folder = state.root() / self.dumpdir().lstrip("/")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{base}.log").write_text("".join(line + "\n" for line in self.guest_log))
        except OSError:
            pass  # "the copy's result is not checked" (pve.md 4.4)


class _Quota:
    """An archive file on a dump storage whose free space is ``var/lib/fakepve/dump-free``
    bytes (absent: unlimited); going past it is ENOSPC (storage full, pve.md 13). Only the
    uncompressed path honours it."""

    def __init__(self, f):  # noqa: ANN001
        self.f = f
        try:
            self.free = int((state.root() / "var/lib/fakepve/dump-free").read_text())
        except FileNotFoundError:
            self.free = None

    def write(self, data: bytes) -> int:
        if self.free is not None:
            if len(data) > self.free:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.free -= len(data)
        return self.f.write(data)

    def fileno(self) -> int:
        return self.f.fileno()

    def flush(self) -> None:
        self.f.flush()

    def close(self) -> None:
        self.f.close()


def _disks(conf: state.GuestConf) -> list[tuple[str, str]]:
    import re

    return [(k, v) for k, v in sorted(conf.values.items())
            if re.fullmatch(r"(scsi|virtio|sata|ide|efidisk|tpmstate)\d+", k) and "media=cdrom" not in v]


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _size(n: int) -> str:
    """format_size (pve.md 6.3)."""
    if n < 1 << 20:
        return f"{n >> 10}KB"
    if n < 1 << 30:
        return f"{n >> 20}MB"
    if n < 1 << 40:
        return f"{n / (1 << 30):.2f}GB"
    return f"{n / (1 << 40):.2f}TB"


def _render(n: float) -> str:
    """render_bytes: ``1.0 GiB``, ``341.3 MiB``."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.0f} B" if i == 0 else f"{n:.1f} {units[i]}"
