"""Stage moves that cannot drop data.

Each stage names which side is authoritative for a write (answers it) and which sides
hold the data (docs/turnout.md §4):

| stage                  | authoritative                | holds the data |
|------------------------|------------------------------|----------------|
| local                  | local                        | local          |
| dualwrite, shadow      | local                        | both           |
| canary N               | N % of actors remote, rest local | both       |
| live, rampdown         | remote                       | both           |
| remote                 | remote                       | remote         |

A move that makes a side authoritative for actors it did not answer for before must
first have that side hold everything the old authority wrote: the channel into it is
drained (bounded, with progress) before the flag changes, and drained again after, for
the writes that were in flight while the workers switched (one flag refresh plus the
longest request). A side that never received the other's writes (from `local` straight
to a remote-authoritative stage) is refused with what to run instead. `force` skips
the checks; the caller audits it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from shims.errors import Conflict
from shims.flags.model import Flag, describe_flag
from shims.mirror import LOCAL, REMOTE, Channel

Progress = Callable[[str], None]


class MoveRefused(Conflict):
    """The move would lose or hide data; the message says what to run instead."""

    code = "move_refused"


def remote_share(flag: Flag) -> float:
    """The share of actors (0-100) whose writes the remote side answers."""
    if flag.mode == "canary":
        return flag.percent
    return 100.0 if flag.mode in ("live", "rampdown", "remote") else 0.0


def gaining_sides(old: Flag, new: Flag) -> tuple[str, ...]:
    """The sides that become authoritative for actors they did not answer for before."""
    before, after = remote_share(old), remote_share(new)
    return (REMOTE,) if after > before else (LOCAL,) if after < before else ()


@dataclass(frozen=True)
class MovePlan:
    old: Flag
    new: Flag
    gaining: tuple[str, ...]
    refusal: str | None = None


def plan_move(old: Flag, new: Flag) -> MovePlan:
    gaining = gaining_sides(old, new)
    refusal = None
    if REMOTE in gaining and old.mode == "local":
        refusal = (f"{new.feature}: the service has not received the monolith's writes in "
                   f"stage local. Move to dualwrite, run `turnout data copy {new.feature}` and "
                   f"`turnout data verify {new.feature}`, then to "
                   f"{describe_flag(new)} (or --force)")
    return MovePlan(old=old, new=new, gaining=gaining, refusal=refusal)


class StageMover:
    """Moves a feature's flag, draining the channels into each gaining side around it.

    `channels[side]` carries the other side's changes into `side`; `set_flag` writes the
    new flag (and its audit row); `settle_seconds` covers workers still routing by the
    old flag: one refresh interval plus the longest request."""

    def __init__(self, channels: dict[str, Channel], set_flag: Callable[[], Flag], *,
                 wait_seconds: float = 60.0, settle_seconds: float = 2.0,
                 progress: Progress = lambda _: None, sleep: Callable[[float], None] = time.sleep):
        self._channels = channels
        self._set_flag = set_flag
        self._wait = wait_seconds
        self._settle = settle_seconds
        self._progress = progress
        self._sleep = sleep

    def move(self, plan: MovePlan, *, force: bool = False) -> Flag:
        if plan.refusal and not force:
            raise MoveRefused(plan.refusal)
        if not force:
            for side in plan.gaining:
                self._drain_into(side, since=time.time(), why="before the move")
        flag = self._set_flag()
        if plan.gaining:
            flipped = time.time()
            self._sleep(self._settle)
            for side in plan.gaining:
                self._drain_into(side, since=flipped + self._settle, why="after the move",
                                 refuse=False)
        return flag

    def _drain_into(self, side: str, *, since: float, why: str, refuse: bool = True) -> None:
        """Until nothing changed before `since` waits to reach `side`, or the time is up."""
        channel = self._channels[side]
        deadline = time.monotonic() + self._wait
        owner = "service" if side == LOCAL else "monolith"
        while True:
            try:
                channel.drain()
                backlog = channel.backlog()
            except Exception as exc:  # the other side is down: say so, name the way out
                if not refuse:
                    self._progress(f"could not drain the {owner}'s outbox {why}: {exc}; the "
                                   "mirror applier keeps trying")
                    return
                raise MoveRefused(f"the {owner}'s changes could not be brought to the "
                                  f"{side} side ({exc}); bring it back, or --force") from exc
            oldest_change = time.time() - backlog.oldest_seconds
            if backlog.entries == 0 or oldest_change > since:
                return
            self._progress(f"{why}: {backlog.entries} changes of the {owner} still to reach "
                           f"the {side} side (oldest {backlog.oldest_seconds:.1f}s)")
            if time.monotonic() >= deadline:
                if not refuse:
                    return
                raise MoveRefused(
                    f"{backlog.entries} changes of the {owner} did not reach the {side} side "
                    f"within {self._wait:g}s (is the mirror refusing one? see the "
                    f"`mirror_change_refused` log lines); nothing was moved. Retry, or --force")
            self._sleep(0.2)
