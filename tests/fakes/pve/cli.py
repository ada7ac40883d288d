"""Option parsing and pre-task errors shared by every PVE tool (pve.md section 3).

``--name value`` and ``-name value`` (and ``--name=value``); options may come between
positionals; a boolean takes 0/1/on/off/yes/no/true/false (any case) or nothing (1).
Errors before a task go to stderr as Perl's ``die`` prints them and exit 255.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

VMID = re.compile(r"^[1-9][0-9]{2,8}$")
_TRUE = {"1", "on", "yes", "true"}
_FALSE = {"0", "off", "no", "false"}


class Die(Exception):
    """The tool ends: ``lines`` on stderr, exit ``code`` (255 as Perl's die)."""

    def __init__(self, *lines: str, code: int = 255):
        super().__init__("\n".join(lines))
        self.lines = list(lines)
        self.code = code


@dataclass(frozen=True)
class Opt:
    kind: str  # bool | int | str | enum | vmid | vmidlist | path
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    array: bool = False  # given once per value
    pattern: str | None = None  # for str: a regex the value must match
    maxlen: int | None = None


@dataclass
class Command:
    usage: str  # e.g. "vzdump {<vmid>} [OPTIONS]"
    positionals: tuple[str, ...]  # names; a trailing "*" name takes the rest (may be empty)
    options: dict[str, Opt]
    positional_kinds: dict[str, Opt] = field(default_factory=dict)


def parse(cmd: Command, argv: list[str]) -> tuple[dict[str, object], dict[str, object]]:
    """(positionals by name, options by name) or ``Die`` with the tool's exact lines."""
    opts: dict[str, object] = {}
    raw: dict[str, list[str]] = {}
    words: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and arg != "-" and len(arg) > 1:
            name = arg.lstrip("-")
            value: str | None = None
            if "=" in name:
                name, value = name.split("=", 1)
            spec = cmd.options.get(name)
            if spec is None:
                raise Die(f"Unknown option: {name}", "400 unable to parse option", _usage(cmd))
            if value is None:
                if spec.kind == "bool":
                    if i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                        value = argv[i + 1]
                        i += 1
                    else:
                        value = "1"
                elif i + 1 < len(argv):
                    value = argv[i + 1]
                    i += 1
                else:
                    raise Die(f"Option {name} requires an argument", "400 unable to parse option",
                              _usage(cmd))
            raw.setdefault(name, []).append(value)
        else:
            words.append(arg)
        i += 1
    for name, values in raw.items():
        spec = cmd.options[name]
        if spec.kind == "bool":
            for v in values:
                if v.lower() not in _TRUE | _FALSE:
                    raise Die("400 unable to parse boolean option", _usage(cmd))
        opts[name] = values if spec.array else values[-1]
    fixed = [p for p in cmd.positionals if not p.endswith("*")]
    rest = [p for p in cmd.positionals if p.endswith("*")]
    if len(words) < len(fixed):
        raise Die("400 not enough arguments", _usage(cmd))
    if len(words) > len(fixed) and not rest:
        raise Die("400 too many arguments", _usage(cmd))
    pos: dict[str, object] = dict(zip(fixed, words))
    if rest:
        pos[rest[0].rstrip("*")] = words[len(fixed):]
    problems = []
    for name, value in list(opts.items()):
        spec = cmd.options[name]
        values = value if isinstance(value, list) else [value]
        checked = []
        for v in values:
            out, why = _check(spec, str(v))
            if why:
                problems.append(f"{name}: {why}")
            checked.append(out)
        opts[name] = checked if spec.array else checked[0]
    for name, spec in cmd.positional_kinds.items():
        if name in pos and not isinstance(pos[name], list):
            out, why = _check(spec, str(pos[name]))
            if why:
                problems.append(f"{name}: {why}")
            pos[name] = out
    if problems:
        raise Die("400 Parameter verification failed.", *problems, _usage(cmd))
    return pos, opts


def _check(spec: Opt, v: str) -> tuple[object, str | None]:
    if spec.kind == "bool":
        return v.lower() in _TRUE, None
    if spec.kind == "int":
        if not re.fullmatch(r"[+-]?\d+", v):
            return v, f"type check ('integer') failed - got '{v}'"
        n = int(v)
        if spec.minimum is not None and n < spec.minimum:
            return n, f"value must have a minimum value of {spec.minimum}"
        if spec.maximum is not None and n > spec.maximum:
            return n, f"value must have a maximum value of {spec.maximum}"
        return n, None
    if spec.kind == "enum":
        if v not in spec.choices:
            return v, (f"value '{v}' does not have a value in the enumeration "
                       f"'{', '.join(spec.choices)}'")
        return v, None
    if spec.kind == "vmid":
        if not VMID.match(v):
            return v, "invalid format - value does not look like a valid VM ID"
        return int(v), None
    if spec.kind == "vmidlist":
        ids = [x for x in re.split(r"[,\s]+", v) if x]
        if not ids or not all(VMID.match(x) for x in ids):
            return v, "invalid format - value does not look like a valid VM ID"
        return [int(x) for x in ids], None
    if spec.maxlen is not None and len(v) > spec.maxlen:
        return v, f"value may only be {spec.maxlen} characters long"
    if spec.pattern and not re.fullmatch(spec.pattern, v):
        return v, "value does not match the regex pattern"
    return v, None


def _usage(cmd: Command) -> str:
    return cmd.usage  # pve.md 3.2: the short usage line, as is
