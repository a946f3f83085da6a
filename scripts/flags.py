"""`turnout flags ...`: read and change the flags every process routes by."""

from __future__ import annotations

import getpass
import socket

from monolith.config import load_config
from monolith.wiring import FEATURES
from shims.flags.model import describe_flag
from shims.flags.store import SqlFlagStore


def default_actor() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def open_store() -> SqlFlagStore:
    store = SqlFlagStore.from_url(load_config()["FLAGS_URL"], FEATURES)
    store.create_schema()
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
    lines.append(f"kill switch: {'ON - every feature is local' if snapshot.killed else 'off'}"
                 f"   version: {snapshot.version}")
    return lines


def history(store: SqlFlagStore, feature: str | None, limit: int) -> list[str]:
    entries = store.history(feature, limit)
    if not entries:
        return ["no changes recorded"]
    return [f"{e.at:%Y-%m-%d %H:%M:%S}  {e.actor:<28} {e.feature:<8} {e.old} -> {e.new}"
            for e in entries]
