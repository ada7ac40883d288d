"""The LVM2 emulator as a fixture (``fake_lvm``)."""

from tests.fakes.lvm_lab import fake_lvm  # noqa: F401
