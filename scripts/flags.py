"""`turnout flags ...`: read and change the flags every process routes by.

The CLI never hangs on the store: it waits at most CLI_BUSY_TIMEOUT for another process's
lock, and every failure (a damaged, missing, locked or unreachable store; a file restored
from an older copy) is a FlagStoreError whose message names the store and what to run.
"""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

from monolith.config import load_config
from monolith.wiring import FEATURES
from shims.flags import recovery
from shims.flags.model import Flag, describe_flag, validate_flag
from shims.flags.sqlite_file import require_directory, sqlite_path
from shims.flags.store import SqlFlagStore, version_time
from shims.mirror import LOCAL, REMOTE, active_targets
from shims.mismatches import metadata as mismatch_tables
from shims.stages import StageMover, plan_move

CLI_BUSY_TIMEOUT = 3.0  # seconds a command waits for another process's SQLite lock


def default_actor() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def connect() -> SqlFlagStore:
    """The store the processes read, not yet opened (kill and repair handle a damaged one)."""
    url = load_config()["FLAGS_URL"]
    path = sqlite_path(url)
    if path is not None:
        require_directory(path)
    return SqlFlagStore.from_url(url, FEATURES, busy_timeout=CLI_BUSY_TIMEOUT,
                                 companions=(mismatch_tables,))


def open_store() -> SqlFlagStore:
    """The store, checked: a damaged file is refused with what to do, never changed."""
    store = connect()
    store.open()
    store.verify()
    return store


def list_flags(store: SqlFlagStore) -> list[str]:
    snapshot = store.snapshot()
    lines = [f"{'feature':<10} {'mode':<14} {'remote side':<12} data"]
    for name, info in sorted(FEATURES.items()):
        flag = snapshot.flag(name)
        mode = describe_flag(flag) + (" (killed: local)" if snapshot.killed and
                                      flag.mode != "local" else "")
        lines.append(f"{name:<10} {mode:<14} {'yes' if info.has_remote else 'not yet':<12} "
                     f"{'own database' if info.owns_data else 'shared'}")
    for feature, problem in snapshot.problems:
        lines.append(f"! {feature}: unreadable row ({problem}); workers keep its last good mode")
    restored = store.restored()
    if restored is not None:
        lines.append(f"! {restored.describe(store.where)}")
    lines += mirror_lines(snapshot.flag("runs").mode, snapshot.killed)
    lines.append(f"kill switch: {'ON - every feature is local' if snapshot.killed else 'off'}"
                 f"   {version_time(snapshot.version)}")
    return lines


def mirror_lines(mode: str, killed: bool = False) -> list[str]:
    """The runs feature's mirror backlog in each direction, read from both databases."""
    from scripts import data

    try:
        links = data.channels()
        backlogs = {side: link.backlog() for side, link in links.items()}
    except Exception as exc:  # the flags are still worth showing
        return [f"mirror (runs): unknown ({exc.__class__.__name__}: {exc})"]
    active = active_targets(mode, killed)
    lines = []
    for side, label in ((REMOTE, "monolith -> service"), (LOCAL, "service -> monolith")):
        backlog = backlogs[side]
        state = "" if side in active else f"  (held: stage {mode} does not mirror this way)"
        lines.append(f"mirror (runs) {label}: {backlog.entries} waiting, oldest "
                     f"{backlog.oldest_seconds:.1f}s{state}")
    return lines


def set_flag(store: SqlFlagStore, feature: str, mode: str, percent: object, *, actor: str,
             force: bool = False, reason: str | None = None, wait: float = 60.0,
             progress=print) -> Flag:
    """`turnout flags set`: a feature that owns data moves through `shims.stages`, which
    drains the mirror into a side before it becomes authoritative; `--force` skips that
    and is audited with its reason."""
    new = validate_flag(store.features, feature, mode, percent)
    if force:
        actor = f"{actor} (forced: {reason})"
    info = store.features[feature]
    if not info.owns_data:
        return store.set(feature, mode, percent, actor=actor)
    from scripts import data

    old = store.snapshot().flag(feature)
    mover = StageMover(data.channels(), lambda: store.set(feature, mode, percent, actor=actor),
                       wait_seconds=wait, progress=progress)
    return mover.move(plan_move(old, new), force=force)


def history(store: SqlFlagStore, feature: str | None, limit: int) -> list[str]:
    entries = store.history(feature, limit)
    if not entries:
        return ["no changes recorded"]
    return [f"{e.at:%Y-%m-%d %H:%M:%S}  {e.actor:<28} {e.feature:<8} {e.old} -> {e.new}"
            for e in entries]


def kill(actor: str) -> list[str]:
    note = recovery.kill(connect(), actor=actor)
    return ["kill switch ON: every feature answers locally (flags kept; "
            "`turnout flags unkill` restores them)", *([note] if note else [])]


def repair(actor: str) -> list[str]:
    return [recovery.repair(connect(), actor=actor)]


def restore(backup: Path, actor: str) -> list[str]:
    return [recovery.restore(connect(), backup, actor=actor)]
