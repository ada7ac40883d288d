"""Hook scripts on a directory node: vzbackup calls them itself, with vzdump's phases,
arguments, environment and failure effects (shared/reference/pve.md section 5)."""

from __future__ import annotations

import pytest


def with_hook(lab, fail_phase: str = "", mode: int = 0o755) -> None:
    record = lab.root / "hook.log"
    script = lab.root / "hook.sh"
    script.write_text(f"""#!/bin/sh
echo "$* ENV=$(tr '\\0' ' ' < /proc/$$/environ)" >> {record}
echo "said $1"
[ "$1" = "{fail_phase}" ] && exit 4
exit 0
""")
    script.chmod(mode)
    lab.config.write_text(lab.config.read_text().replace(
        '[nodes.node1]\n', f'[nodes.node1]\nhook_script = "{script}"\n'))


def calls(lab) -> list[str]:
    return [line.split(" ENV=")[0] for line in (lab.root / "hook.log").read_text().splitlines()]


def test_phases_arguments_and_environment(lab):
    lab.ok("repo", "init")
    with_hook(lab)
    lab.ok("backup", "ct101")
    assert calls(lab) == [
        "job-init", "job-start", "backup-start snapshot 101", "pre-stop snapshot 101",
        "pre-restart snapshot 101", "post-restart snapshot 101", "backup-end snapshot 101",
        "log-end snapshot 101", "job-end"]
    lines = (lab.root / "hook.log").read_text().splitlines()
    assert sorted(lines[2].split(" ENV=")[1].split()) == ["HOSTNAME=web1", "TARGET=-", "VMTYPE=lxc"]
    assert lines[0].split(" ENV=")[1].split() == []  # job phases: nothing set, not even PATH


@pytest.mark.parametrize("phase", ["job-init", "job-start", "backup-start", "pre-stop",
                                   "pre-restart", "post-restart", "backup-end", "job-end"])
def test_a_failing_phase_fails_the_guest_and_keeps_no_point(lab, phase):
    lab.ok("repo", "init")
    with_hook(lab, phase)
    r = lab.run("backup", "ct101", "--json")
    assert r.code == 15
    item = r.json()["items"][0]
    shown = f"{phase} snapshot 101" if not phase.startswith("job-") else phase
    assert f"hook.sh {shown}' failed: exit code 4" in item["message"]
    assert "ct101 on node node1" in item["message"]
    assert lab.ok("points", "--json").json() == []
    done = calls(lab)
    if phase in ("job-start", "job-end"):
        assert done[-1] == "job-abort"
    elif phase not in ("job-init",):
        assert done[-3:] == ["backup-abort snapshot 101", "log-end snapshot 101", "job-end"]


def test_a_failing_log_end_only_warns(lab):
    lab.ok("repo", "init")
    with_hook(lab, "log-end")
    r = lab.run("backup", "ct101", "--json")
    assert r.code == 1, r
    assert "log-end snapshot 101' failed: exit code 4" in " ".join(r.json()["items"][0]["warnings"])
    assert len(lab.ok("points", "--json").json()) == 1


def test_a_script_that_cannot_run_is_named(lab):
    lab.ok("repo", "init")
    with_hook(lab, mode=0o644)
    r = lab.run("backup", "ct101", "--json")
    assert r.code == 15
    assert "is not executable." in r.json()["items"][0]["message"]
