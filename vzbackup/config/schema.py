"""The one declarative schema: every option with its type, default, allowed values,
secret flag and documentation. ``config/vzbackup.example.toml`` documents the same options
and a test keeps the two in step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REQUIRED = object()


@dataclass(frozen=True)
class Option:
    type: str  # "str" | "int" | "bool" | "path" | "list[str]"
    default: Any = REQUIRED
    choices: tuple[Any, ...] | None = None
    secret: bool = False
    minimum: int | None = None
    maximum: int | None = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Section:
    """A fixed table (``[catalog]``) or, with ``named``, a table of named tables (``[nodes.X]``)."""

    options: dict[str, Option]
    named: bool = False
    doc: str = ""


# ---- proxmox platform: nodes.X.pve_* (only with platform = "proxmox") ------------------------

PROXMOX_NODE_OPTIONS: dict[str, Option] = {
    "pve_bin_dir": Option("str", "", doc="proxmox: folder of pvesh, vzdump, pct, qm, qmrestore on "
                                         "the node; empty: found on PATH."),
    "pve_dump_mode": Option("str", "snapshot", choices=("snapshot", "suspend", "stop"),
                            doc="proxmox: vzdump --mode (a stopped guest is always dumped in "
                                "stop mode)."),
    "pve_bwlimit": Option("int", 0, minimum=0, doc="proxmox: vzdump --bwlimit in KiB/s; 0: none."),
    "pve_ionice": Option("int", 7, minimum=0, maximum=8, doc="proxmox: vzdump --ionice (8: idle)."),
    "pve_exclude_path": Option("list[str]", [], doc="proxmox: vzdump --exclude-path globs "
                                                    "(containers only)."),
    "pve_stdexcludes": Option("bool", True, doc="proxmox: vzdump --stdexcludes (skip /tmp/?*, "
                                                "/var/tmp/?*, /var/run/?*.pid)."),
    "pve_tmpdir": Option("str", "", doc="proxmox: vzdump --tmpdir on the node; empty: vzdump's choice."),
    "pve_lockwait": Option("int", 180, minimum=0, doc="proxmox: vzdump --lockwait, minutes to "
                                                      "wait for the node's global vzdump lock."),
    "pve_stopwait": Option("int", 10, minimum=0, doc="proxmox: vzdump --stopwait, minutes to "
                                                     "wait for a guest to stop."),
    "pve_restore_storage": Option("str", "", doc="proxmox: storage for restored disks; empty: "
                                                 "the storage each disk was backed up from."),
    "pve_restore_unique": Option("bool", False, doc="proxmox: restore with --unique (new MAC "
                                                    "addresses)."),
    "pve_restore_start": Option("bool", False, doc="proxmox: start a guest after its restore."),
}

# ---- hook scripts: nodes.X.hook_script (every platform) -------------------------------------

HOOK_NODE_OPTIONS: dict[str, Option] = {
    "hook_script": Option("str", "", doc="vzdump-style hook script on the node, called with "
                                         "vzdump's phases (proxmox: vzdump --script); empty: none."),
}

SCHEMA: dict[str, Section] = {
    "state": Section({
        "dir": Option("path", "/var/lib/vzbackup",
                      doc="Where vzbackup keeps its own state: locks and the SQLite catalogue."),
        "cache_dir": Option("path", "", doc="Cache of chunk ids per repository; default STATE_DIR/cache."),
    }, doc="Local state of this controller."),
    "catalog": Section({
        "url": Option("str", "", secret=False,
                      doc="SQLAlchemy URL of the catalogue; default sqlite:///STATE_DIR/catalog.db. "
                          "PostgreSQL: postgresql+psycopg://USER@HOST/DB (password in ~/.pgpass, not here)."),
    }, doc="The catalogue of guests, restore points, copies and runs."),
    "log": Section({
        "file": Option("path", "", doc="Log file; empty: no log file (messages still go to stderr)."),
        "level": Option("str", "info", choices=("debug", "info", "warning", "error")),
    }),
    "backup": Section({
        "repository": Option("str", "", doc="Name of the repository (under [repositories]) that "
                                            "backups write to; empty only on a host that "
                                            "never backs up (a laptop importing branches)."),
        "labels": Option("list[str]", [], doc="Labels KEY=VALUE added to every restore point."),
        "replicate_to": Option("list[str]", [],
                               doc="Repositories 'vzbackup replicate' copies new restore points to."),
    }, doc="Defaults of 'vzbackup backup'."),
    "nodes": Section({
        "transport": Option("str", "local", choices=("local", "ssh"),
                            doc="How the node is reached: local (this host) or ssh (vzbackup "
                                "installed there runs each job, over SSH)."),
        "platform": Option("str", "directory", choices=("directory", "proxmox", "openvz"),
                           doc="What runs guests on the node: directory (guests are folders under "
                               "root), proxmox (vzdump, pct, qm on a Proxmox VE node) or openvz "
                               "(vzlist/vzctl; private areas under root/private)."),
        "snapshotter": Option("str", "none", choices=("none", "btrfs", "lvm"),
                              doc="How a consistent view is taken before a dump."),
        "root": Option("path", doc="directory platform: the folder holding ct<ID>/ and vm<ID>/ guests "
                                   "(a path on the node); proxmox: the cluster file system, /etc/pve."),
        "host": Option("str", "", doc="ssh: host name or address of the node."),
        "port": Option("int", 22, minimum=1, maximum=65535, doc="ssh: SSH port."),
        "user": Option("str", "root", doc="ssh: remote user (vzdump, pct and LVM need root)."),
        "key_file": Option("path", "", doc="ssh: private key; empty: the SSH agent."),
        "known_hosts": Option("path", "", doc="ssh: known_hosts file; empty: ~/.ssh/known_hosts."),
        "accept_new_host_key": Option("bool", False,
                                      doc="ssh: trust a host key never seen (never a changed one)."),
        "connect_timeout": Option("int", 10, minimum=1, maximum=600,
                                  doc="ssh: seconds to wait for the node to answer a connection."),
        "command_timeout": Option("int", 300, minimum=60, maximum=86400,
                                  doc="ssh: seconds without a word from a running job (progress, "
                                      "or a heartbeat every 20 s) before the node is taken as dead."),
        "vzbackup": Option("str", "vzbackup", doc="ssh: the vzbackup command on the node."),
        "cache_dir": Option("str", "/var/lib/vzbackup/cache",
                            doc="ssh: the node's own cache of chunk ids (a path on the node)."),
        **PROXMOX_NODE_OPTIONS,
        **HOOK_NODE_OPTIONS,
        # ---- LVM snapshots and OpenVZ (snapshotter = "lvm", platform = "openvz") ----
        "lvm_volume": Option("str", "", doc="lvm: the logical volume holding the guests, VG/LV "
                                            "(e.g. pve/vz). Required with snapshotter = \"lvm\"."),
        "lvm_mountpoint": Option("str", "", doc="lvm: where that volume is mounted on the node; "
                                                "empty: root."),
        "lvm_snapshot_size": Option("str", "1G",
                                    doc="lvm: copy-on-write size of a snapshot of a thick volume "
                                        "(lvcreate --size: 1G, 512M); empty: a thin snapshot "
                                        "(thin volumes only)."),
        "lvm_mount_dir": Option("str", "/run/vzbackup/snapshots",
                                doc="lvm: where snapshots are mounted read-only during a dump."),
        "lvm_checkpoint_size": Option("str", "20%",
                                      doc="lvm, thick volume: copy-on-write room of each "
                                          "checkpoint snapshot, a percentage of the volume "
                                          "(20%) or a size (8G)."),
        "lvm_checkpoint_reserve": Option("str", "1G",
                                         doc="lvm, thick volume: free space in the volume group "
                                             "that checkpoints must leave (refused otherwise)."),
        "lvm_thin_pool_limit": Option("int", 80, minimum=1, maximum=100,
                                      doc="lvm, thin volume: refuse a checkpoint while the thin "
                                          "pool's data or metadata is this percent full or more."),
        "openvz_conf_dir": Option("str", "/etc/vz/conf",
                                  doc="openvz: the folder holding the containers' CTID.conf files."),
    }, named=True, doc="Hypervisor nodes, one table each: [nodes.node1]."),
    "repositories": Section({
        "url": Option("str", doc="Where the repository lives: file:///path."),
        "encryption": Option("str", "none", choices=("none", "aes-256-gcm"),
                             doc="aes-256-gcm seals chunks and manifests; chunk ids become keyed."),
        "passphrase_file": Option("path", "", doc="File holding the passphrase (first line)."),
        "passphrase_env": Option("str", "", doc="Environment variable holding the passphrase."),
        "compression_level": Option("int", 3, minimum=1, maximum=19, doc="zstd level for new chunks."),
        "chunk_avg_kib": Option("int", 32, choices=(16, 32, 64, 128, 256, 512, 1024),
                                doc="Average chunk size, fixed when the repository is initialised."),
        "bwlimit_mib": Option("int", 0, minimum=0, doc="MiB/s at most to and from it; 0: no limit."),
        "gc_grace_hours": Option("int", 48, minimum=1, maximum=24 * 366,
                                 doc="Garbage collection deletes a pack only this long after "
                                     "it took it out of the index, and never condemns a pack "
                                     "younger than this: longer than any backup or copy into "
                                     "this repository can run."),
        "key_file": Option("path", "", doc="sftp://: the SSH private key; empty: the SSH agent."),
        "known_hosts": Option("path", "", doc="sftp://: known_hosts file; empty: ~/.ssh/known_hosts."),
        "accept_new_host_key": Option("bool", False,
                                      doc="sftp://: trust a host key never seen (never a changed one)."),
        "connect_timeout": Option("int", 10, minimum=1, maximum=600,
                                  doc="sftp://: seconds to wait for the host to answer."),
        "node": Option("str", "", doc="sftp://: the node (under [nodes]) whose own disk holds it: "
                                      "jobs on that node open it as a local folder."),
        "endpoint_url": Option("str", "", doc="s3://: the endpoint (Ceph RGW, MinIO...); empty: AWS."),
        "region": Option("str", "", doc="s3://: the region; empty: us-east-1."),
        "path_style": Option("bool", True, doc="s3://: path-style addressing (most self-hosted stores)."),
        "credentials_file": Option("path", "",
                                   doc="s3://: AWS-style credentials file; empty: the environment."),
        "sse": Option("str", "", choices=("", "AES256", "aws:kms"),
                      doc="s3://: server-side encryption of every object."),
        "object_lock_days": Option("int", 0, minimum=0, maximum=36500,
                                   doc="s3://: Object Lock retention of every object written, "
                                       "in days; 0: none. The bucket must have Object Lock. "
                                       "Packs new points reference are kept locked that far "
                                       "ahead."),
        "object_lock_mode": Option("str", "GOVERNANCE", choices=("GOVERNANCE", "COMPLIANCE"),
                                   doc="s3://: GOVERNANCE (removable with a bypass permission) "
                                       "or COMPLIANCE (by no one)."),
    }, named=True, doc="Repositories, one table each: [repositories.main]."),
}


# ---- the scheduler (vzbackup daemon, vzbackup run): jobs, retention, daemon, alerts ----------

RETENTION = {
    "keep_last": Option("int", 0, minimum=0, doc="Keep the N newest points (PVE keep-last)."),
    "keep_hourly": Option("int", 0, minimum=0, doc="Keep the newest point of each of N hours."),
    "keep_daily": Option("int", 0, minimum=0, doc="Keep the newest point of each of N days."),
    "keep_weekly": Option("int", 0, minimum=0, doc="Keep the newest point of each of N ISO weeks."),
    "keep_monthly": Option("int", 0, minimum=0, doc="Keep the newest point of each of N months."),
    "keep_yearly": Option("int", 0, minimum=0, doc="Keep the newest point of each of N years."),
}

SCHEMA["jobs"] = Section({
    "schedule": Option("str", doc="When the job runs: a cron expression (minute hour day month "
                                  "weekday), e.g. \"30 1 * * *\"."),
    "timezone": Option("str", "UTC", doc="Time zone of the schedule and of retention periods "
                                         "(an IANA name such as Europe/Berlin)."),
    "enabled": Option("bool", True, doc="false: the daemon does not schedule it ('run' still can)."),
    "guests": Option("list[str]", [], doc="Guests by ct<ID>, vm<ID>, VMID or name."),
    "tags": Option("list[str]", [], doc="Guests carrying any of these tags."),
    "pools": Option("list[str]", [], doc="Guests in any of these pools."),
    "nodes": Option("list[str]", [], doc="Every guest on these nodes."),
    "all": Option("bool", False, doc="Every guest on every node."),
    "exclude": Option("list[str]", [], doc="Guests never taken, whatever selected them."),
    "mode": Option("str", "snapshot", choices=("snapshot", "suspend", "stop"),
                   doc="How a running guest is dumped (vzdump's --mode); recorded as a label."),
    "repository": Option("str", "", doc="Repository to back up to; empty: backup.repository."),
    "replicate_to": Option("list[str]", [], doc="Repositories new points are copied to."),
    **RETENTION,
    "rpo_hours": Option("int", 26, minimum=1, maximum=24 * 366,
                        doc="Recovery point objective: a guest whose newest good point is older "
                            "is past its RPO (status, alerts)."),
    "verify_after": Option("str", "quick", choices=("none", "quick", "full"),
                           doc="Verify the copies a run wrote, right after it."),
    "verify_schedule": Option("str", "", doc="Cron expression for re-verifying every copy of "
                                             "the job's guests; empty: never."),
    "verify_level": Option("str", "full", choices=("quick", "full"),
                           doc="quick: every chunk present; full: every chunk re-read and "
                               "re-hashed."),
}, named=True, doc="Scheduled jobs, one table each: [jobs.nightly].")

SCHEMA["retention"] = Section({
    **RETENTION,
    "timezone": Option("str", "UTC", doc="Time zone of the retention periods."),
}, named=True, doc="Retention of a repository, one table each: [retention.offsite].")

SCHEMA["daemon"] = Section({
    "max_parallel_dumps": Option("int", 2, minimum=1, maximum=256,
                                 doc="Dumps running at once, all jobs and nodes together."),
    "max_parallel_dumps_per_node": Option("int", 1, minimum=1, maximum=64,
                                          doc="Dumps running at once on one node."),
    "misfire_grace_minutes": Option("int", 360, minimum=1, maximum=10080,
                                    doc="A run missed (daemon down or busy) is still made once "
                                        "if at most this late; else skipped until the next."),
    "metrics_file": Option("path", "", doc="Prometheus metrics in node_exporter textfile "
                                           "format; empty: none."),
    "standby_poll_seconds": Option("int", 15, minimum=1, maximum=3600,
                                   doc="PostgreSQL catalogue: how often a standby daemon tries "
                                       "to become the scheduler."),
    "rpo_check_minutes": Option("int", 60, minimum=1, maximum=1440,
                                doc="How often the daemon looks for guests past their RPO."),
}, doc="The scheduler daemon.")

SCHEMA["alerts"] = Section({
    "notify": Option("str", "always", choices=("always", "failure", "never"),
                     doc="When a run's summary is sent; failures and RPO alerts always are, "
                         "unless never."),
    "email_to": Option("list[str]", [], doc="Addresses summaries are mailed to; empty: no mail."),
    "email_from": Option("str", "vzbackup@localhost", doc="Sender address."),
    "smtp_host": Option("str", "localhost", doc="SMTP server."),
    "smtp_port": Option("int", 25, minimum=1, maximum=65535, doc="SMTP port."),
    "smtp_security": Option("str", "none", choices=("none", "starttls", "tls"),
                            doc="none, starttls (upgrade on port 587) or tls (port 465)."),
    "smtp_user": Option("str", "", doc="SMTP login; empty: no authentication."),
    "smtp_password_file": Option("path", "", doc="File holding the SMTP password."),
    "smtp_password_env": Option("str", "", doc="Environment variable holding the SMTP password."),
    "webhook_url": Option("str", "", doc="URL a JSON summary is POSTed to; empty: none."),
    "webhook_token_file": Option("path", "", doc="File holding a bearer token for the webhook."),
    "webhook_token_env": Option("str", "", doc="Environment variable holding the token."),
    "timeout_seconds": Option("int", 10, minimum=1, maximum=300,
                              doc="Seconds to wait for the SMTP server or the webhook."),
}, doc="Run summaries and alerts: email and webhook.")
