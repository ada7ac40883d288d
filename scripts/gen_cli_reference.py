"""Print docs/reference/cli.md from the click commands' own --help (``make docs``)."""

import click

from vzbackup.cli.main import cli


def _walk(group: click.Group, ctx: click.Context, path: list[str]):
    for name in sorted(group.list_commands(ctx)):
        cmd = group.get_command(ctx, name)
        sub = click.Context(cmd, info_name=name, parent=ctx)
        yield path + [name], cmd, sub
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, sub, path + [name])


def render() -> str:
    root = click.Context(cli, info_name="vzbackup", terminal_width=100, **cli.context_settings)
    parts = ["# Command-line reference", "",
             "Generated from the commands' `--help` by `make docs`; a test keeps it current.", "",
             "```", cli.get_help(root), "```", ""]
    for path, cmd, ctx in _walk(cli, root, []):
        parts += [f"## vzbackup {' '.join(path)}", "", "```", cmd.get_help(ctx), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
