"""Entry point of every fake tool: dispatch, and print ``Die`` as Perl's die does."""

from __future__ import annotations

import sys

from .cli import Die


def run(tool: str, argv: list[str]) -> int:
    try:
        return _dispatch(tool, argv)
    except Die as e:
        sys.stdout.flush()
        sys.stderr.write("".join(line + "\n" for line in e.lines))
        return e.code


def _dispatch(tool: str, argv: list[str]) -> int:
    from . import guests, pvesh, restore, vzdump

    if tool == "vzdump":
        return vzdump.main(argv)
    if tool == "pvesh":
        return pvesh.main(argv)
    if tool == "qmrestore":
        return restore.qmrestore(argv)
    if tool in ("pct", "qm"):
        if not argv:
            raise Die("400 not enough arguments", f"{tool} <COMMAND> [ARGS] [OPTIONS]")
        if tool == "pct" and argv[0] == "restore":
            return restore.pct_restore(argv[1:])
        return guests.run("lxc" if tool == "pct" else "qemu", argv[0], argv[1:])
    raise Die(f"fake PVE: no tool {tool}")
