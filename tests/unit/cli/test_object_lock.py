"""An immutable off-site copy: replication into an S3 bucket with Object Lock."""

from __future__ import annotations

import boto3
import pytest

from tests.lab.s3 import reset_moto


def s3_client(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="y")


@pytest.fixture
def locked(backed_up, moto_endpoint, tmp_path):
    lab = backed_up
    reset_moto(moto_endpoint)
    creds = tmp_path / "s3-credentials"
    creds.write_text("[default]\naws_access_key_id = AKIALOCK\naws_secret_access_key = l0ck-s3cret\n")
    lab.config.write_text(lab.config.read_text() + f"""
[repositories.vault]
url = "s3://vault/site-a"
endpoint_url = "{moto_endpoint}"
credentials_file = "{creds}"
object_lock_days = 30
object_lock_mode = "COMPLIANCE"
""")
    return lab


def test_every_object_of_a_locked_replica_is_retained(locked, moto_endpoint):
    lab, s3 = locked, s3_client(moto_endpoint)
    s3.create_bucket(Bucket="vault", ObjectLockEnabledForBucket=True)
    result = lab.ok("replicate", "--to", "vault", "--json").json()[0]
    assert result["status"] == "success" and len(result["items"]) == 2
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="vault")["Contents"]]
    assert any("manifests/" in k for k in keys) and len(keys) > 10
    for key in keys:
        head = s3.head_object(Bucket="vault", Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE", key
        days = (head["ObjectLockRetainUntilDate"] - head["LastModified"]).days
        assert 29 <= days <= 30, key
    victim = next(k for k in keys if "manifests/" in k)
    version = s3.head_object(Bucket="vault", Key=victim)["VersionId"]
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
        s3.delete_object(Bucket="vault", Key=victim, VersionId=version)
    assert lab.ok("verify", "--all", "--json").json()["status"] == "success"


def test_a_bucket_without_object_lock_is_refused_before_anything_is_written(locked, moto_endpoint):
    lab, s3 = locked, s3_client(moto_endpoint)
    s3.create_bucket(Bucket="vault")
    r = lab.run("replicate", "--to", "vault")
    assert r.code == 6, r
    assert "object_lock_days is set, but the bucket vault has no Object Lock" in r.err
    assert "create-bucket --object-lock-enabled-for-bucket" in r.err
    assert s3.list_objects_v2(Bucket="vault").get("KeyCount", 0) == 0


def test_prune_and_gc_on_a_locked_bucket_hide_objects_but_keep_their_locked_versions(
        locked, moto_endpoint):
    """On an Object Lock bucket (always versioned) a delete adds a delete marker: prune and
    GC work, and every version stays retained until its lock ends (the runbook says to
    expire noncurrent versions with a lifecycle rule)."""
    from datetime import datetime, timedelta, timezone

    from freezegun import freeze_time

    from demo.guestdata import make_container

    lab, s3 = locked, s3_client(moto_endpoint)
    s3.create_bucket(Bucket="vault", ObjectLockEnabledForBucket=True)
    lab.config.write_text(lab.config.read_text() + "\n[retention.vault]\nkeep_last = 1\n")
    lab.ok("replicate", "--to", "vault")
    (lab.node("node1") / "ct101").rename(lab.root / "old-ct101")
    make_container(lab.node("node1"), 101, "web1", files=40, mib=2, seed=99)
    lab.ok("backup", "ct101")
    lab.ok("replicate", "--to", "vault")
    r = lab.ok("prune", "ct101", "-r", "vault", "--json").json()
    assert r["result"]["details"]["removed"] == 1
    for hours in (49, 98):
        with freeze_time(datetime.now(timezone.utc) + timedelta(hours=hours), tick=True):
            lab.ok("repo", "gc", "vault")
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket="vault")["Contents"]}
    versions = s3.list_object_versions(Bucket="vault")
    hidden = {m["Key"] for m in versions.get("DeleteMarkers", [])}
    assert any("/packs/" in k for k in hidden) and not hidden & listed
    victim = next(v for v in versions["Versions"] if v["Key"] in hidden and "/packs/" in v["Key"])
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
        s3.delete_object(Bucket="vault", Key=victim["Key"], VersionId=victim["VersionId"])
    assert lab.ok("verify", "--all", "--json").json()["status"] == "success"


def test_packs_recent_points_share_have_their_retention_extended(locked, moto_endpoint):
    """A pack written on the first night is referenced by every later night's point: its
    retention is pushed to object_lock_days ahead once less than two thirds are left, so a
    recent point never depends on an object whose lock is about to end."""
    from datetime import datetime, timedelta, timezone

    from freezegun import freeze_time

    lab, s3 = locked, s3_client(moto_endpoint)
    s3.create_bucket(Bucket="vault", ObjectLockEnabledForBucket=True)
    lab.ok("replicate", "--to", "vault")

    def until(key):
        return s3.head_object(Bucket="vault", Key=key)["ObjectLockRetainUntilDate"]

    packs = [o["Key"] for o in s3.list_objects_v2(Bucket="vault")["Contents"] if "/packs/" in o["Key"]]
    first = {k: until(k) for k in [*packs, "site-a/config"]}
    start = datetime.now(timezone.utc)
    with freeze_time(start + timedelta(days=5), tick=True):  # 25 of 30 days left: not due
        lab.ok("backup", "ct101")
        lab.ok("replicate", "--to", "vault")
    assert {k: until(k) for k in first} == first
    with freeze_time(start + timedelta(days=25), tick=True):  # 5 days left: due
        lab.ok("backup", "ct101")
        lab.ok("replicate", "--to", "vault")
    later = {k: until(k) for k in first}
    assert later["site-a/config"] >= start + timedelta(days=54)
    extended = [k for k in packs if later[k] >= start + timedelta(days=54)]
    assert extended and all(later[k] == first[k] for k in packs if k not in extended)
    # the packs extended are exactly those ct101's point references (vm200's are not)
    assert 0 < len(extended) < len(packs)
