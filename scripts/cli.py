"""The `turnout` command: what a migrating team runs from a shell.

    turnout demo-data            create the databases and seed demo accounts and data
    turnout up [--config FILE]   start circusd with every process and wait until healthy
    turnout status               circus watchers and each process's /healthz
    turnout down                 stop circusd and every process under it

Every error is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monolith.config import ConfigError


def _home(config: Path) -> Path:
    return config.resolve().parent


def cmd_demo_data(args: argparse.Namespace) -> int:
    from scripts.demo_data import ADMIN_EMAIL, ADMIN_PASSWORD, DEMO_EMAIL, DEMO_PASSWORD, seed

    result = seed()
    print(f"database: {result.database_url}")
    created = ", ".join(result.created) if result.created else "nothing (already seeded)"
    print(f"created: {created}")
    print(f"demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}   admin: {ADMIN_EMAIL} / {ADMIN_PASSWORD}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from scripts import stack
    from scripts.demo_data import DEMO_EMAIL, DEMO_PASSWORD

    env = stack.stack_environment(_home(args.config))
    stack.start(args.config, env, wait=args.wait)
    for name, url, _ in stack.status(env):
        print(f"{name:<10} {url}  healthy")
    monolith_url = stack.PROCESSES[0].url(env)
    print(f"\nOpen {monolith_url}/ and log in as {DEMO_EMAIL} / {DEMO_PASSWORD}")
    print(f"Logs: {env['TURNOUT_RUN_DIR']}/logs/   Inspect: circusctl --endpoint "
          f"{stack.endpoint(env)} status   Stop: turnout down")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from scripts import stack

    env = stack.stack_environment(_home(args.config))
    print(stack.circusctl(env, "status").rstrip())
    rows = stack.status(env)
    for name, url, healthy in rows:
        print(f"{name:<10} {url}  {'healthy' if healthy else 'NOT HEALTHY'}")
    return 0 if all(healthy for *_, healthy in rows) else 1


def cmd_down(args: argparse.Namespace) -> int:
    from scripts import stack

    stack.stop(stack.stack_environment(_home(args.config)))
    print("circusd stopped")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="turnout", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo-data", help="create and seed the embedded databases").set_defaults(
        func=cmd_demo_data)
    for name, func, text in (("up", cmd_up, "start everything under circusd"),
                             ("status", cmd_status, "show watchers and health"),
                             ("down", cmd_down, "stop circusd and every process")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--config", type=_existing_file, default=Path("circus.ini"),
                         help="circus configuration (default: ./circus.ini)")
        sub.set_defaults(func=func)
        if name == "up":
            sub.add_argument("--wait", type=float, default=60.0,
                             help="seconds to wait for every /healthz (default 60)")
    return parser


def _existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value} does not exist (run from the project directory "
                                         "or pass --config)")
    return path


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from scripts.stack import StackError

    try:
        return args.func(args)
    except (ConfigError, StackError) as exc:
        print(f"turnout: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
