"""The PVE emulators accept what the real tools accept and reject what they reject, with the
messages, streams and exit codes of shared/reference/pve.md (section numbers below)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

import pytest

from tests.fakes.pve.cluster import BIN


def tool(name: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / name), *args], input=stdin, capture_output=True,
                          env={**os.environ, "LC_ALL": "C"}, timeout=60)


def err(r: subprocess.CompletedProcess) -> list[str]:
    return r.stderr.decode().splitlines()


# ---- 3.2: errors before any task --------------------------------------------------------------


def test_unknown_option_bad_value_and_missing_arguments(pve):
    r = tool("vzdump", "101", "--bogus", "1")
    assert (r.returncode, err(r)) == (255, ["Unknown option: bogus", "400 unable to parse option",
                                            "vzdump {<vmid>} [OPTIONS]"])
    r = tool("vzdump", "101", "--mode", "fast")
    assert r.returncode == 255 and err(r)[:2] == [
        "400 Parameter verification failed.",
        "mode: value 'fast' does not have a value in the enumeration 'snapshot, suspend, stop'"]
    r = tool("vzdump", "--ionice", "abc", "101")
    assert "ionice: type check ('integer') failed - got 'abc'" in err(r)
    r = tool("vzdump", "--bwlimit", "-1", "101")
    assert "bwlimit: value must have a minimum value of 0" in err(r)
    r = tool("vzdump")
    assert r.returncode == 255 and "vmid: property is missing" in err(r)
    r = tool("vzdump", "101", "--all")
    assert "all: option conflicts with option 'vmid'" in err(r)
    r = tool("vzdump", "99")
    assert "vmid: invalid format - value does not look like a valid VM ID" in err(r)
    r = tool("pct", "restore", "101")
    assert err(r) == ["400 not enough arguments", "pct restore <vmid> <ostemplate> [OPTIONS]"]
    r = tool("pct", "config", "101", "102")
    assert err(r)[0] == "400 too many arguments"
    r = tool("vzdump", "101", "--stdexcludes", "maybe")
    assert err(r)[0] == "400 unable to parse boolean option"


def test_single_dash_options_and_any_case_booleans(pve):
    r = tool("vzdump", "101", "-stdout", "YES", "-compress", "0")
    assert r.returncode == 0, err(r)
    assert tarfile.open(fileobj=io.BytesIO(r.stdout)).getnames()[0] == "./etc/vzdump/pct.conf"


def test_version_dependent_options(pve):
    assert tool("vzdump", "101", "--maxfiles", "2", "--dumpdir", "/var/lib/vz/dump").returncode == 0
    (pve.shared / ".fake/version").write_text("9.1\n")
    r = tool("vzdump", "101", "--maxfiles", "2")
    assert r.returncode == 255 and err(r)[0] == "Unknown option: maxfiles"
    assert tool("vzdump", "101", "--fleecing", "0", "--stdout", "1").returncode == 0
    (pve.shared / ".fake/version").write_text("8.1\n")
    assert err(tool("vzdump", "101", "--fleecing", "0"))[0] == "Unknown option: fleecing"


# ---- 4: vzdump --------------------------------------------------------------------------------


def test_stdout_stream_log_lines_and_sidecar(pve):
    r = tool("vzdump", "101", "--stdout", "1", "--compress", "0", "--mode", "snapshot")
    assert r.returncode == 0
    lines = err(r)
    assert lines[0].startswith("INFO: starting new backup job: vzdump 101 ")
    assert {"--stdout 1", "--compress 0", "--mode snapshot"} <= set(
        " ".join(p) for p in zip(lines[0].split()[7::2], lines[0].split()[8::2]))
    order = ["INFO: Starting Backup of VM 101 (lxc)", "INFO: status = running",
             "INFO: CT Name: web1", "INFO: backup mode: snapshot", "INFO: ionice priority: 7",
             "INFO: create storage snapshot 'vzdump'", "INFO: sending archive to stdout",
             "INFO: cleanup temporary 'vzdump' snapshot", "INFO: Backup job finished successfully"]
    assert [line for line in lines if line in order] == order
    assert any(line.startswith("INFO: Total bytes written: ") for line in lines)
    names = tarfile.open(fileobj=io.BytesIO(r.stdout)).getnames()
    assert names[0] == "./etc/vzdump/pct.conf" and "./home/demo/f000.txt" in names
    assert "./tmp/scratch" not in names  # stdexcludes
    logs = list((pve.root("pve1") / "var/lib/vz/dump").glob("vzdump-lxc-101-*.log"))
    assert len(logs) == 1 and " INFO: Starting Backup of VM 101 (lxc)" in logs[0].read_text()
    tasks = list((pve.root("pve1") / "var/log/pve/tasks").rglob("UPID:pve1:*:vzdump::root@pam:"))
    assert tasks and tasks[0].read_text().endswith("TASK OK\n")


def test_vm_stream_is_vma_and_stopped_guest_uses_stop_mode(pve):
    r = tool("vzdump", "200", "--stdout", "--compress", "0", "--mode", "snapshot")
    assert r.returncode == 0 and r.stdout[:4] == b"VMA\0"
    assert "INFO: backup mode: stop" in err(r)
    assert "INFO: starting kvm to execute backup task" in err(r)


def test_stdout_needs_exactly_one_guest_and_other_nodes_are_skipped(pve):
    r = tool("vzdump", "101", "200", "--stdout")
    assert (r.returncode, err(r)) == (255, ["you can only backup a single VM with option --stdout"])
    r = tool("vzdump", "102", "--stdout")  # ct102 lives on pve2: no task, no output, exit 0
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")
    r = tool("vzdump", "101", "--node", "pve2")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")


def test_locked_guest_fails_with_job_errors(pve):
    conf = pve.conf_path("pve1", "ct", 101)
    conf.write_text(conf.read_text() + "lock: backup\n")
    r = tool("vzdump", "101", "--stdout")
    assert r.returncode == 255
    lines = err(r)
    assert "ERROR: Backup of VM 101 failed - CT is locked (backup)" in lines
    assert lines[-2:] == ["INFO: Backup job finished with errors", "job errors"]
    assert r.stdout == b""


def test_global_lock_timeout(pve):
    import fcntl

    path = pve.root("pve1") / "var/run/vzdump.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        r = tool("vzdump", "101", "--stdout", "--lockwait", "0")
    assert r.returncode == 255
    assert err(r)[-2:] == ["ERROR: can't acquire lock '/var/run/vzdump.lock' (wait = 0)",
                           "got unexpected control message: "]


# ---- 5: hook scripts ---------------------------------------------------------------------------


def hook(tmp_path, fail_phase: str = "") -> tuple[str, str]:
    record = tmp_path / "hook.log"
    script = tmp_path / "hook.sh"
    script.write_text(f"""#!/bin/sh
echo "$* ENV=$(tr '\\0' ' ' < /proc/$$/environ)" >> {record}
echo "HOOK: $*"
[ "$1" = "{fail_phase}" ] && exit 3
exit 0
""")
    script.chmod(0o755)
    return str(script), str(record)


def test_hook_phases_arguments_and_environment(pve, tmp_path):
    script, record = hook(tmp_path)
    r = tool("vzdump", "101", "--stdout", "--script", script, "--mode", "snapshot")
    assert r.returncode == 0, err(r)
    calls = open(record).read().splitlines()
    assert [c.split(" ENV=")[0] for c in calls] == [
        "job-init", "job-start", "backup-start snapshot 101", "pre-stop snapshot 101",
        "pre-restart snapshot 101", "post-restart snapshot 101", "backup-end snapshot 101",
        "log-end snapshot 101", "job-end"]
    env = sorted(calls[2].split(" ENV=")[1].split())  # an empty environment plus these (5)
    assert env == ["DUMPDIR=/var/lib/vz/dump", "HOSTNAME=web1",
                   f"LOGFILE=/var/lib/vz/dump/{env[2].split('/')[-1]}", "STOREID=local",
                   "TARGET=-", "VMTYPE=lxc"]
    assert sorted(calls[0].split(" ENV=")[1].split()) == ["STOREID=local"]  # job-init
    assert "INFO: HOOK: backup-start snapshot 101" in err(r)


def test_hook_failure_effects_by_phase(pve, tmp_path):
    script, _ = hook(tmp_path, "job-init")
    r = tool("vzdump", "101", "--stdout", "--script", script)
    assert (r.returncode, err(r)[-1]) == (255, f"command '{script} job-init' failed: exit code 3")
    script, _ = hook(tmp_path, "backup-start")
    r = tool("vzdump", "101", "--stdout", "--script", script)
    assert r.returncode == 255 and (
        f"ERROR: Backup of VM 101 failed - command '{script} backup-start snapshot 101' failed: "
        "exit code 3") in err(r) and "INFO: HOOK: backup-abort snapshot 101" in err(r)
    script, _ = hook(tmp_path, "backup-end")  # the archive was sent, yet the guest fails
    r = tool("vzdump", "101", "--stdout", "--script", script)
    assert r.returncode == 255 and len(r.stdout) > 10240
    script, _ = hook(tmp_path, "log-end")
    r = tool("vzdump", "101", "--stdout", "--script", script)
    assert r.returncode == 0 and err(r)[-1] == "Task finished with 1 warning(s)!"
    script, _ = hook(tmp_path, "job-start")
    r = tool("vzdump", "101", "--stdout", "--script", script)
    assert r.returncode == 255 and "INFO: HOOK: job-abort" in err(r)
    r = tool("vzdump", "101", "--stdout", "--script", str(tmp_path / "missing"))
    assert err(r)[-1] == f"Error: The hook script '{tmp_path / 'missing'}' does not exist."


# ---- 7: restore ---------------------------------------------------------------------------------


def dump(vmid: int) -> bytes:
    r = tool("vzdump", str(vmid), "--stdout", "--compress", "0")
    assert r.returncode == 0, err(r)
    return r.stdout


def test_pct_restore_from_stdin(pve):
    data = dump(101)
    r = tool("pct", "restore", "105", "-", stdin=data)
    assert (r.returncode, err(r)) == (255, ["restore from pipe requires rootfs parameter"])
    r = tool("pct", "restore", "101", "-", "--rootfs", "local-lvm:8", stdin=data)
    assert (r.returncode, err(r)) == (255, ["CT 101 already exists on node 'pve1'"])
    r = tool("pct", "restore", "102", "-", "--rootfs", "local-lvm:8", "--force", stdin=data)
    assert err(r) == ["CT 102 already exists on node 'pve2'"]  # --force: local guests only
    r = tool("pct", "restore", "101", "-", "--rootfs", "local-lvm:8", "--force", stdin=data)
    assert err(r) == ["can't overwrite running container"]
    r = tool("pct", "restore", "105", "-", "--rootfs", "local-lvm:8", "--hostname", "web5",
             stdin=data)
    assert r.returncode == 0, err(r)
    out = r.stdout.decode().splitlines()
    assert out[:2] == ['  Logical volume "vm-105-disk-0" created.', "extracting archive from STDIN"]
    assert "merging backed-up and given configuration.." in out
    conf = pve.conf(pve1 := "pve1", "ct", 105)
    assert conf["hostname"] == "web5" and conf["rootfs"] == "local-lvm:vm-105-disk-0,size=8G"
    rootfs = pve.volume(pve1, "local-lvm:vm-105-disk-0")
    assert (rootfs / "home/demo/f000.txt").read_bytes() == \
        (pve.volume(pve1, "local-lvm:vm-101-disk-0") / "home/demo/f000.txt").read_bytes()
    assert not (rootfs / "etc/vzdump").exists()


def test_pct_restore_interrupted_removes_what_it_created(pve):
    data = dump(101)
    proc = subprocess.Popen([str(BIN / "pct"), "restore", "106", "-", "--rootfs", "local-lvm:8"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(data[:20000])
    proc.stdin.flush()
    import time
    deadline = time.monotonic() + 10
    while not pve.conf_path("pve1", "ct", 106).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.terminate()
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 255
    assert stderr.decode().strip() == "unable to restore CT 106 - received interrupt"
    assert not pve.conf_path("pve1", "ct", 106).exists()
    assert not pve.volume("pve1", "local-lvm:vm-106-disk-0").exists()


def test_qmrestore_roundtrip_and_damage(pve):
    data = dump(200)
    r = tool("qmrestore", "-", "200", stdin=data)
    assert err(r) == ["unable to restore VM 200 - VM 200 already exists on node 'pve1'"]
    r = tool("qmrestore", "-", "201", "--unique", stdin=data)
    assert r.returncode == 0, err(r)
    assert "new volume ID is 'local-lvm:vm-201-disk-0'" in r.stdout.decode()
    assert pve.volume("pve1", "local-lvm:vm-201-disk-0").read_bytes() == \
        pve.volume("pve1", "local-lvm:vm-200-disk-0").read_bytes()
    conf = pve.conf("pve1", "vm", 201)
    assert conf["net0"] != pve.conf("pve1", "vm", 200)["net0"]
    assert conf["net0"].startswith("virtio=BC:24:11:")
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 1
    r = tool("qmrestore", "-", "202", stdin=bytes(damaged))
    assert r.returncode == 255
    assert "WARN: error before or during data restore, some or all disks were not completely " \
           "restored. VM 202 state is NOT cleaned up." in r.stdout.decode()
    assert pve.conf("pve1", "vm", 202) == {"lock": "create"}  # left behind, as documented
    r = tool("qmrestore", "-", "203", stdin=data[:len(data) // 2])
    assert r.returncode == 255 and "incomplete" in r.stderr.decode()


# ---- 8, 10: snapshots, config, pvesh ----------------------------------------------------------


def test_snapshot_rules(pve):
    assert tool("pct", "snapshot", "101", "before").returncode == 0
    r = tool("pct", "snapshot", "101", "before")
    assert (r.returncode, err(r)) == (255, ["snapshot name 'before' already used"])
    assert err(tool("pct", "snapshot", "101", "vzdump")) == [
        "unable to use snapshot name 'vzdump' (reserved name)"]
    assert err(tool("pct", "rollback", "101", "nosuch")) == ["snapshot 'nosuch' does not exist"]
    assert err(tool("pct", "snapshot", "999", "x1")) == [
        "Configuration file 'nodes/pve1/lxc/999.conf' does not exist"]
    out = tool("pct", "listsnapshot", "101").stdout.decode().splitlines()
    assert out[0].startswith("`-> before") and out[1].startswith(" `-> current")
    assert out[1].endswith("You are here!")
    assert tool("pct", "delsnapshot", "101", "before").returncode == 0
    assert "parent" not in pve.conf("pve1", "ct", 101)


def test_pvesh(pve):
    import json

    r = tool("pvesh", "get", "/cluster/resources", "--type", "vm", "--output-format", "json")
    entries = json.loads(r.stdout)
    assert r.stdout.count(b"\n") == 1
    assert [(e["id"], e["node"], e["status"]) for e in entries] == [
        ("lxc/101", "pve1", "running"), ("lxc/102", "pve2", "stopped"), ("qemu/200", "pve1", "stopped")]
    r = tool("pvesh", "get", "/nosuch", "--output-format", "json")
    assert (r.returncode, err(r)) == (255, ["no 'get' handler for '/nosuch'"])
    (pve.shared / ".fake/version").write_text("8.1\n")
    lxc = json.loads(tool("pvesh", "get", "/nodes/pve1/lxc", "--output-format", "json").stdout)
    assert lxc[0]["vmid"] == "101"  # a string up to pve-container 5.0.9 (10.1)


@pytest.mark.parametrize("tool_name", ["pvesh", "vzdump", "pct", "qm", "qmrestore"])
def test_every_tool_needs_its_state_directory(tool_name, monkeypatch):
    monkeypatch.delenv("PVE_FAKE_ROOT", raising=False)
    r = tool(tool_name, "get" if tool_name == "pvesh" else "list", "/x")
    assert r.returncode == 255


def test_vzdump_conf_applies_to_stdout_runs_unless_overridden(pve):
    (pve.root("pve1") / "etc/vzdump.conf").write_text("# defaults\ncompress: zstd\nmode: stop\n")
    r = tool("vzdump", "101", "--stdout")
    assert r.returncode == 0 and r.stdout[:4] == b"\x28\xb5\x2f\xfd"  # zstd: the file applies
    assert "INFO: backup mode: stop" in err(r)
    r = tool("vzdump", "101", "--stdout", "--compress", "0", "--mode", "snapshot")
    assert tarfile.open(fileobj=io.BytesIO(r.stdout)).getnames()[0] == "./etc/vzdump/pct.conf"
    assert "INFO: backup mode: snapshot" in err(r)


def test_archive_file_and_dat_while_writing(pve):
    r = tool("vzdump", "200", "--dumpdir", "/var/lib/vz/dump", "--compress", "zstd")
    assert r.returncode == 0, err(r)
    dump = pve.root("pve1") / "var/lib/vz/dump"
    archives = list(dump.glob("vzdump-qemu-200-*.vma.zst"))
    assert len(archives) == 1 and not list(dump.glob("*.dat"))
    assert any(line.startswith("INFO: archive file size: ") for line in r.stdout.decode().splitlines())


def test_storage_full_fails_the_guest_and_removes_the_dat(pve):
    (pve.root("pve1") / "var/lib/fakepve").mkdir(parents=True, exist_ok=True)
    (pve.root("pve1") / "var/lib/fakepve/dump-free").write_text("20000\n")
    r = tool("vzdump", "101", "--dumpdir", "/var/lib/vz/dump")
    out = r.stdout.decode().splitlines()
    assert r.returncode == 255 and err(r) == ["job errors"]
    assert "INFO: tar: -: Cannot write: No space left on device" in out
    assert any(line.startswith("ERROR: Backup of VM 101 failed - command 'set -o pipefail && tar cpf - ")
               and line.endswith("failed: exit code 2") for line in out)
    dump = pve.root("pve1") / "var/lib/vz/dump"
    assert not list(dump.glob("*.dat")) and not list(dump.glob("*.tar"))
    assert list(dump.glob("vzdump-lxc-101-*.log"))  # the sidecar exists for failures too
    r = tool("vzdump", "200", "--dumpdir", "/var/lib/vz/dump")
    assert "ERROR: Backup of VM 200 failed - job failed with err -28 - No space left on device" in \
        r.stdout.decode().splitlines()


def test_pct_mount_locks_and_unmount_unlocks_ct_only(pve):
    r = tool("pct", "mount", "101")
    out = r.stdout.decode().strip()
    assert r.returncode == 0 and out.startswith("mounted CT 101 in '")
    rootdir = out.split("'")[1]
    assert os.path.isfile(os.path.join(rootdir, "etc/hostname"))
    assert pve.conf("pve1", "ct", 101)["lock"] == "mounted"
    r = tool("pct", "mount", "101")
    assert (r.returncode, err(r)) == (255, ["CT is locked (mounted)"])
    assert tool("pct", "unmount", "101").returncode == 0
    assert "lock" not in pve.conf("pve1", "ct", 101) and not os.path.lexists(rootdir)
    r = tool("qm", "mount", "200")
    assert r.returncode == 255 and err(r) == ["unknown command 'qm mount'"]
