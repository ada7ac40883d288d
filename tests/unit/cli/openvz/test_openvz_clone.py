"""``vzbackup clone --start`` onto an OpenVZ node: vzctl start once the clone is made."""

from __future__ import annotations

from tests.fakes import vz_tools
from vzbackup.errors import UsageError


def test_clone_starts_with_vzctl_and_keep_ip_is_refused(ovz):
    lab = ovz.lab
    conf = vz_tools.conf_dir(ovz.vz_state) / "1101.conf"
    conf.write_text(conf.read_text() + 'IP_ADDRESS="10.0.0.5"\n')
    lab.ok("repo", "init")
    lab.ok("backup", "ct1101")
    r = lab.run("clone", "ct1101", "--to", "node3", "--network", "keep-ip", "--start")
    assert r.code == UsageError.exit_code and "IP_ADDRESS keeps the source's address 10.0.0.5" in r.err
    assert not (vz_tools.conf_dir(ovz.vz_state) / "1102.conf").exists()
    done = lab.ok("clone", "ct1101", "--to", "node3", "--start", "--json").json()["details"]
    assert done["target"] == "ct1102" and done["status"] == "running"
    assert vz_tools.status(ovz.vz_state, 1102) == "running"
    assert 'IP_ADDRESS=""' in (vz_tools.conf_dir(ovz.vz_state) / "1102.conf").read_text()
