"""The Object Lock retention keeper, against a recording stand-in for the S3 backend's
retention calls (the real calls are tested on moto in tests/unit/cli/test_object_lock.py)."""

from __future__ import annotations

import json

from vzbackup.errors import ObjectNotFound, RepositoryError
from vzbackup.repo.lockkeeper import DAY, RetentionKeeper


class Store:
    url = "s3://vault/"
    lock_days = 30

    def __init__(self, dates: dict[str, float], refuse: bool = False):
        self.dates, self.refuse = dates, refuse
        self.retained: dict[str, float] = {}
        self.heads: list[str] = []
        self.extended: list[str] = []

    def stat(self, key):
        return object() if key in self.dates else None

    def retention_until(self, key):
        self.heads.append(key)
        if key not in self.dates:
            raise ObjectNotFound(key)
        return self.dates[key]

    def extend_retention(self, key, until):
        if self.refuse:
            raise RepositoryError(f"{self.url}: cannot extend the retention of {key}: AccessDenied")
        self.extended.append(key)
        self.dates[key] = self.retained[key] = until


def test_only_what_is_due_is_extended_and_dates_are_remembered(tmp_path):
    now = 1_000_000_000.0
    store = Store({"config": now + 29 * DAY, "packs/aa/1": now + 5 * DAY,
                   "packs/bb/2": now + 25 * DAY})
    keeper = RetentionKeeper(store, tmp_path)
    assert keeper.keep(["packs/aa/1", "packs/bb/2", "packs/cc/gone"], now) == 1
    assert store.extended == ["packs/aa/1"] and store.dates["packs/aa/1"] == now + 30 * DAY
    remembered = json.loads((tmp_path / "retention.json").read_text())
    assert set(remembered) == {"config", "packs/aa/1", "packs/bb/2"}
    store.heads.clear()
    again = RetentionKeeper(store, tmp_path)  # another process: asks the store nothing
    assert again.keep(["packs/aa/1", "packs/bb/2"], now + DAY) == 0 and store.heads == []
    assert again.keep(["packs/bb/2"], now + 6 * DAY) == 1  # 19 days left: now due


def test_a_refused_extension_is_logged_not_raised(tmp_path, caplog):
    now = 1_000_000_000.0
    store = Store({"config": now + DAY, "packs/aa/1": now + DAY}, refuse=True)
    assert RetentionKeeper(store, tmp_path).keep(["packs/aa/1"], now) == 0
    assert "could not be extended" in caplog.text and "PutObjectRetention" in caplog.text
