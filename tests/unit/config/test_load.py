"""Configuration: one schema, every problem at once, file and key path named."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from vzbackup.config import load_config
from vzbackup.config.schema import SCHEMA
from vzbackup.errors import ConfigError

TOP = Path(__file__).resolve().parents[3]

MINIMAL = """
[backup]
repository = "main"
[nodes.node1]
root = "nodes/node1"
[repositories.main]
url = "file://repo"
"""


def write(tmp_path: Path, text: str, name: str = "vzbackup.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_minimal_config_fills_defaults_and_resolves_relative_paths(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.nodes["node1"].root == tmp_path / "nodes/node1"
    assert config.nodes["node1"].platform == "directory"
    assert config.repositories["main"].url == f"file://{tmp_path / 'repo'}"
    assert config.repositories["main"].chunk_avg_kib == 32
    assert config.catalog_url == "sqlite:////var/lib/vzbackup/catalog.db"


def test_every_problem_reported_at_once_with_file_and_key_path(tmp_path):
    path = write(tmp_path, """
[backup]
repository = "nope"
colour = "blue"
[nodes.node1]
platform = "hyperv"
[repositories.main]
url = "file:///r"
compression_level = 40
encryption = "aes-256-gcm"
[bogus]
""")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    text = str(e.value)
    for expected in (f"{path}: backup.colour: unknown key",
                     f"{path}: nodes.node1.platform: must be one of directory",
                     f"{path}: nodes.node1.root: required",
                     f"{path}: repositories.main.compression_level: must be at most 19",
                     f"{path}: bogus: unknown section"):
        assert expected in text, text
    assert len(e.value.problems) >= 5


def test_cross_checks(tmp_path):
    path = write(tmp_path, MINIMAL.replace('repository = "main"', 'repository = "offsite"')
                 + 'encryption = "aes-256-gcm"\n')
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "backup.repository: no repository named 'offsite'" in str(e.value)
    assert "repositories.main: encryption needs passphrase_file or passphrase_env" in str(e.value)


def test_dropins_merge_in_sorted_order_and_are_named_in_errors(tmp_path):
    main = write(tmp_path, MINIMAL)
    (tmp_path / "conf.d").mkdir()
    write(tmp_path / "conf.d", '[nodes.node2]\nroot = "/srv/n2"\n', "10-node2.toml")
    write(tmp_path / "conf.d", '[nodes.node2]\nroot = "/srv/n2b"\n', "20-override.toml")
    assert load_config(main).nodes["node2"].root == Path("/srv/n2b")
    bad = write(tmp_path / "conf.d", '[nodes.node3]\nroots = "/x"\n', "30-typo.toml")
    with pytest.raises(ConfigError) as e:
        load_config(main)
    assert f"{bad}: nodes.node3.roots: unknown key" in str(e.value)


def test_malformed_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read as TOML"):
        load_config(write(tmp_path, "[backup\n"))
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "absent.toml")


def test_wrong_types_are_named(tmp_path):
    path = write(tmp_path, MINIMAL + "chunk_avg_kib = \"64\"\n[log]\nlevel = 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "repositories.main.chunk_avg_kib: must be a int" in str(e.value)
    assert "log.level: must be a str" in str(e.value)


def test_example_config_documents_every_option_and_loads():
    example = TOP / "config" / "vzbackup.example.toml"
    doc = tomllib.loads(example.read_text())
    for name, section in SCHEMA.items():
        tables = list(doc[name].values()) if section.named else [doc[name]]
        assert tables, f"example lacks [{name}]"
        shown = set().union(*(set(t) for t in tables))
        assert shown == set(section.options), f"[{name}] in the example differs from the schema"
    text = example.read_text()
    for name, section in SCHEMA.items():
        for key in section.options:
            assert re.search(rf"^#.*\n{key} = ", text, re.M), f"{name}.{key} has no comment in the example"
    load_config(example)


def test_demo_config_loads():
    config = load_config(TOP / "config" / "demo.toml")
    assert set(config.nodes) == {"node1", "node3", "node7"}


def test_ssh_nodes_are_checked(tmp_path):
    path = write(tmp_path, MINIMAL.replace('[repositories.main]', '''[nodes.node7]
transport = "ssh"
root = "relative/guests"
[nodes.node8]
root = "n8"
port = 2222
[repositories.peer]
url = "sftp://root@node9/var/lib/vzbackup/replica"
node = "node9"
[repositories.main]'''))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    problems = e.value.problems
    assert f'{path}: nodes.node7.host: required with transport = "ssh"' in problems
    assert f"{path}: nodes.node7.root: must be an absolute path on the node" in problems
    assert f'{path}: nodes.node8.port: only for transport = "ssh"' in problems
    assert f"{path}: repositories.peer.node: no node named 'node9' under [nodes]" in problems


def test_an_ssh_node_keeps_its_paths_as_written(tmp_path):
    path = write(tmp_path, MINIMAL + '''[nodes.node7]
transport = "ssh"
host = "10.0.0.7"
root = "/srv/guests"
key_file = "keys/id_ed25519"
''')
    node = load_config(path).nodes["node7"]
    assert node.root == Path("/srv/guests")  # on the node
    assert node.key_file == (tmp_path / "keys/id_ed25519").resolve()  # on this host
    assert (node.host, node.port, node.user, node.connect_timeout) == ("10.0.0.7", 22, "root", 10)


def test_a_host_that_never_backs_up_needs_no_repository(tmp_path):
    """A trade-show laptop imports branch bundles: nodes and state only."""
    from vzbackup.errors import ConfigError

    path = tmp_path / "laptop.toml"
    path.write_text('[state]\ndir = "state"\n[nodes.laptop]\nroot = "node"\n')
    config = load_config(path)
    assert config.backup_repository == "" and config.repositories == {}
    path.write_text(path.read_text() + '[jobs.nightly]\nschedule = "0 1 * * *"\nall = true\n')
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "jobs.nightly.repository: empty, and backup.repository is not set" in str(e.value)
