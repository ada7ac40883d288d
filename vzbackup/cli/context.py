"""The app context a command finds in ``ctx.obj``: the config is read on first use."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from ..config import Config, find_config_path, load_config
from ..errors import UsageError
from ..logs import setup_logging
from ..wiring import App, secrets_of
from .render import ConsoleReporter


@dataclass
class CliContext:
    config_path: str | None
    verbose: bool = False
    quiet: bool = False
    _app: App | None = field(default=None, repr=False)

    def config(self) -> Config:
        return load_config(find_config_path(self.config_path))

    @property
    def app(self) -> App:
        if self._app is None:
            config = self.config()
            setup_logging(config.log_level, config.log_file, verbose=self.verbose,
                          secrets=secrets_of(config))
            self._app = App(config, ConsoleReporter(quiet=self.quiet))
        return self._app


pass_cli = click.make_pass_decorator(CliContext)


def check_repositories(config: Config, names: tuple[str, ...] | list[str], option: str) -> None:
    """``UsageError`` naming the first of ``names`` that no [repositories.*] table defines."""
    for name in names:
        if name not in config.repositories:
            raise UsageError(f"{option} {name}: no such repository (known: "
                             f"{', '.join(sorted(config.repositories)) or 'none'})")
