from tests.unit.cli.conftest import lab  # noqa: F401  (the same small lab)
