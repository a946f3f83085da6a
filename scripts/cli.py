"""The `turnout` command: what a migrating team runs from a shell.

    turnout demo-data            create the databases and seed demo accounts and data
    turnout up [--config FILE]   start circusd with every process and wait until healthy
    turnout status               circus watchers and each process's /healthz
    turnout down                 stop circusd and every process under it
    turnout flags list|set|kill|unkill|history   the flags every process routes by
    turnout flags repair|restore BACKUP          after a damaged store; back to a backup
    turnout data copy|verify runs                move and compare a feature's rows
                                                 (verify exits 1 on a difference, 3 while
                                                 rows are still in flight)

Every error is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import os
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
        print(f"{name:<13} {url}  healthy")
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
    for name, url, problem in rows:
        print(f"{name:<13} {url}  {'healthy' if problem is None else 'NOT HEALTHY: ' + problem}")
    return 0 if all(problem is None for *_, problem in rows) else 1


def cmd_down(args: argparse.Namespace) -> int:
    from scripts import stack

    stack.stop(stack.stack_environment(_home(args.config)))
    print("circusd stopped")
    return 0


def cmd_flags(args: argparse.Namespace) -> int:
    from scripts import flags

    actor = args.actor or flags.default_actor()
    if args.action == "kill":  # works on a damaged store too: no open_store() first
        lines = flags.kill(actor)
    elif args.action == "repair":
        lines = flags.repair(actor)
    elif args.action == "restore":
        lines = flags.restore(args.backup, actor)
    else:
        lines = _flags_on_open_store(flags, args, actor)
    print("\n".join(lines))
    return 0


def _flags_on_open_store(flags, args: argparse.Namespace, actor: str) -> list[str]:
    store = flags.open_store()
    if args.action == "list":
        return flags.list_flags(store)
    if args.action == "set":
        if args.force and not (args.reason or "").strip():
            raise ConfigError("--force needs --reason \"...\": it is recorded in the audit log")
        flag = flags.set_flag(store, args.feature, args.mode, args.percent, actor=actor,
                              force=args.force, reason=args.reason, wait=args.wait)
        return [f"{flag.feature} -> {flags.describe_flag(flag)} (every worker within a second)"]
    if args.action == "unkill":
        store.unkill(actor=actor)
        return ["kill switch off: features follow their flags again"]
    return flags.history(store, args.feature, args.limit)


def cmd_data(args: argparse.Namespace) -> int:
    from scripts import data

    links = data.channels()
    monolith, service = links["remote"].source, links["local"].source
    if args.action == "copy":
        link = links["remote"] if args.source == "monolith" else links["local"]
        done = data.copy(link, progress=print)
        print(f"copied {args.feature} from the {args.source}: {done.snapshot_rows} rows in the "
              f"snapshot, then {done.caught_up} changes made meanwhile")
        for change, message in done.refused[:10]:
            print(f"  refused by the target: {change.entity} {change.id}: {message}")
        if done.refused or done.backlog_left:
            print(f"copy incomplete: {len(done.refused)} rows refused, {done.backlog_left} "
                  "changes still waiting; fix the refused rows and run the copy again")
            return 1
    differences = data.verify(monolith, service, settle_seconds=args.settle)
    print("\n".join(data.report(differences)))
    if not all(d.clean for d in differences):
        return 1
    if any(d.in_flight for d in differences):
        print(f"rows still in flight after {args.settle:g}s: the mirror has not delivered them "
              "yet (see `turnout flags list` for its backlog)")
        return 3
    return 0


def _add_flags_parser(commands) -> None:
    flags = commands.add_parser("flags", help="read and change the routing flags")
    actions = flags.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every feature's mode and the kill switch")
    setter = actions.add_parser("set", help="route a feature: turnout flags set runs canary "
                                            "--percent 30")
    setter.add_argument("feature")
    setter.add_argument("mode", help="local, dualwrite, shadow, canary, live, rampdown, remote")
    setter.add_argument("--percent", type=_percent, default=None,
                        help="for canary: share of runners (0-100) sent to the remote side")
    setter.add_argument("--wait", type=_positive, default=60,
                        help="seconds to wait for the mirror to bring a side up to date before "
                             "it becomes authoritative (default 60); then the move is refused")
    setter.add_argument("--force", action="store_true",
                        help="move without waiting for the mirror (audited, with --reason)")
    setter.add_argument("--reason", help="why --force: recorded in the audit log")
    actions.add_parser("kill", help="send every feature back to local at once (on a damaged "
                                    "store too: it is set aside for a new one)")
    actions.add_parser("unkill", help="release the kill switch")
    actions.add_parser("repair", help="after a damaged store or a copy restored by hand: "
                                      "start afresh, or make the copy's flags current")
    restore = actions.add_parser("restore", help="write a backup's flags as one change "
                                                 "(the kill switch stays as it is)")
    restore.add_argument("backup", type=Path, help="a copy of flags.db")
    history = actions.add_parser("history", help="who changed what, when")
    history.add_argument("feature", nargs="?")
    history.add_argument("--limit", type=_positive, default=30)
    for action in actions.choices.values():
        action.add_argument("--actor", help="name recorded in the audit log (default user@host)")
    flags.set_defaults(func=cmd_flags)


def _add_data_parser(commands) -> None:
    data = commands.add_parser("data", help="copy and verify a feature's rows across sides")
    actions = data.add_subparsers(dest="action", required=True)
    copy = actions.add_parser("copy", help="copy every row to the other side (idempotent), "
                                           "then verify")
    verify = actions.add_parser("verify", help="compare counts and per-row checksums; exit 1 "
                                               "on any difference")
    for action in (copy, verify):
        action.add_argument("feature", choices=("runs",))
    copy.add_argument("--from", dest="source", choices=("monolith", "service"),
                      default="monolith", help="the authoritative side (default: monolith)")
    for action in (copy, verify):
        action.add_argument("--settle", type=float, default=5.0,
                            help="seconds to let rows in flight land before calling them "
                                 "different (default 5)")
    data.set_defaults(func=cmd_data)


def _percent(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 100, got {value!r}") \
            from None
    if not 0 <= number <= 100:
        raise argparse.ArgumentTypeError(f"must be from 0 to 100, got {value}")
    return number


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {value!r}")
    return int(value)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line too (subcommand parsers inherit the class)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="turnout", description=__doc__.split("\n\n")[0])
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
    _add_flags_parser(commands)
    _add_data_parser(commands)
    return parser


def _existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value} does not exist (run from the project directory "
                                         "or pass --config)")
    return path


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sqlalchemy.exc import SQLAlchemyError

    from scripts.stack import StackError
    from shims.errors import TurnoutError

    try:
        return args.func(args)
    except BrokenPipeError:
        # `turnout flags history | head`: the reader left; say nothing more (Python docs'
        # recipe: point stdout at devnull so the interpreter's final flush stays quiet).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except TurnoutError as exc:
        print(f"turnout: {exc.message}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        print(f"turnout: the database could not be used: {exc.__class__.__name__}: "
              f"{str(getattr(exc, 'orig', exc)).splitlines()[0]}", file=sys.stderr)
        return 2
    except (ConfigError, StackError) as exc:
        print(f"turnout: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
