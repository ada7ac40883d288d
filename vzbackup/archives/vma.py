"""The VMA header (pve-qemu ``vma_spec.txt``), read only for the VM's config.

Big-endian. ``magic "VMA\\0", version 1, uuid[16], ctime u64, md5[16], blob_buffer_offset,
blob_buffer_size, header_size`` (u32 each), 1984 reserved bytes, ``config_names[256]`` and
``config_data[256]`` (u32 offsets into the blob buffer), a reserved u32, then 256 device
entries of 32 bytes. A blob is a little-endian u16 length followed by its bytes.
"""

from __future__ import annotations

import struct

MAGIC = b"VMA\0"
_HEAD = struct.Struct(">4sI16sQ16sIII")
_CONFIGS_AT = _HEAD.size + 1984
MAX_CONFIGS = 256


class NotVma(ValueError):
    pass


def vma_configs(head: bytes) -> dict[str, bytes]:
    """The config blobs (``qemu-server.conf``, ``qemu-server.fw``) from the first bytes of a
    VMA stream. Raises ``NotVma`` when the bytes are not a VMA header."""
    if len(head) < _HEAD.size or head[:4] != MAGIC:
        raise NotVma("no VMA magic at the start")
    _magic, version, _uuid, _ctime, _md5, blob_at, blob_size, header_size = _HEAD.unpack_from(head)
    if version != 1:
        raise NotVma(f"VMA version {version} (only 1 exists)")
    if blob_at + blob_size > len(head) or header_size > len(head):
        return {}  # a header larger than what was read: the config is not needed to go on
    names = struct.unpack_from(f">{MAX_CONFIGS}I", head, _CONFIGS_AT)
    data = struct.unpack_from(f">{MAX_CONFIGS}I", head, _CONFIGS_AT + 4 * MAX_CONFIGS)
    blobs = head[blob_at:blob_at + blob_size]
    out = {}
    for n, d in zip(names, data):
        if n and d:
            out[_blob(blobs, n).decode("utf-8", "replace").rstrip("\0")] = _blob(blobs, d)
    return out


def _blob(blobs: bytes, at: int) -> bytes:
    if at + 2 > len(blobs):
        raise NotVma("a config offset points outside the blob buffer")
    (size,) = struct.unpack_from("<H", blobs, at)
    if at + 2 + size > len(blobs):
        raise NotVma("a config blob runs past the blob buffer")
    return blobs[at + 2:at + 2 + size]


def vma_header(configs: dict[str, bytes], *, ctime: int = 0, uuid: bytes = bytes(16)) -> bytes:
    """A minimal VMA header holding ``configs`` and no device (for tests and fixtures)."""
    blob = bytearray(b"\0")  # offset 0 means "none"
    offsets = []
    for name, value in configs.items():
        pair = []
        for item in (name.encode() + b"\0", value):
            pair.append(len(blob))
            blob += struct.pack("<H", len(item)) + item
        offsets.append(pair)
    blob_at = _CONFIGS_AT + 8 * MAX_CONFIGS + 4 + 32 * MAX_CONFIGS
    header_size = blob_at + len(blob)
    out = bytearray(_HEAD.pack(MAGIC, 1, uuid, ctime, bytes(16), blob_at, len(blob), header_size))
    out += bytes(1984)
    names = [p[0] for p in offsets] + [0] * (MAX_CONFIGS - len(offsets))
    data = [p[1] for p in offsets] + [0] * (MAX_CONFIGS - len(offsets))
    out += struct.pack(f">{MAX_CONFIGS}I", *names) + struct.pack(f">{MAX_CONFIGS}I", *data)
    out += bytes(4 + 32 * MAX_CONFIGS) + blob
    return bytes(out)
