from __future__ import annotations

import pytest

from vzbackup.platforms.guestconf import format_config, parse_config, read_config, write_config


def test_parse_skips_comments_and_snapshot_sections():
    text = "#description\n\nhostname: web1\nnet0: name=eth0,ip=10.0.0.2/24\n[snap]\nhostname: old\n"
    assert parse_config(text) == {"hostname": "web1", "net0": "name=eth0,ip=10.0.0.2/24"}


def test_write_then_read_round_trips(tmp_path):
    write_config(tmp_path, {"hostname": "a", "memory": 512})
    assert read_config(tmp_path) == {"hostname": "a", "memory": "512"}
    assert read_config(tmp_path / "missing") == {}


@pytest.mark.parametrize("bad", [{"a b": "x"}, {"k": "line\nbreak"}])
def test_unwritable_entries_are_refused(bad):
    with pytest.raises(ValueError):
        format_config(bad)
