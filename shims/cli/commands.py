"""The `turnout` command: what a migrating team runs from a shell, for its own app.

    turnout up [--wait S]        start circusd with every process and wait until healthy
    turnout status               circus watchers and each process's /healthz
    turnout down                 stop circusd and every process under it
    turnout flags list|set|kill|unkill|history   the flags every process routes by
    turnout flags advance|rollback FEATURE       one stage along the path; an advance only
                                                 if the evidence passes its gates (exit 1
                                                 with each failed gate otherwise)
    turnout flags guard FEATURE on|off           the rollback guard's switch
    turnout flags evidence [FEATURE]             what every worker saw of each side
    turnout flags repair|restore BACKUP          after a damaged store; back to a backup
    turnout data copy|verify FEATURE             move and compare a feature's rows
                                                 (verify exits 1 on a difference, 3 while
                                                 rows are still in flight)
    turnout new-service FEATURE --port N         write the feature's service, its wsgi
                                                 module, its circus sections, a contract test

Everything comes from the project file, turnout.toml (shims/cli/project.py): the app's
feature registry, its settings, circus.ini. Every error is one line on stderr and exit
code 2, never a traceback. This module imports only the standard library until a command
runs, so `turnout --help` answers even where the app does not import.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


# --- up, status, down ----------------------------------------------------------------------

def _stack(args: argparse.Namespace, project, *, services: bool = False):
    from shims.cli import stack
    from shims.cli.circus import read_circus

    env = stack.environment(project, os.environ)
    circus = read_circus(project.circus_path(args.config), env)
    if services:
        stack.with_service_urls(env, project.registry, circus)
    return env, circus


def _row(name: str, url: str | None, problem: str | None) -> str:
    if url is None:
        return f"{name:<13} -  not checked: it serves on no circus socket"
    return f"{name:<13} {url}  {'healthy' if problem is None else 'NOT HEALTHY: ' + problem}"


def cmd_up(args: argparse.Namespace, project) -> int:
    from shims.cli import stack

    env, circus = _stack(args, project, services=True)
    stack.start(circus, env, wait=args.wait, before_up=project.hook("before_up"),
                before_up_path=project.file.hooks.get("before_up"))
    for name, url, _ in stack.status(circus.watchers):
        print(_row(name, url, None))
    print(f"\nLogs: {env['TURNOUT_RUN_DIR']}/logs/   Inspect: circusctl --endpoint "
          f"{circus.endpoint} status   Stop: turnout down")
    return 0


def cmd_status(args: argparse.Namespace, project) -> int:
    from shims.cli import stack

    env, circus = _stack(args, project)
    stack.require_circus(circus.endpoint, env, " (start everything with `turnout up`)")
    print(stack.circusctl(circus.endpoint, env, "status").rstrip())
    rows = stack.status(circus.watchers)
    for row in rows:
        print(_row(*row))
    return 0 if all(problem is None for *_, problem in rows) else 1


def cmd_down(args: argparse.Namespace, project) -> int:
    from shims.cli import stack

    env, circus = _stack(args, project)
    stack.stop(circus.endpoint, env)
    print("circusd stopped")
    return 0


# --- flags and data: run with the environment the processes get ----------------------------

def _in_app_environment(command: Callable[[argparse.Namespace, Any], int]):
    """The app's settings are read as its processes would read them: with the project's
    `[env]` defaults and each service's URL where circus serves it."""

    def run(args: argparse.Namespace, project) -> int:
        from shims.cli import stack
        from shims.cli.circus import read_circus
        from shims.cli.project import applied

        env = stack.environment(project, os.environ)
        circus_file = project.root / project.file.circus
        if circus_file.is_file():
            stack.with_service_urls(env, project.registry, read_circus(circus_file, env))
        # What it creates in the run directory (a flag store, its WAL file) is its owner's
        # alone, like what circusd's processes create ([circus] umask = 077). Not for
        # new-service: the code it writes is read by the app user.
        previous = os.umask(0o077)
        try:
            with applied(env):
                return command(args, project)
        finally:
            os.umask(previous)

    return run


@_in_app_environment
def cmd_flags(args: argparse.Namespace, project) -> int:
    from shims.cli import flags
    from shims.cli.sides import DataSides

    settings, features = project.settings, project.registry.infos()
    actor = args.actor or flags.default_actor()
    sides = DataSides(project)
    try:
        if args.action == "kill":  # works on a damaged store too: no open_store() first
            lines = flags.kill(flags.connect(settings, features), actor)
        elif args.action == "repair":
            lines = flags.repair(flags.connect(settings, features), actor)
        elif args.action == "restore":
            lines = flags.restore(flags.connect(settings, features), args.backup, actor)
        elif args.action in GATED:
            return _gated(flags.open_store(settings, features), args, project, sides, actor)
        else:
            lines = _flags_on_open_store(flags, flags.open_store(settings, features), args,
                                         project, sides, actor)
    finally:
        sides.close()
    print("\n".join(lines))
    return 0


GATED = ("advance", "rollback", "guard", "evidence")


def _gated(store, args: argparse.Namespace, project, sides, actor: str) -> int:
    from shims.cli import gates
    from shims.gates.verdict import GatesFailed
    from shims.guard.switches import GuardSwitches

    if args.action == "guard":
        print("\n".join(gates.guard(store, project, args.feature, args.state, actor)))
        return 0
    _require_reason(args)
    moves = gates.gated_moves(store, project, sides, wait=getattr(args, "wait", 60))
    try:
        if args.action == "advance":
            lines = gates.advance(moves, args.feature, actor=actor, force=args.force,
                                  reason=args.reason, window=args.window)
        elif args.action == "rollback":
            lines = gates.rollback(moves, args.feature, actor=actor, force=args.force,
                                   reason=args.reason)
        else:
            lines = gates.evidence(moves, GuardSwitches(store, project.file.policy),
                                   args.feature, args.window)
    except GatesFailed as refused:
        print("\n".join(gates.refusal_lines(refused)), file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def _require_reason(args: argparse.Namespace) -> None:
    from shims.settings import ConfigError

    if getattr(args, "force", False) and not (args.reason or "").strip():
        raise ConfigError("--force needs --reason \"...\": it is recorded in the audit log")


def _flags_on_open_store(flags, store, args: argparse.Namespace, project, sides,
                         actor: str) -> list[str]:
    from shims.settings import ConfigError

    if args.action == "list":
        return flags.list_flags(store, project.registry, sides)
    if args.action == "set":
        if args.force and not (args.reason or "").strip():
            raise ConfigError("--force needs --reason \"...\": it is recorded in the audit log")
        flag = flags.set_flag(store, project.registry, sides, args.feature, args.mode,
                              args.percent, actor=actor, force=args.force, reason=args.reason,
                              wait=args.wait)
        return [f"{flag.feature} -> {flags.describe_flag(flag)} (every worker within a second)"]
    if args.action == "unkill":
        store.unkill(actor=actor)
        return ["kill switch off: features follow their flags again"]
    return flags.history(store, args.feature, args.limit)


@_in_app_environment
def cmd_data(args: argparse.Namespace, project) -> int:
    from shims.cli import data
    from shims.cli.sides import DataSides
    from shims.mirror import LOCAL, REMOTE

    feature = _data_feature(args, project.registry)
    sides = DataSides(project)
    try:
        links = sides.channels(feature)
        monolith, service = links[REMOTE].source, links[LOCAL].source
        if args.action == "copy":
            link = links[REMOTE] if args.source == "monolith" else links[LOCAL]
            done = data.copy(link, feature.data.tables, progress=print)
            print(f"copied {args.feature} from the {args.source}: {done.snapshot_rows} rows in "
                  f"the snapshot, then {done.caught_up} changes made meanwhile")
            for change, message in done.refused[:10]:
                print(f"  refused by the target: {change.entity} {change.id}: {message}")
            if done.refused or done.backlog_left:
                print(f"copy incomplete: {len(done.refused)} rows refused, {done.backlog_left} "
                      "changes still waiting; fix the refused rows and run the copy again")
                return 1
        differences = data.verify(monolith, service, feature.data.tables,
                                  settle_seconds=args.settle)
    finally:
        sides.close()
    print("\n".join(data.report(differences)))
    if not all(d.clean for d in differences):
        return 1
    if any(d.in_flight for d in differences):
        print(f"rows still in flight after {args.settle:g}s: the mirror has not delivered them "
              "yet (see `turnout flags list` for its backlog)")
        return 3
    return 0


def _data_feature(args: argparse.Namespace, registry):
    """The feature named, if it owns data: the choices come from the app's registry."""
    from shims.settings import ConfigError

    owning = [feature for feature in registry if feature.data is not None]
    found = next((f for f in owning if f.name == args.feature), None)
    if found is None:
        choices = ", ".join(f.name for f in owning) or "none: no feature owns data"
        args.refuse(f"argument feature: invalid choice: {args.feature!r} (choose from "
                    f"{choices})")
    if not found.data.tables:
        raise ConfigError(f"feature {found.name!r}: its DataPath names no tables "
                          "(DataPath(tables={table: row kind, ...}), parents first), so there "
                          "is nothing to copy or verify")
    return found


# --- the parser ------------------------------------------------------------------------------

def cmd_new_service(args: argparse.Namespace, project) -> int:
    from shims.scaffold import plan_service, write_service

    feature = project.registry.feature(args.feature)
    plan = plan_service(feature, project.file.registry, project=project.root,
                        circus_ini=project.circus_path(), port=args.port, package=args.package)
    for path in write_service(plan):
        print(f"wrote {path.relative_to(project.root)}")
    print(f"\nNext: `turnout up`, then `turnout flags set {feature.name} shadow` (the monolith "
          f"finds the service at TURNOUT_{feature.url_setting}, from its circus socket)")
    return 0


def _add_new_service_parser(commands) -> None:
    new = commands.add_parser("new-service", help="write a feature's service app, its wsgi "
                                                  "module, its circus sections and a contract "
                                                  "test")
    new.add_argument("feature", help="a feature of the registry, with a service name and "
                                     "remote clients")
    new.add_argument("--port", type=_port, required=True,
                     help="the port circus gives the service's socket")
    new.add_argument("--package", default=None,
                     help="the service's Python package (default: <service>_service)")
    new.set_defaults(func=cmd_new_service)


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 1 to 65535, got {value!r}")
    return int(value)


def _add_flags_parser(commands) -> None:
    flags = commands.add_parser("flags", help="read and change the routing flags")
    actions = flags.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every feature's mode and the kill switch")
    setter = actions.add_parser("set", help="route a feature: turnout flags set FEATURE canary "
                                            "--percent 30")
    setter.add_argument("feature")
    setter.add_argument("mode", help="local, dualwrite, shadow, canary, live, rampdown, remote")
    setter.add_argument("--percent", type=_percent, default=None,
                        help="for canary: share of actors (0-100) sent to the remote side")
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
    restore.add_argument("backup", type=Path, help="a copy of the flags database")
    _add_gated_parsers(actions)
    history = actions.add_parser("history", help="who changed what, when")
    history.add_argument("feature", nargs="?")
    history.add_argument("--limit", type=_positive, default=30)
    for action in actions.choices.values():
        action.add_argument("--actor", help="name recorded in the audit log (default user@host)")
    flags.set_defaults(func=cmd_flags)


def _add_gated_parsers(actions) -> None:
    advance = actions.add_parser("advance", help="one stage forward, if the evidence passes "
                                                 "the feature's gates")
    rollback = actions.add_parser("rollback", help="one stage back (no gates)")
    for action, forced in ((advance, "past the gates (the drains still happen)"),
                           (rollback, "at once, without draining the mirror")):
        action.add_argument("feature")
        action.add_argument("--wait", type=_positive, default=60,
                            help="seconds to let the mirror bring a side up to date first "
                                 "(default 60); then the move is refused")
        action.add_argument("--force", action="store_true",
                            help=f"move {forced}; audited, with --reason")
        action.add_argument("--reason", help="why --force: recorded in the audit log")
    advance.add_argument("--window", type=_positive, default=None,
                         help="seconds of evidence to judge (default: the gates' window)")
    guard = actions.add_parser("guard", help="switch the rollback guard for a feature")
    guard.add_argument("feature")
    guard.add_argument("state", choices=("on", "off"))
    evidence = actions.add_parser("evidence", help="each side's calls, errors, latency, "
                                                   "shadows, breaker, mirror; the next gates")
    evidence.add_argument("feature", nargs="?")
    evidence.add_argument("--window", type=_positive, default=900,
                          help="seconds of evidence (default 900)")


def _add_data_parser(commands) -> None:
    data = commands.add_parser("data", help="copy and verify a feature's rows across sides")
    actions = data.add_subparsers(dest="action", required=True)
    copy = actions.add_parser("copy", help="copy every row to the other side (idempotent), "
                                           "then verify")
    verify = actions.add_parser("verify", help="compare counts and per-row checksums; exit 1 "
                                               "on any difference")
    for action in (copy, verify):
        action.add_argument("feature", help="a feature that owns data")
        action.add_argument("--settle", type=float, default=5.0,
                            help="seconds to let rows in flight land before calling them "
                                 "different (default 5)")
        action.set_defaults(refuse=action.error)
    copy.add_argument("--from", dest="source", choices=("monolith", "service"),
                      default="monolith", help="the authoritative side (default: monolith)")
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


def _existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value} does not exist")
    return path.resolve()


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line too (subcommand parsers inherit the class)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="turnout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", metavar="FILE",
                        help="the project file (default: ./turnout.toml, or $TURNOUT_PROJECT)")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (("up", cmd_up, "start every process under circusd"),
                             ("status", cmd_status, "show watchers and health"),
                             ("down", cmd_down, "stop circusd and every process")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--config", type=_existing_file, default=None,
                         help="circus configuration (default: the project's `circus`)")
        sub.set_defaults(func=func)
        if name == "up":
            sub.add_argument("--wait", type=float, default=60.0,
                             help="seconds to wait for every /healthz (default 60)")
    _add_flags_parser(commands)
    _add_data_parser(commands)
    _add_new_service_parser(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    from shims.cli.project import load

    if getattr(args, "backup", None) is not None:
        args.backup = args.backup.resolve()  # as the user meant it, before the chdir below
    project = load(args.project, os.environ, Path.cwd())
    project.enter()
    return args.func(args, project)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sqlalchemy.exc import SQLAlchemyError

    from shims.cli.stack import StackError
    from shims.errors import TurnoutError
    from shims.settings import ConfigError

    try:
        return _run(args)
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
