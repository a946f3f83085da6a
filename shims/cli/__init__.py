"""The `turnout` command for any app (shims/cli/commands.py has the commands, project.py the
project file that names the app's registry, settings and circus.ini)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from shims.cli.commands import main as run

    return run(argv)
