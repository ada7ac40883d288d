"""OpenVZ container configs (``/etc/vz/conf/<ctid>.conf``): shell-style ``KEY="value"``.

Only plain assignments are read; comments, blank lines and anything a shell would have to
evaluate are kept as text on the way back, so a rewritten file keeps what it had.
"""

from __future__ import annotations

import re

_ASSIGN = re.compile(r'^\s*([A-Z_][A-Z0-9_]*)=(?:"([^"]*)"|\'([^\']*)\'|([^\s"\'#]*))\s*(?:#.*)?$')


def parse_vzconf(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _ASSIGN.match(line)
        if m:
            out[m.group(1)] = next(g for g in m.groups()[1:] if g is not None)
    return out


def update_vzconf(text: str, changes: dict[str, str]) -> str:
    """``text`` with ``changes`` applied: existing keys rewritten in place, new ones added."""
    lines, done = [], set()
    for line in text.splitlines():
        m = _ASSIGN.match(line)
        if m and m.group(1) in changes:
            line = f'{m.group(1)}="{_quoted(changes[m.group(1)])}"'
            done.add(m.group(1))
        lines.append(line)
    lines += [f'{k}="{_quoted(v)}"' for k, v in changes.items() if k not in done]
    return "\n".join(lines) + "\n"


def _quoted(value: str) -> str:
    if any(c in value for c in '"\\`\n'):
        raise ValueError(f"config value {value!r}: quotes, backslashes, backticks and newlines "
                         "are not allowed")
    return value

