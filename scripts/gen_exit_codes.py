"""Print docs/reference/exit-codes.md from the error classes (``make docs``)."""

from vzbackup.errors import EXIT_ERROR, EXIT_OK, EXIT_WARNING, all_error_classes


def render() -> str:
    lines = [
        "# Exit codes",
        "",
        "Generated from `vzbackup/errors.py` by `make docs`; a test keeps it current.",
        "",
        "A command over several guests exits with the failures' code when they all share one,",
        "and with 20 when they differ. Bands: 0 ok, 1 warning, 2 unexpected error,",
        "3-99 specific errors, 100-127 specific warnings, 128+N killed by signal N",
        "(130 interrupted, 143 terminated).",
        "",
        "| code | error | meaning | next step |",
        "|---|---|---|---|",
        f"| {EXIT_OK} | - | success | - |",
        f"| {EXIT_WARNING} | - | success with warnings | read the warnings |",
        f"| {EXIT_ERROR} | VzError | unexpected error (a bug) | re-run with --verbose, report it |",
    ]
    seen = {EXIT_ERROR}
    for cls in all_error_classes():
        if cls.exit_code in seen:
            continue
        seen.add(cls.exit_code)
        hint = cls.default_hint.replace("|", "\\|")
        lines.append(f"| {cls.exit_code} | {cls.__name__} | {cls.summary} | {hint} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
