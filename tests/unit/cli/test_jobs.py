"""Jobs from the config: 'vzbackup run JOB', 'runs', 'status', 'prune --dry-run'."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from freezegun import freeze_time

from demo.guestdata import make_container, write_guest_config

JOBS = """
[repositories.peer]
url = "file://peer"

[jobs.nightly]
schedule = "30 1 * * *"
timezone = "Europe/Berlin"
all = true
exclude = ["vm200"]
replicate_to = ["peer"]
keep_last = 1
rpo_hours = 26

[jobs.web]
schedule = "0 * * * *"
tags = ["web"]
rpo_hours = 2
"""


def with_jobs(lab, extra: str = ""):
    lab.config.write_text(lab.config.read_text() + JOBS + extra)
    lab.ok("repo", "init")
    return lab


def test_run_backs_up_replicates_and_verifies_the_jobs_guests(lab):
    with_jobs(lab)
    r = lab.ok("run", "nightly", "--json").json()
    assert r["kind"] == "job" and r["status"] == "success"
    assert [i["guest"] for i in r["items"]] == ["ct101"]  # vm200 excluded
    assert [s["kind"] for s in r["details"]["steps"]] == ["backup", "replicate", "verify",
                                                          "prune"]
    point = r["items"][0]["point_id"]
    copies = {c["repository"]: c for c in lab.ok("points", "--json").json()[0]["copies"]}
    assert set(copies) == {"main", "peer"}
    assert copies["main"]["verified_level"] == "quick" and copies["peer"]["state"] == "ok"
    shown = lab.ok("runs", "show", str(r["run_id"]), "--json").json()
    assert shown["items"][0]["point_id"] == point
    assert [s["kind"] for s in shown["steps"]] == ["backup", "replicate", "verify", "prune"]
    assert any("ct101" in line for line in shown["log"])
    listed = lab.ok("runs", "--json").json()
    assert [(x["kind"], x["args"].get("job")) for x in listed] == [("job", "nightly")]
    assert len(lab.ok("runs", "--steps", "--json").json()) == 5


def test_selection_by_tag_and_pool_reads_the_guest_config(lab):
    with_jobs(lab, '\n[jobs.pooled]\nschedule = "0 3 * * *"\npools = ["prod"]\n')
    make_container(lab.node("node2"), 102, "web2", files=10, mib=1, seed=3)
    conf = lab.node("node2") / "ct102" / "guest.conf"
    conf.write_text(conf.read_text() + "tags: db;web\n")
    write_guest_config(lab.node("node1") / "vm200", {"name": "app", "scsi0": "disk-0.raw",
                                                      "pool": "prod"})
    assert [i["guest"] for i in lab.ok("run", "web", "--json").json()["items"]] == ["ct102"]
    assert [i["guest"] for i in lab.ok("run", "pooled", "--json").json()["items"]] == ["vm200"]


def test_a_named_guest_that_is_gone_fails_the_run_and_says_so(lab):
    with_jobs(lab, '\n[jobs.named]\nschedule = "0 3 * * *"\nguests = ["ct101", "ct999"]\n')
    r = lab.run("run", "named", "--json")
    assert r.code == 4
    items = {i["guest"]: i for i in r.json()["items"]}
    assert items["ct101"]["status"] == "ok"
    assert "job named: guest ct999 not found" in items["ct999"]["message"]


def test_unknown_job_is_a_usage_error(lab):
    with_jobs(lab)
    r = lab.run("run", "nope")
    assert r.code == 18 and "no job named 'nope'" in r.err and "known: nightly, web" in r.err


def test_status_shows_age_copies_and_past_rpo(lab):
    with_jobs(lab)
    lab.ok("run", "nightly")
    rows = {s["guest"]: s for s in lab.ok("status", "--json").json()}
    assert set(rows) == {"ct101"}  # vm200 is excluded: never seen
    assert rows["ct101"]["past_rpo"] is False and rows["ct101"]["copies"] == 2
    assert rows["ct101"]["where"] == ["main:ok", "peer:ok"]
    assert rows["ct101"]["jobs"] == ["nightly"] and rows["ct101"]["rpo_hours"] == 26
    lab.ok("backup", "vm200")  # by hand: known, but no job covers it, so it has no RPO
    with freeze_time(datetime.now(timezone.utc) + timedelta(hours=27)):
        r = lab.run("status", "--json")
        text = lab.run("status")
    assert r.code == 101
    rows = {s["guest"]: s for s in r.json()}
    assert rows["ct101"]["past_rpo"] is True and rows["ct101"]["age_hours"] >= 27
    assert rows["vm200"]["rpo_hours"] is None and rows["vm200"]["past_rpo"] is False
    assert "PAST 26 h" in text.out and "1 guest(s) past their RPO: ct101" in text.err


def test_status_names_the_last_failure(lab):
    with_jobs(lab)
    lab.ok("run", "nightly")
    (lab.node("node1") / "ct101" / "rootfs").rename(lab.node("node1") / "ct101" / "gone")
    r = lab.run("run", "nightly", "--json")
    assert r.code == 15
    row = {s["guest"]: s for s in lab.ok("status", "--json").json()}["ct101"]
    assert "no rootfs/ folder" in row["last_failure"]
    assert row["last_failure_run"] is not None and row["last_good_point"] is not None


def test_prune_dry_run_explains_each_point_and_removes_nothing(lab):
    with_jobs(lab)
    for _ in range(3):
        lab.ok("backup", "ct101")
    plan = lab.ok("prune", "--dry-run", "--json").json()
    main = [i for i in plan if i["repository"] == "main" and i["guest"]["vmid"] == 101]
    assert [i["decision"] for i in main] == ["keep", "remove", "remove"]
    assert main[0]["reason"] == "keep-last" and main[0]["source"] == "job nightly"
    assert main[1]["reason"] == "not covered by keep-last=1"
    assert len(lab.ok("points", "ct101", "--json").json()) == 3  # nothing removed
    text = lab.ok("prune", "--dry-run")
    assert "would be removed (dry run" in text.err


def test_prune_keeps_the_newest_verified_and_protected_points(lab):
    with_jobs(lab)
    lab.ok("run", "nightly")  # verified quick: ok
    lab.config.write_text(lab.config.read_text().replace('verify_after = "quick"\n', ""))
    lab.ok("backup", "ct101", "--label", "protected=1")
    lab.ok("backup", "ct101")
    lab.ok("backup", "ct101")
    items = [i for i in lab.ok("prune", "--dry-run", "--json", "-r", "main").json()
             if i["guest"]["vmid"] == 101]
    reasons = [i["reason"] for i in items]
    assert reasons[0] == "keep-last"
    assert "pinned: newest verified point" in reasons and "protected" in reasons
    assert sum(1 for i in items if i["decision"] == "remove") == 1


def test_a_guest_held_by_a_manual_command_is_not_dumped_twice(lab):
    from vzbackup.domain.guests import GuestRef
    from vzbackup.locks import FileLocks

    with_jobs(lab)
    with FileLocks(lab.root / "state").guest(GuestRef("ct", 101), "restore"):
        r = lab.run("run", "nightly", "--json")
    assert r.code == 11
    item = r.json()["items"][0]
    assert item["error"] == "LockBusy" and "restore since" in item["message"]


def test_a_job_running_elsewhere_is_refused(lab):
    from vzbackup.locks import FileLocks

    with_jobs(lab)
    with FileLocks(lab.root / "state").job("nightly", "run"):
        r = lab.run("run", "nightly")
    assert r.code == 11 and "cannot run job nightly" in r.err


def test_scheduled_verification_finds_a_damaged_copy(lab):
    from tests.unit.cli.test_exit_codes import flip_byte_in_a_pack

    with_jobs(lab)
    lab.ok("run", "nightly")
    r = lab.ok("run", "nightly", "--verify", "--json").json()
    assert r["details"]["action"] == "verify" and [s["kind"] for s in r["details"]["steps"]] == ["verify"]
    assert {i["guest"] for i in r["items"]} == {"ct101"}
    flip_byte_in_a_pack(lab.root / "repo")
    r = lab.run("run", "nightly", "--verify", "--json")
    assert r.code == 7
    item = r.json()["items"][0]
    assert item["status"] == "failed" and item["message"].startswith("verify main: ")
    copies = {c["repository"]: c["state"] for c in lab.ok("points", "--json").json()[0]["copies"]}
    assert copies == {"main": "corrupt", "peer": "ok"}
