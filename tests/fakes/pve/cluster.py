"""Build a fake PVE cluster for tests: node roots sharing one ``etc/pve``, guests with
volumes, run state; and the environment that points the fake tools at a node."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

BIN = Path(__file__).resolve().parents[1] / "bin"


class FakeCluster:
    def __init__(self, base: Path, nodes: tuple[str, ...] = ("pve1", "pve2"), version: str = "8.3"):
        self.base = Path(base)
        self.shared = self.base / "cluster-etc-pve"
        (self.shared / ".fake").mkdir(parents=True, exist_ok=True)
        (self.shared / ".fake/version").write_text(version + "\n")
        for node in nodes:
            self.add_node(node)

    def add_node(self, node: str) -> Path:
        root = self.root(node)
        (root / "etc").mkdir(parents=True, exist_ok=True)
        (root / "etc/hostname").write_text(node + "\n")
        if not (root / "etc/pve").exists():
            os.symlink(self.shared, root / "etc/pve")
        for sub in ("lxc", "qemu-server"):
            (self.shared / "nodes" / node / sub).mkdir(parents=True, exist_ok=True)
        (root / "var/lib/vz/dump").mkdir(parents=True, exist_ok=True)
        return root

    def root(self, node: str) -> Path:
        return self.base / node

    def etc_pve(self, node: str) -> Path:
        return self.root(node) / "etc/pve"

    def env(self, node: str) -> dict[str, str]:
        return {"PVE_FAKE_ROOT": str(self.root(node))}

    def wrappers(self, node: str) -> Path:
        """A bin folder whose tools run the fakes as ``node`` whatever the caller's
        environment (for an agent started by sshd, which does not pass ours on)."""
        folder = self.base / f"bin-{node}"
        folder.mkdir(exist_ok=True)
        for tool in ("pvesh", "vzdump", "pct", "qm", "qmrestore"):
            path = folder / tool
            path.write_text(f"#!/bin/sh\nPVE_FAKE_ROOT='{self.root(node)}' exec '{BIN / tool}' \"$@\"\n")
            path.chmod(0o755)
        return folder

    # ---- guests -----------------------------------------------------------------------------

    def conf_path(self, node: str, kind: str, vmid: int) -> Path:
        return self.shared / "nodes" / node / ("lxc" if kind == "ct" else "qemu-server") / f"{vmid}.conf"

    def volume(self, node: str, volid: str) -> Path:
        sid, _, name = volid.partition(":")
        return self.root(node) / "var/lib/fakepve/volumes" / sid / name

    def add_ct(self, node: str, vmid: int, hostname: str, *, files: int = 20, seed: int = 1,
               storage: str = "local-lvm", extra: dict[str, str] | None = None) -> Path:
        volid = f"{storage}:vm-{vmid}-disk-0"
        rootfs = self.volume(node, volid)
        rng = random.Random(seed)
        for d in ("etc", "usr/bin", "var/log", "tmp", "home/demo"):
            (rootfs / d).mkdir(parents=True, exist_ok=True)
        for i in range(files):
            (rootfs / "home/demo" / f"f{i:03d}.txt").write_bytes(rng.randbytes(rng.randrange(100, 5000)))
        (rootfs / "etc/hostname").write_text(hostname + "\n")
        (rootfs / "tmp/scratch").write_text("excluded by stdexcludes\n")
        values = {"arch": "amd64", "cores": "1", "hostname": hostname, "memory": "512",
                  "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:2A:3B:4C,ip=dhcp,type=veth",
                  "ostype": "debian", "rootfs": f"{volid},size=8G", "swap": "512", **(extra or {})}
        self.write_conf(node, "ct", vmid, values)
        return rootfs

    def add_vm(self, node: str, vmid: int, name: str, *, mib: int = 4, seed: int = 2,
               storage: str = "local-lvm", extra: dict[str, str] | None = None) -> Path:
        volid = f"{storage}:vm-{vmid}-disk-0"
        disk = self.volume(node, volid)
        disk.parent.mkdir(parents=True, exist_ok=True)
        rng = random.Random(seed)
        with open(disk, "wb") as f:
            f.truncate(mib << 20)
            for _ in range(mib * 4):
                f.seek(rng.randrange(0, mib << 20, 4096))
                f.write(rng.randbytes(4096))
        values = {"boot": "order=scsi0", "cores": "2", "memory": "2048", "name": name,
                  "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0", "ostype": "l26",
                  "scsi0": f"{volid},size={mib}M", "scsihw": "virtio-scsi-pci",
                  "smbios1": "uuid=5e2a6c3d-0000-4000-8000-000000000001",
                  "vmgenid": "00000000-0000-4000-8000-000000000002", **(extra or {})}
        self.write_conf(node, "vm", vmid, values)
        return disk

    def write_conf(self, node: str, kind: str, vmid: int, values: dict[str, str]) -> None:
        path = self.conf_path(node, kind, vmid)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}: {values[k]}\n" for k in sorted(values)))

    def conf(self, node: str, kind: str, vmid: int) -> dict[str, str]:
        out = {}
        for line in self.conf_path(node, kind, vmid).read_text().splitlines():
            if line.startswith("["):
                break
            if ":" in line and not line.startswith("#"):
                k, _, v = line.partition(":")
                out[k.strip()] = v.strip()
        return out

    def set_status(self, vmid: int, status: str) -> None:
        node = self.node_of(vmid)
        self._update("status.json", lambda d: d.__setitem__(str(vmid), [status, node]))

    def status(self, vmid: int) -> str:
        value, node = self._read("status.json").get(str(vmid), ["stopped", None])
        return value if node == self.node_of(vmid) else "stopped"

    def node_of(self, vmid: int) -> str | None:
        found = list((self.shared / "nodes").glob(f"*/*/{vmid}.conf"))
        return found[0].parent.parent.name if found else None

    def set_offline(self, node: str) -> None:
        self._update("nodes.json", lambda d: d.setdefault("offline", []).append(node))

    def _read(self, name: str) -> dict:
        try:
            return json.loads((self.shared / ".fake" / name).read_text())
        except FileNotFoundError:
            return {}

    def _update(self, name: str, change) -> None:  # noqa: ANN001
        data = self._read(name)
        change(data)
        (self.shared / ".fake" / name).write_text(json.dumps(data))

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)
