"""Stage moves (shims/stages.py): which side gains authority, what is refused, and that a
side is brought up to date before it answers."""

from __future__ import annotations

import pytest

from shims.flags.model import Flag
from shims.mirror import LOCAL, REMOTE, Channel
from shims.stages import MoveRefused, StageMover, gaining_sides, plan_move
from notes_app import Flaky, Side


def flag(mode: str, percent: float = 0.0) -> Flag:
    return Flag("notes", mode, percent)


@pytest.mark.parametrize(("old", "new", "gaining"), [
    (flag("local"), flag("dualwrite"), ()),
    (flag("dualwrite"), flag("shadow"), ()),
    (flag("shadow"), flag("canary", 10), (REMOTE,)),
    (flag("canary", 10), flag("canary", 50), (REMOTE,)),
    (flag("canary", 50), flag("canary", 10), (LOCAL,)),
    (flag("canary", 50), flag("live"), (REMOTE,)),
    (flag("live"), flag("rampdown"), ()),
    (flag("rampdown"), flag("remote"), ()),
    (flag("remote"), flag("rampdown"), ()),
    (flag("remote"), flag("local"), (LOCAL,)),
    (flag("rampdown"), flag("dualwrite"), (LOCAL,)),
])
def test_which_side_gains_authority(old, new, gaining):
    assert gaining_sides(old, new) == gaining


def test_local_straight_to_a_remote_authority_is_refused_with_what_to_run():
    plan = plan_move(flag("local"), flag("remote"))
    assert "turnout data copy notes" in plan.refusal and "dualwrite" in plan.refusal
    assert plan_move(flag("local"), flag("canary", 5)).refusal
    assert plan_move(flag("dualwrite"), flag("remote")).refusal is None
    assert plan_move(flag("remote"), flag("local")).refusal is None


@pytest.fixture
def sides(tmp_path):
    monolith, service = Side(tmp_path / "m.db"), Side(tmp_path / "s.db")
    yield monolith, service
    monolith.close()
    service.close()


def mover(monolith, service, flags, *, target=None, wait=2.0):
    channels = {REMOTE: Channel("notes", REMOTE, monolith.sync, target or service.sync),
                LOCAL: Channel("notes", LOCAL, service.sync, monolith.sync)}
    said = []

    def set_flag():
        flags.append("set")
        return flag("placeholder")

    return StageMover(channels, set_flag, wait_seconds=wait, settle_seconds=0.01,
                      progress=said.append, sleep=lambda _: None), said


def test_going_back_from_remote_brings_the_services_writes_home_first(sides):
    monolith, service = sides
    ada = service.author("ada@example.com")
    service.note(ada, "acknowledged in remote")
    flags = []
    move, _ = mover(monolith, service, flags)
    move.move(plan_move(flag("remote"), flag("local")))
    assert flags == ["set"]
    assert monolith.texts() == {"acknowledged in remote"}
    assert service.sync.backlog().entries == 0


def test_a_move_whose_backlog_cannot_be_delivered_is_refused_and_nothing_moves(sides):
    monolith, service = sides
    monolith.note(monolith.author("ada@example.com"))
    target = Flaky(service.sync)
    target.down = True
    flags = []
    move, _ = mover(monolith, service, flags, target=target)
    with pytest.raises(MoveRefused) as refused:
        move.move(plan_move(flag("dualwrite"), flag("live")))
    assert "could not be brought to the remote side" in refused.value.message
    assert flags == []


def test_force_moves_at_once_without_draining(sides):
    monolith, service = sides
    monolith.note(monolith.author("ada@example.com"))
    flags = []
    move, _ = mover(monolith, service, flags)
    move.move(plan_move(flag("local"), flag("remote")), force=True)
    assert flags == ["set"]


def test_a_refused_row_blocks_the_move_after_the_wait_with_progress(sides, monkeypatch):
    monolith, service = sides
    monolith.note(monolith.author("ada@example.com"))
    flags = []
    move, said = mover(monolith, service, flags, wait=0.0)

    def refuse_everything(self, changes, result):
        result.refused += [(c, "refused") for c in changes]
        return []

    monkeypatch.setattr(Channel, "_deliver", refuse_everything)
    with pytest.raises(MoveRefused) as refused:
        move.move(plan_move(flag("shadow"), flag("canary", 10)))
    assert "did not reach the remote side" in refused.value.message
    assert said and "2 changes of the monolith" in said[0]
    assert flags == []


def test_the_drain_after_the_move_never_refuses(sides):
    """Once the flag moved, a failing drain is reported; the applier keeps trying."""
    monolith, service = sides
    target = Flaky(service.sync)
    ada = monolith.author("ada@example.com")
    channels = {REMOTE: Channel("notes", REMOTE, monolith.sync, target),
                LOCAL: Channel("notes", LOCAL, service.sync, monolith.sync)}

    def set_flag_while_a_write_is_in_flight():
        monolith.note(ada, "written by a worker still on the old flag")
        target.down = True
        return flag("live")

    said = []
    moved = StageMover(channels, set_flag_while_a_write_is_in_flight, wait_seconds=1,
                       settle_seconds=0.01, progress=said.append, sleep=lambda _: None).move(
        plan_move(flag("shadow"), flag("live")))
    assert moved == flag("live")
    assert any("keeps trying" in line for line in said)
    assert monolith.sync.backlog().entries == 1  # still there for the applier
