"""The Proxmox tests run against the PVE emulators in tests/fakes (a fake cluster per test)."""

from tests.fakes.pve.fixture import pve  # noqa: F401
