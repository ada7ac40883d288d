"""A clone's config: new MACs, remapped bridges, no static address of the source's."""

from __future__ import annotations

import random

import pytest

from vzbackup.domain.clone import (
    NetworkMapError, clone_config, macs, new_mac, next_free_vmid, parse_network_map,
    production_exposure,
)

CT = {"hostname": "web1", "arch": "amd64", "lock": "backup",
      "net0": "name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:2A:3B:4C,ip=10.0.0.5/24,gw=10.0.0.1,type=veth",
      "net1": "name=eth1,bridge=vmbr1,hwaddr=BC:24:11:2A:3B:4D,ip=dhcp,ip6=auto,type=veth"}
VM = {"name": "app", "net0": "virtio=A2:C0:43:77:08:A0,bridge=vmbr0",
      "smbios1": "uuid=6d1e2f3a-0000-4000-8000-000000000001,manufacturer=x"}


def rand(seed: int = 1):
    return random.Random(seed).randbytes


def test_every_mac_is_new_locally_administered_unicast():
    cloned = clone_config(CT, hostname="staging", network=parse_network_map(None), randbytes=rand())
    assert macs(cloned).isdisjoint(macs(CT)) and len(macs(cloned)) == 2
    for mac in macs(cloned):
        first = int(mac[:2], 16)
        assert first & 0x02 and not first & 0x01
    assert cloned["hostname"] == "staging" and "lock" not in cloned


def test_static_addresses_dropped_dynamic_kept_and_bridges_remapped():
    cloned = clone_config(CT, hostname=None, network=parse_network_map("vmbr0=vmbr9"),
                          randbytes=rand())
    assert "bridge=vmbr9" in cloned["net0"] and "ip=" not in cloned["net0"]
    assert "gw=" not in cloned["net0"] and cloned["net0"].startswith("name=eth0,")
    assert "bridge=vmbr1" in cloned["net1"] and "ip=dhcp" in cloned["net1"]
    kept = clone_config(CT, hostname=None, network=parse_network_map("keep-ip"), randbytes=rand())
    assert "ip=10.0.0.5/24" in kept["net0"]


def test_isolated_takes_every_interface_off_its_bridge():
    cloned = clone_config(CT, hostname=None, network=parse_network_map("isolated"), randbytes=rand())
    assert all("bridge=" not in cloned[k] for k in ("net0", "net1"))


def test_vm_model_key_gets_the_new_mac_and_smbios_uuid_goes():
    cloned = clone_config(VM, hostname="app2", network=parse_network_map(None), randbytes=rand())
    assert cloned["net0"].startswith("virtio=") and "A2:C0:43:77:08:A0" not in cloned["net0"]
    assert cloned["name"] == "app2" and cloned["smbios1"] == "manufacturer=x"


@pytest.mark.parametrize("text", ["vmbr0", "isolated,vmbr0=vmbr1", "isolated,keep-ip", "a b=c"])
def test_bad_network_maps_are_refused(text):
    with pytest.raises(NetworkMapError):
        parse_network_map(text)


def test_next_free_vmid_and_mac_format():
    assert next_free_vmid(set()) == 100
    assert next_free_vmid({101, 200, 105}) == 201
    assert len(new_mac(rand()).split(":")) == 6


def test_production_exposure_names_kept_bridges_and_addresses():
    src = {"net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:2A:3B:4C,ip=10.0.0.5/24",
           "net1": "virtio=A2:C0:43:77:08:A0,bridge=vmbr1"}

    def exposure(text):
        net = parse_network_map(text)
        return production_exposure(src, clone_config(src, hostname="c", network=net,
                                                     randbytes=lambda n: bytes(n)), net)

    assert exposure(None) == ["net0 stays on bridge vmbr0, a bridge of the source",
                              "net1 stays on bridge vmbr1, a bridge of the source"]
    assert exposure("vmbr0=vmbr9") == ["net1 stays on bridge vmbr1, a bridge of the source"]
    assert exposure("vmbr0=vmbr9,vmbr1=vmbr8") == []
    assert exposure("isolated") == []
    assert exposure("vmbr0=vmbr9,vmbr1=vmbr8,keep-ip") == [
        "net0 keeps the source's address ip=10.0.0.5/24 (keep-ip)"]
    assert exposure("vmbr0=vmbr1,vmbr1=vmbr0") == [  # swapped: both still production
        "net0 stays on bridge vmbr1, a bridge of the source",
        "net1 stays on bridge vmbr0, a bridge of the source"]
