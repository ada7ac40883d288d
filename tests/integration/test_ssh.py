"""SSH sessions against real sshd nodes: host keys, quoting, exit status, dead nodes."""

from __future__ import annotations

import time

import pytest

from tests.lab.ssh import free_port, keygen
from vzbackup.errors import NodeUnreachable
from vzbackup.nodes.ssh import SshSession, SshTarget


def session(lab, node=0, **kw) -> SshSession:
    n = lab.nodes[node]
    target = SshTarget("127.0.0.1", n.port, key_file=lab.client_key,
                       known_hosts=kw.pop("known_hosts", lab.known_hosts), **kw)
    return SshSession(target, n.name)


def test_argv_is_quoted_and_exit_status_and_stderr_come_back(ssh_lab):
    s = session(ssh_lab)
    odd = str(ssh_lab.nodes[0].data / "a file; rm -rf $HOME `x`")
    assert s.run(["touch", odd]).code == 0
    r = s.run(["ls", odd])
    assert r.code == 0 and r.stdout.decode().strip() == odd
    r = s.run(["ls", "/no/such/path"])
    assert r.code == 2 and b"No such file" in r.stderr
    s.close()


def test_one_connection_is_reused(ssh_lab):
    s = session(ssh_lab)
    first = s.client().get_transport()
    s.run(["true"])
    s.run(["true"])
    assert s.client().get_transport() is first
    s.close()


def test_unknown_host_key_refused_with_how_to_trust_it(ssh_lab, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(NodeUnreachable) as e:
        session(ssh_lab, known_hosts=empty).run(["true"])
    assert "unknown host key, refused" in str(e.value) and "ssh-keyscan" in e.value.hint
    assert empty.read_text() == ""


def test_accept_new_host_key_trusts_and_records_it(ssh_lab, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    assert session(ssh_lab, known_hosts=known, accept_new_host_key=True).run(["true"]).code == 0
    assert f"[127.0.0.1]:{ssh_lab.nodes[0].port}" in known.read_text()


def test_changed_host_key_refused_even_when_accepting_new_ones(ssh_lab, tmp_path):
    other = tmp_path / "other"
    keygen(other)
    kind, key = (other.with_suffix(".pub")).read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{ssh_lab.nodes[0].port} {kind} {key}\n")
    with pytest.raises(NodeUnreachable) as e:
        session(ssh_lab, known_hosts=known, accept_new_host_key=True).run(["true"])
    assert "host key CHANGED" in str(e.value) and "ssh-keygen -R" in e.value.hint


def test_wrong_key_is_an_authentication_error(ssh_lab, tmp_path):
    stranger = tmp_path / "stranger"
    keygen(stranger)
    n = ssh_lab.nodes[0]
    s = SshSession(SshTarget("127.0.0.1", n.port, key_file=stranger,
                             known_hosts=ssh_lab.known_hosts), n.name)
    with pytest.raises(NodeUnreachable, match="authentication failed"):
        s.run(["true"])


def test_dead_node_fails_fast_and_names_it(ssh_lab):
    s = SshSession(SshTarget("127.0.0.1", free_port(), key_file=ssh_lab.client_key,
                             known_hosts=ssh_lab.known_hosts, connect_timeout=1), "node9")
    started = time.monotonic()
    with pytest.raises(NodeUnreachable, match="node9"):
        s.run(["true"])
    assert time.monotonic() - started < 10


def test_frozen_node_times_out_instead_of_hanging(ssh_lab):
    node = ssh_lab.nodes[2]
    s = SshSession(SshTarget("127.0.0.1", node.port, key_file=ssh_lab.client_key,
                             known_hosts=ssh_lab.known_hosts, connect_timeout=1), node.name)
    import os
    import signal
    os.kill(node.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(NodeUnreachable, match=node.name):
            s.run(["true"])
        assert time.monotonic() - started < 15
    finally:
        os.kill(node.proc.pid, signal.SIGCONT)


def test_a_command_flooding_stderr_does_not_stall(ssh_lab):
    s = session(ssh_lab)
    r = s.run(["sh", "-c", "head -c 4000000 /dev/zero >&2; echo done"], timeout=30)
    assert r.code == 0 and r.stdout == b"done\n" and len(r.stderr) == 4_000_000
    s.close()
