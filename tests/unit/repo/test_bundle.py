"""Branch bundles at the repository layer: a sealed tar holding a replica of a repository's
points; every check of ``open_bundle`` before anything is written."""

from __future__ import annotations

import os

import pytest

from vzbackup.errors import BadBundle
from vzbackup.repo import bundle as bundle_mod
from vzbackup.repo.bundle import BundleStore
from vzbackup.repo.keys import Passphrase

from .conftest import backup, make_repo, restore

DESCRIPTION = {"format": "vzbackup-bundle", "version": 1, "branch": {"name": "expo"}}


def _written(tmp_path, repo, manifests, passphrase=None):
    store = BundleStore(lambda name: passphrase, tmp_path / "work", passphrase)
    info = store.write(tmp_path / "out" / "b.vzb", DESCRIPTION,
                       [(repo, m.id) for m in manifests])
    return store, info


@pytest.mark.parametrize("encryption", ["none", "aes-256-gcm"])
def test_a_bundle_round_trips_its_points_and_leaves_no_work_files(tmp_path, encryption):
    pw = "pw" if encryption != "none" else None
    repo = make_repo(tmp_path / "src", encryption=encryption, passphrase=pw)
    data = [os.urandom(150_000), os.urandom(80_000) + bytes(50_000)]
    manifests = [backup(repo, d)[0] for d in data]
    (tmp_path / "out").mkdir()
    store, info = _written(tmp_path, repo, manifests, Passphrase(pw) if pw else None)
    assert info.points == 2 and info.encrypted == (pw is not None)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.vzb"]
    assert not list((tmp_path / "work").iterdir())
    opened = store.open(tmp_path / "out" / "b.vzb", tmp_path / "into", info.digest)
    assert opened.description == DESCRIPTION and opened.digest == info.digest
    assert [restore(opened.repository, m.id) for m in manifests] == data


def test_a_file_changed_between_the_check_and_the_copy_is_refused(tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "src")
    manifest, _ = backup(repo, os.urandom(100_000))
    (tmp_path / "out").mkdir()
    store, info = _written(tmp_path, repo, [manifest])
    path = tmp_path / "out" / "b.vzb"
    real = bundle_mod.LocalBackend

    def changing(root):  # the copy pass starts: someone rewrites a byte of the file
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 1
        path.write_bytes(bytes(data))
        return real(root)

    monkeypatch.setattr(bundle_mod, "LocalBackend", changing)
    with pytest.raises(BadBundle, match="does not match its seal|changed"):
        store.open(path, tmp_path / "into")
    assert not (tmp_path / "into").exists()
