"""Promise 4 of DESIGN.md: no secret reaches a log, an error message, a process argument or
environment, or the catalogue, and none is stored in plaintext.

The CLI runs as a user runs it, at log level debug with a log file, against an encrypted
repository with replicas on a peer node over SFTP and in S3 (SeaweedFS: it checks
signatures), with a node over SSH whose jobs carry the secrets to its agent; the
passphrase comes from a file for one repository and from an environment variable for the
others. Then the ways likely to echo a secret fail on purpose: a wrong S3 secret key, a
wrong passphrase, an S3 endpoint that does not answer, configuration mistakes.

Afterwards every byte the run left is searched for every secret (passphrases, S3 keys, the
SSH key, the catalogue's password, the repository's own keys that the passphrase unseals),
also as hex, base64, JSON, URL-quoted and UTF-16: what each command printed, the log file,
every file under the state, cache and repository folders (here and on the nodes), every
object in the bucket, the decrypted manifests, every row of the catalogue (PostgreSQL with
a password in its URL, and SQLite), and the argv and environment of every process started
meanwhile: each child of this process (audit hook: exact) and each new descendant, the
sshd nodes' sessions included (/proc: sampled). A child needs no secret, so none may
inherit one.

The S3 access key id is held to the same standard. AWS does not count it as a secret, but
it names the account and vzbackup redacts it from logs: it appears nowhere but in the
credentials file.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import boto3
import pytest
import sqlalchemy as sa

from demo.guestdata import write_guest_config
from tests.lab.s3 import SEAWEED_ACCESS, SEAWEED_SECRET
from tests.lab.ssh import SSHD, free_port
from tests.unit.cli.conftest import Lab, Result
from vzbackup.repo.backends import open_backend
from vzbackup.repo.format import open_repository
from vzbackup.repo.keys import Passphrase
from vzbackup.repo.repository import init_chunk_repository, open_chunk_repository

pytestmark = pytest.mark.server

PASSPHRASE = "Corr3ct-horse/battery+stäple"
WRONG_PASSPHRASE = "Wr0ng-horse/battery+stäple"
WRONG_S3_SECRET = "Wr0ngS3cret/Key+ForTests0123456789abcdef"
PASSPHRASE_ENV = "VZTEST_REPO_PASSPHRASE"
PG_PASSWORD = "Pg-passw0rd-in-the-url"  # PostgreSQL here trusts every client: unused, but in the URL
AGENT = Path(sys.executable).parent / "vzbackup"  # this checkout's, run by sshd on the node


# ---- every process started while recording --------------------------------------------

@dataclass
class Children:
    """argv and environment of the processes started while recording: each child this
    process starts (audit hook: exact), and each new process under this one, the sshd
    nodes' sessions included (/proc, sampled every 2 ms; servers started before are not
    searched below)."""

    seen: list[tuple[str, bytes]] = field(default_factory=list)
    started: list[list[str]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def on_audit(self, event: str, args: tuple) -> None:
        if event != "subprocess.Popen":
            return
        _executable, argv, _cwd, env = args
        argv = [os.fsdecode(a) for a in argv]
        environ = os.environ if env is None else env
        self.started.append(argv)
        self.seen.append((f"argv of {argv[0]}", "\0".join(argv).encode()))
        self.seen.append((f"environment of {argv[0]}",
                          "\0".join(f"{k}={v}" for k, v in environ.items()).encode()))

    def poll(self) -> None:
        own = _read(f"/proc/{os.getpid()}/cmdline")
        before = set(_descendants(os.getpid(), set()))
        servers = {p for p in before if not _read(f"/proc/{p}/cmdline").startswith(SSHD.encode())}
        sampled: set[tuple[int, bytes]] = set()
        while not self.done.wait(0.002):
            for pid in _descendants(os.getpid(), servers):
                cmdline = _read(f"/proc/{pid}/cmdline")
                if pid in before or cmdline in (b"", own) or (pid, cmdline) in sampled:
                    continue  # older than the test, gone, or forked and not yet exec'd
                sampled.add((pid, cmdline))
                name = os.path.basename(cmdline.split(b"\0")[0]).decode(errors="replace")
                self.seen.append((f"/proc/{pid}/cmdline ({name})", cmdline))
                self.seen.append((f"/proc/{pid}/environ ({name})", _read(f"/proc/{pid}/environ")))


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _descendants(pid: int, leaves: set[int]) -> Iterator[int]:
    """Every process under ``pid``; those in ``leaves`` without theirs."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:  # gone
        return
    for task in tasks:
        for child in map(int, _read(f"/proc/{pid}/task/{task}/children").split()):
            yield child
            if child not in leaves:
                yield from _descendants(child, leaves)


_RECORDERS: list[Children] = []
sys.addaudithook(lambda event, args: [c.on_audit(event, args) for c in _RECORDERS])


@pytest.fixture
def children() -> Iterator[Children]:
    recorder = Children()
    poller = threading.Thread(target=recorder.poll, daemon=True)
    poller.start()
    _RECORDERS.append(recorder)
    yield recorder
    _RECORDERS.remove(recorder)
    recorder.done.set()
    poller.join()


def detach_logging() -> None:
    """The commands ran in this process: remove the log handlers they installed."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_vzbackup", False)]:
        root.removeHandler(handler)
        handler.close()


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    level = logging.getLogger().level
    yield
    detach_logging()
    logging.getLogger().setLevel(level)


# ---- the lab ------------------------------------------------------------------------

@dataclass
class SecretLab(Lab):
    secrets: Path = Path()
    bucket: str = ""
    endpoint: str = ""
    written: list[Path] = field(default_factory=list)  # folders vzbackup writes to
    catalog_url: str = ""
    outputs: list[tuple[str, Result]] = field(default_factory=list)

    def run(self, *args: str) -> Result:
        result = super().run(*args)
        self.outputs.append((" ".join(args), result))
        return result

    def fails(self, *args: str) -> Result:
        r = self.run(*args)
        assert r.code > 1, r
        return r

    def add(self, text: str) -> None:
        self.config.write_text(self.config.read_text() + text)


def small_container(node_root: Path, vmid: int, hostname: str) -> None:
    """What the guest holds does not matter here: a few files, a few chunks."""
    rootfs = node_root / f"ct{vmid}" / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "hostname").write_text(hostname + "\n")
    (rootfs / "data.bin").write_bytes(os.urandom(96 * 1024))
    write_guest_config(rootfs.parent, {"hostname": hostname, "ostype": "debian"})


def s3_credentials(path: Path, access: str, secret: str) -> Path:
    path.write_text(f"[default]\naws_access_key_id = {access}\naws_secret_access_key = {secret}\n")
    path.chmod(0o600)
    return path


def make_lab(tmp_path, capsys, seaweed_endpoint, ssh_lab, catalog_url: str = "") -> SecretLab:
    """Node node1 (here) with ct101, node3 over SSH with ct301; repositories main (here,
    passphrase from a file), peer (SFTP) and offsite (S3), passphrase from the environment."""
    secrets = tmp_path / "secrets"  # outside every folder vzbackup writes to
    secrets.mkdir(mode=0o700)
    (secrets / "passphrase").write_text(PASSPHRASE + "\n")
    s3_credentials(secrets / "s3", SEAWEED_ACCESS, SEAWEED_SECRET)
    root = tmp_path / "lab"
    for node in ("node1", "node2"):
        (root / node).mkdir(parents=True)
    small_container(root / "node1", 101, "web1")
    bucket = f"vzsecrets-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=seaweed_endpoint, region_name="us-east-1",
                 aws_access_key_id=SEAWEED_ACCESS,
                 aws_secret_access_key=SEAWEED_SECRET).create_bucket(Bucket=bucket)
    run = uuid.uuid4().hex[:12]
    peer, node3 = ssh_lab.nodes[1], ssh_lab.nodes[2]
    sftp_root, node3_root = peer.data / f"peer-{run}", node3.data / f"node3-{run}"
    small_container(node3_root / "guests", 301, "db1")
    ssh = f'key_file = "{ssh_lab.client_key}"\nknown_hosts = "{ssh_lab.known_hosts}"\n'
    from_env = f'encryption = "aes-256-gcm"\npassphrase_env = "{PASSPHRASE_ENV}"\n'
    config = root / "vzbackup.toml"
    config.write_text(f"""
[state]
dir = "state"
[catalog]
url = "{catalog_url}"
[log]
file = "log/vzbackup.log"
level = "debug"
[backup]
repository = "main"
[nodes.node1]
root = "node1"
[nodes.node2]
root = "node2"
[nodes.node3]
transport = "ssh"
host = "127.0.0.1"
port = {node3.port}
root = "{node3_root / 'guests'}"
cache_dir = "{node3_root / 'cache'}"
vzbackup = "{AGENT}"
{ssh}
[repositories.main]
url = "file://repo"
encryption = "aes-256-gcm"
passphrase_file = "{secrets / 'passphrase'}"
[repositories.peer]
url = "sftp://root@127.0.0.1:{peer.port}{sftp_root}"
{ssh}{from_env}
[repositories.offsite]
url = "s3://{bucket}/site-a"
endpoint_url = "{seaweed_endpoint}"
credentials_file = "{secrets / 's3'}"
{from_env}
""")
    return SecretLab(root, config, capsys, secrets=secrets, bucket=bucket,
                     endpoint=seaweed_endpoint, written=[root, sftp_root, node3_root],
                     catalog_url=catalog_url)


def init_main(lab: SecretLab) -> None:
    """``repo init``, with a cheap key derivation: scrypt at full cost takes 0.5 s for each
    of the ~20 times the commands below open an encrypted repository."""
    init_chunk_repository(open_backend((lab.root / "repo").as_uri()), encryption="aes-256-gcm",
                          passphrase=PASSPHRASE, chunk_avg=32 * 1024, kdf_cost=2**10)


# ---- where secrets could be, and how they could look ---------------------------------

def forms(secret: str | bytes) -> dict[str, bytes]:
    """The secret as it could appear in bytes written somewhere."""
    raw = secret.encode() if isinstance(secret, str) else secret
    found = {"as is": raw, "hex": raw.hex().encode(), "HEX": raw.hex().upper().encode()}
    if isinstance(secret, str):
        found |= {"utf-16": secret.encode("utf-16-le"), "json": json.dumps(secret)[1:-1].encode(),
                  "url-quoted": quote(secret, safe="").encode()}
    for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
        for shift in range(3):  # inside a longer text: the part that does not depend on the
            text = encode(bytes(shift) + raw)  # bytes around it
            core = text[4 if shift else 0:-4]
            if len(core) >= 8:  # shorter ones turn up by chance in megabytes of ciphertext
                found[f"{name}+{shift}"] = core
    return found


def files_under(folders: list[Path], but: Path) -> Iterator[tuple[str, bytes]]:
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink() and path != but:
                yield str(path), path.read_bytes()


def catalogue_rows(url: str) -> Iterator[tuple[str, bytes]]:
    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                yield f"catalogue table {table.name}", repr(conn.execute(sa.select(table)).all()).encode()
    finally:
        engine.dispose()


def bucket_objects(lab: SecretLab) -> Iterator[tuple[str, bytes]]:
    s3 = boto3.client("s3", endpoint_url=lab.endpoint, region_name="us-east-1",
                      aws_access_key_id=SEAWEED_ACCESS, aws_secret_access_key=SEAWEED_SECRET)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=lab.bucket):
        for obj in page.get("Contents", ()):
            yield (f"s3://{lab.bucket}/{obj['Key']}",
                   s3.get_object(Bucket=lab.bucket, Key=obj["Key"])["Body"].read())


def manifests(lab: SecretLab) -> Iterator[tuple[str, bytes]]:
    """Manifests are sealed: their bytes on disk would hide a secret. Open them."""
    repo = open_chunk_repository("main", open_backend((lab.root / "repo").as_uri()),
                                 passphrase=PASSPHRASE, cache_dir=None)
    for point_id in repo.point_ids():
        yield f"manifest {point_id[:12]}", repr(repo.load_manifest(point_id)).encode()


def everything(lab: SecretLab, children: Children) -> list[tuple[str, bytes]]:
    detach_logging()  # from here on, only this test logs
    written = [(f"stdout of 'vzbackup {cmd}'", r.out.encode()) for cmd, r in lab.outputs]
    written += [(f"stderr of 'vzbackup {cmd}'", r.err.encode()) for cmd, r in lab.outputs]
    written += files_under(lab.written, but=lab.config)  # the test wrote the config
    written += bucket_objects(lab)
    written += manifests(lab)
    written += catalogue_rows(lab.catalog_url or f"sqlite:///{lab.root / 'state' / 'catalog.db'}")
    return written + children.seen


def secrets_of(lab: SecretLab, ssh_lab) -> dict[str, str | bytes]:
    ssh_key = "".join(ssh_lab.client_key.read_text().splitlines()[1:-1])
    _, keys = open_repository(open_backend((lab.root / "repo").as_uri()), Passphrase(PASSPHRASE))
    return {"passphrase": PASSPHRASE, "wrong passphrase": WRONG_PASSPHRASE,
            "S3 secret key": SEAWEED_SECRET, "wrong S3 secret key": WRONG_S3_SECRET,
            "S3 access key id": SEAWEED_ACCESS, "SSH private key": ssh_key[40:104],
            "catalogue password": PG_PASSWORD, "repository data key": keys.enc_key,
            "repository id key": keys.id_key}


def leaks(lab: SecretLab, children: Children, ssh_lab) -> list[str]:
    written = everything(lab, children)
    found = []
    for what, secret in secrets_of(lab, ssh_lab).items():
        for form, needle in forms(secret).items():
            found += [f"{what} ({form}) in {where}" for where, data in written if needle in data]
    return found


# ---- the tests ------------------------------------------------------------------------

def test_no_secret_in_anything_a_run_writes(tmp_path, capsys, monkeypatch, seaweed_endpoint,
                                            ssh_lab, pg_url, children):
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    lab = make_lab(tmp_path, capsys, seaweed_endpoint, ssh_lab,
                   catalog_url=pg_url.replace("postgres@", f"postgres:{PG_PASSWORD}@"))
    init_main(lab)
    lab.ok("backup", "ct101")
    lab.ok("replicate", "--to", "peer", "--to", "offsite")
    lab.ok("backup", "--repository", "offsite", "ct301")  # node3 writes to S3 by itself
    lab.ok("points", "--json")
    lab.ok("verify", "--all")
    lab.ok("--verbose", "restore", "ct101", "--to", "node2")  # the log on stderr too
    assert '"ran_on": "node3"' in lab.ok("restore", "ct301", "--to", "node3", "--as", "302",
                                         "--json").out  # node3 read S3 by itself
    lab.ok("catalog", "rebuild")
    lab.ok("prune", "--dry-run")
    lab.ok("prune")  # keep-all here: no removal, but GC runs on every repository, S3 too
    lab.ok("repo", "gc", "--json")
    lab.ok("branch", "create", "expo", "--guests", "ct101", "--to", "node2")
    bundle = lab.root / "expo.vzb"
    lab.ok("branch", "export", "expo", str(bundle))
    lab.ok("branch", "destroy", "expo")
    lab.ok("branch", "import", str(bundle), "--to", "node2", "--passphrase-env", PASSPHRASE_ENV)
    assert any(argv[0] == "tar" for argv in children.started)  # the recorder sees children
    assert leaks(lab, children, ssh_lab) == []


def test_no_secret_in_what_failures_say(tmp_path, capsys, monkeypatch, seaweed_endpoint, ssh_lab,
                                        children):
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    lab = make_lab(tmp_path, capsys, seaweed_endpoint, ssh_lab)
    lab.ok("repo", "init")
    lab.ok("backup", "ct101")
    (lab.secrets / "passphrase").write_text(WRONG_PASSPHRASE + "\n")
    assert "wrong passphrase" in lab.fails("-v", "backup", "ct101").err
    assert "wrong passphrase" in lab.run("verify", "--all").err
    (lab.secrets / "passphrase").write_text(PASSPHRASE + "\n")

    wrong = s3_credentials(lab.secrets / "s3-wrong", SEAWEED_ACCESS, WRONG_S3_SECRET)
    lab.add(f"""
[repositories.wrongkey]
url = "s3://{lab.bucket}/wrong-key"
endpoint_url = "{seaweed_endpoint}"
credentials_file = "{wrong}"
[repositories.nowhere]
url = "s3://{lab.bucket}/nowhere"
endpoint_url = "http://127.0.0.1:{free_port()}"
credentials_file = "{lab.secrets / 's3'}"
""")
    assert "refused the credentials" in lab.fails("-v", "replicate", "--to", "wrongkey").err
    assert "does not answer" in lab.fails("-v", "replicate", "--to", "nowhere").err

    good = lab.config.read_text()
    broken = s3_credentials(lab.secrets / "s3-broken", SEAWEED_ACCESS, WRONG_S3_SECRET)
    broken.write_text(broken.read_text().replace("aws_secret_access_key =", "aws_secret_access_key"))
    mistakes = {  # what a user may get wrong -> the command that trips over it
        "a credentials file without '='": (
            good.replace(f'"{lab.secrets / "s3"}"', f'"{broken}"'), ("replicate", "--to", "offsite")),
        "the passphrase as a key of its own": (
            good + f'[repositories.typed]\nurl = "file://typed"\npassphrase = "{PASSPHRASE}"\n',
            ("config", "check")),
        "the passphrase unquoted": (
            good + f"[repositories.unquoted]\npassphrase = {PASSPHRASE}\n", ("config", "check")),
        "the passphrase where its variable's name goes": (
            good.replace(f'passphrase_env = "{PASSPHRASE_ENV}"', f'passphrase_env = "{PASSPHRASE}"'),
            ("config", "check")),
    }
    for mistake, (text, args) in mistakes.items():
        lab.config.write_text(text)
        assert lab.run(*args).code > 1, mistake
        lab.run("-v", "backup", "--all", "--repository", "offsite")  # whatever it says
    lab.config.write_text(good)
    assert leaks(lab, children, ssh_lab) == []
