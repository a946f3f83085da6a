"""`turnout flags ...`: read and change the flags every process of the app routes by.

The features are the app's registry's; the store is the one its settings name
(`FLAGS_URL`). The CLI never hangs on the store: it waits at most CLI_BUSY_TIMEOUT for
another process's lock, and every failure (a damaged, missing, locked or unreachable
store; a file restored from an older copy) is a FlagStoreError whose message names the
store and what to run.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from shims.cli.sides import DataSides
from shims.flags import recovery
from shims.flags.model import FeatureInfo, Flag, describe_flag, validate_flag
from shims.flags.sqlite_file import require_directory, sqlite_path
from shims.flags.store import SqlFlagStore, version_time
from shims.mirror import LOCAL, REMOTE, active_targets
from shims.mismatches import metadata as mismatch_tables
from shims.registry import Registry
from shims.stages import StageMover, plan_move

CLI_BUSY_TIMEOUT = 3.0  # seconds a command waits for another process's SQLite lock


def default_actor() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def connect(settings: Mapping[str, Any], features: Mapping[str, FeatureInfo]) -> SqlFlagStore:
    """The store the processes read, not yet opened (kill and repair handle a damaged one)."""
    url = settings["FLAGS_URL"]
    path = sqlite_path(url)
    if path is not None:
        require_directory(path)
    return SqlFlagStore.from_url(url, features, busy_timeout=CLI_BUSY_TIMEOUT,
                                 companions=(mismatch_tables,))


def open_store(settings: Mapping[str, Any], features: Mapping[str, FeatureInfo]) -> SqlFlagStore:
    """The store, checked: a damaged file is refused with what to do, never changed."""
    store = connect(settings, features)
    store.open()
    store.verify()
    return store


def list_flags(store: SqlFlagStore, registry: Registry, sides: DataSides) -> list[str]:
    snapshot = store.snapshot()
    width = max([9, *(len(name) for name in store.features)]) + 1
    lines = [f"{'feature':<{width}} {'mode':<14} {'remote side':<12} data"]
    for name, info in sorted(store.features.items()):
        flag = snapshot.flag(name)
        mode = describe_flag(flag) + (" (killed: local)" if snapshot.killed and
                                      flag.mode != "local" else "")
        lines.append(f"{name:<{width}} {mode:<14} {'yes' if info.has_remote else 'not yet':<12} "
                     f"{'own database' if info.owns_data else 'shared'}")
    for feature, problem in snapshot.problems:
        lines.append(f"! {feature}: unreadable row ({problem}); workers keep its last good mode")
    restored = store.restored()
    if restored is not None:
        lines.append(f"! {restored.describe(store.where)}")
    for feature in registry:
        if feature.data is not None:
            lines += mirror_lines(feature.name, lambda f=feature: sides.channels(f),
                                  snapshot.flag(feature.name).mode, snapshot.killed)
    lines.append(f"kill switch: {'ON - every feature is local' if snapshot.killed else 'off'}"
                 f"   {version_time(snapshot.version)}")
    return lines


def mirror_lines(feature: str, channels: Callable[[], Mapping[str, Any]], mode: str,
                 killed: bool = False) -> list[str]:
    """A feature's mirror backlog in each direction, read from each side's outbox."""
    try:
        backlogs = {side: link.backlog() for side, link in channels().items()}
    except Exception as exc:  # the flags are still worth showing
        return [f"mirror ({feature}): unknown ({exc.__class__.__name__}: {exc})"]
    active = active_targets(mode, killed)
    lines = []
    for side, label in ((REMOTE, "monolith -> service"), (LOCAL, "service -> monolith")):
        backlog = backlogs[side]
        state = "" if side in active else f"  (held: stage {mode} does not mirror this way)"
        lines.append(f"mirror ({feature}) {label}: {backlog.entries} waiting, oldest "
                     f"{backlog.oldest_seconds:.1f}s{state}")
    return lines


def set_flag(store: SqlFlagStore, registry: Registry, sides: DataSides, feature: str,
             mode: str, percent: object, *, actor: str, force: bool = False,
             reason: str | None = None, wait: float = 60.0, progress=print) -> Flag:
    """`turnout flags set`: a feature that owns data moves through `shims.stages`, which
    drains the mirror into a side before it becomes authoritative; `--force` skips that
    and is audited with its reason."""
    new = validate_flag(store.features, feature, mode, percent)
    if force:
        actor = f"{actor} (forced: {reason})"
    if not store.features[feature].owns_data:
        return store.set(feature, mode, percent, actor=actor)
    old = store.snapshot().flag(feature)
    mover = StageMover(sides.channels(registry[feature]),
                       lambda: store.set(feature, mode, percent, actor=actor),
                       wait_seconds=wait, progress=progress)
    return mover.move(plan_move(old, new), force=force)


def history(store: SqlFlagStore, feature: str | None, limit: int) -> list[str]:
    entries = store.history(feature, limit)
    if not entries:
        return ["no changes recorded"]
    return [f"{e.at:%Y-%m-%d %H:%M:%S}  {e.actor:<28} {e.feature:<8} {e.old} -> {e.new}"
            for e in entries]


def kill(store: SqlFlagStore, actor: str) -> list[str]:
    note = recovery.kill(store, actor=actor)
    return ["kill switch ON: every feature answers locally (flags kept; "
            "`turnout flags unkill` restores them)", *([note] if note else [])]


def repair(store: SqlFlagStore, actor: str) -> list[str]:
    return [recovery.repair(store, actor=actor)]


def restore(store: SqlFlagStore, backup: Path, actor: str) -> list[str]:
    return [recovery.restore(store, backup, actor=actor)]
