"""Shared launcher of the fake PVE tools: ``tests/fakes/bin/<tool>`` imports this."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))))


def main(tool: str) -> None:
    from tests.fakes.pve.tools import run

    raise SystemExit(run(tool, sys.argv[1:]))
