"""vzdump's logs in every documented shape (pve.md 3.3, 6, 14): task log, guest log with
both timestamp styles, notification mail; containers, VMs with the three progress-line
shapes, failures of a guest and of the job."""

from __future__ import annotations

from vzbackup.platforms.vzdumplog import parse_vzdump_log

CT_SNAPSHOT_TASK_LOG = """\
INFO: starting new backup job: vzdump 101 --storage local --mode snapshot --compress zstd --remove 0
INFO: Starting Backup of VM 101 (lxc)
INFO: Backup started at 2026-11-24 02:00:01
INFO: status = running
INFO: CT Name: web1
INFO: including mount point rootfs ('/') in backup
INFO: backup mode: snapshot
INFO: ionice priority: 7
INFO: create storage snapshot 'vzdump'
  Logical volume "snap_vm-101-disk-0_vzdump" created.
INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-lxc-101-2026_11_24-02_00_01.tar.zst'
INFO: Total bytes written: 1395456000 (1.3GiB, 63MiB/s)
INFO: archive file size: 600MB
INFO: cleanup temporary 'vzdump' snapshot
  Logical volume "snap_vm-101-disk-0_vzdump" successfully removed.
INFO: Finished Backup of VM 101 (00:00:22)
INFO: Backup finished at 2026-11-24 02:00:23
INFO: Backup job finished successfully
INFO: notified via target `mail-to-root`
TASK OK
"""


def test_container_snapshot_mode_task_log():
    log = parse_vzdump_log(CT_SNAPSHOT_TASK_LOG.splitlines())
    ct = log.guest(101)
    assert (ct.kind, ct.name, ct.status, ct.mode) == ("lxc", "web1", "running", "snapshot")
    assert ct.archive.endswith("vzdump-lxc-101-2026_11_24-02_00_01.tar.zst")
    assert (ct.archive_size, ct.finished, ct.duration, ct.ok) == ("600MB", True, "00:00:22", True)
    assert '  Logical volume "snap_vm-101-disk-0_vzdump" created.' in ct.other
    assert log.command.startswith("vzdump 101 --storage local")
    assert (log.job, log.task) == ("successfully", "OK")


def vm_log(progress: list[str]) -> list[str]:
    return ["INFO: Starting Backup of VM 200 (qemu)", "INFO: status = running",
            "INFO: VM Name: app", "INFO: include disk 'scsi0' 'local-lvm:vm-200-disk-0' 32G",
            "INFO: backup mode: snapshot", "INFO: ionice priority: 7",
            "INFO: sending archive to stdout",
            "INFO: issuing guest-agent 'fs-freeze' command",
            "INFO: issuing guest-agent 'fs-thaw' command",
            "INFO: started backup task 'a8f6c5b2-0000-4000-8000-000000000000'",
            "INFO: resuming VM again", *progress,
            "INFO: backup is sparse: 12.0 GiB (37%) total zero data",
            "INFO: transferred 32.0 GiB in 95 seconds (344.9 MiB/s)",
            "INFO: Finished Backup of VM 200 (00:01:40)"]


def test_the_three_vm_progress_shapes():
    shapes = {
        "since 2020-08": ["INFO:   5% (1.0 GiB of 20.0 GiB) in 3s, read: 341.3 MiB/s, write: 200.1 MiB/s",
                          "INFO: 100% (20.0 GiB of 20.0 GiB) in 1m 2s, read: 0 B/s, write: 0 B/s"],
        "2020": ["INFO: status: 3% (1.0 GiB of 20.0 GiB), duration 3, read: 341.3 MiB/s, write: 0 B/s",
                 "INFO: status: 100% (20.0 GiB of 20.0 GiB), duration 62, read: 1 MiB/s, write: 1 MiB/s"],
        "2012-2020": ["INFO: status: 1% (214433792/21474836480), sparse 0% (2871296), duration 3, 71/70 MB/s",
                      "INFO: status: 100% (21474836480/21474836480), sparse 37% (8023506944), duration 62, 330/200 MB/s",
                      "INFO: transferred 21474 MB in 62 seconds (346 MB/s)"],
    }
    for era, lines in shapes.items():
        vm = parse_vzdump_log(vm_log(lines)).guest(200)
        assert vm.progress == 100, era
        assert (vm.kind, vm.name, vm.archive, vm.ok) == ("qemu", "app", "-", True), era
        assert not any("%" in line and "sparse:" not in line for line in vm.other), era


def test_a_failed_guest_and_a_job_with_errors():
    text = """\
INFO: starting new backup job: vzdump 101 200 --mode snapshot --storage local
INFO: Starting Backup of VM 101 (lxc)
INFO: Backup started at 2026-11-24 02:00:01
INFO: status = running
INFO: CT Name: web1
INFO: mode failure - some volumes do not support snapshots
INFO: trying 'suspend' mode instead
INFO: backup mode: suspend
INFO: ionice priority: 7
WARN: tar does not match exclusion with a trailing slash '/var/cache/'
ERROR: Backup of VM 101 failed - command 'set -o pipefail && tar cpf - ...' failed: exit code 2
INFO: Failed at 2026-11-24 02:00:09
INFO: Starting Backup of VM 200 (qemu)
ERROR: VM 200 qmp command 'backup' failed - got timeout
ERROR: Backup of VM 200 failed - VM 200 qmp command 'backup' failed - got timeout
INFO: Failed at 2026-11-24 02:01:00
INFO: Backup job finished with errors

TASK ERROR: job errors
"""
    log = parse_vzdump_log(text.splitlines())
    ct, vm = log.guest(101), log.guest(200)
    assert (ct.mode, ct.mode_fallback, ct.ok, ct.finished) == ("suspend", True, False, False)
    assert ct.failure.startswith("command 'set -o pipefail && tar") and ct.warnings == [
        "tar does not match exclusion with a trailing slash '/var/cache/'"]
    assert vm.failure == "VM 200 qmp command 'backup' failed - got timeout"
    assert vm.errors[0] == "VM 200 qmp command 'backup' failed - got timeout"
    assert (log.job, log.task, log.task_error) == ("with errors", "ERROR", "job errors")


def test_job_level_failure_and_warnings_status():
    log = parse_vzdump_log(["INFO: trying to get global lock - waiting...",
                            "ERROR: Backup job failed - can't acquire lock '/var/run/vzdump.lock' - got timeout",
                            "TASK ERROR: can't acquire lock '/var/run/vzdump.lock' - got timeout"])
    assert (log.job, log.job_error) == ("failed", "can't acquire lock '/var/run/vzdump.lock' - got timeout")
    assert log.guests == {} and log.task == "ERROR"
    assert parse_vzdump_log(["TASK WARNINGS: 2"]).task_warnings == 2


def test_guest_logs_with_both_timestamp_styles_and_the_mail_prefix():
    new = ["2026-11-24 02:00:01 INFO: Starting Backup of VM 101 (lxc)",
           "2026-11-24 02:00:01 INFO: backup mode: stop",
           "2026-11-24 02:00:02 INFO: stopping virtual guest",
           "2026-11-24 02:00:20 INFO: Finished Backup of VM 101 (00:00:19)"]
    old = ["Apr 24 07:15:01 INFO: Starting Backup of VM 101 (openvz)",
           "Apr 24 07:15:01 INFO: backup mode: snapshot",
           "Apr  4 07:15:02 INFO: creating archive '/vz/dump/vzdump-openvz-101-2016_04_24-07_15_01.tar'",
           "Apr 24 07:15:30 INFO: Finished Backup of VM 101 (00:00:29)"]
    mail = [f"101: {line}" for line in new]
    for lines, kind, mode in ((new, "lxc", "stop"), (old, "openvz", "snapshot"), (mail, "lxc", "stop")):
        ct = parse_vzdump_log(lines).guest(101)
        assert (ct.kind, ct.mode, ct.ok) == (kind, mode, True), lines[0]
    assert parse_vzdump_log(old).guest(101).archive.endswith("2016_04_24-07_15_01.tar")


def test_older_and_newer_lines_that_change_nothing():
    lines = ["INFO: Starting Backup of VM 200 (qemu)",
             "INFO: update VM 200: -lock backup",  # PVE <= 6.1
             "INFO: creating Proxmox Backup Server archive 'vm/200/2026-11-24T02:00:01Z'",
             "INFO: prune older backups with retention: keep-daily=7, keep-last=3",
             "INFO: pruned 2 backup(s) not covered by keep-retention policy",
             "INFO: remove vzdump snapshot",  # containers before 2020-11
             "INFO: Finished Backup of VM 200 (00:00:40)",
             "INFO: could not notify via target `mail-to-root`: connection refused"]
    vm = parse_vzdump_log(lines).guest(200)
    assert vm.ok and vm.archive == "vm/200/2026-11-24T02:00:01Z"
    assert "update VM 200: -lock backup" in vm.other
