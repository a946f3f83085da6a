"""The outbox and the mirror (shims/outbox.py, shims/mirror.py) on two real SQLite
databases, with an app's own data (tests/kit/notes_app.py): every change recorded with its
write, delivered in order with parents first, never lost when the other side is down or
refuses a row, never bounced back."""

from __future__ import annotations

import logging

import gevent
import pytest
from sqlalchemy import update

from notes_app import AUTHORS, Flaky, Side
from shims import outbox
from shims.errors import NotFound, TransportError
from shims.mirror import LOCAL, REMOTE, Channel, Lease, MirrorApplier, active_targets
from shims.sync import RowKey
from support import ManualClock


@pytest.fixture
def monolith(tmp_path):
    side = Side(tmp_path / "monolith.db")
    yield side
    side.close()


@pytest.fixture
def service(tmp_path):
    side = Side(tmp_path / "service.db")
    yield side
    side.close()


def test_the_stage_decides_which_way_changes_flow():
    assert active_targets("local") == (LOCAL,)  # the service's leftovers still come home
    for mode in ("dualwrite", "shadow", "canary", "live", "rampdown"):
        assert active_targets(mode) == (REMOTE, LOCAL)
    assert active_targets("remote") == (REMOTE,)
    # The kill switch answers everything locally: the service's writes must come home.
    assert active_targets("remote", killed=True) == active_targets("local", killed=True) \
        == (REMOTE, LOCAL)


def test_a_write_and_its_outbox_entry_share_one_transaction(monolith):
    """If the write rolls back, so does its record: no phantom change, no lost one."""
    ada = monolith.author("ada@example.com")
    with pytest.raises(NotFound):
        monolith.notes.add_note(ada.id + 1, "x")
    assert [p.entity for p in monolith.sync.pending(10)] == ["author"]


def test_a_session_that_changes_nothing_records_nothing(monolith):
    ada = monolith.author("ada@example.com")
    note = monolith.note(ada)
    monolith.sync.settle(monolith.sync.pending(10))
    monolith.notes.update_note(ada.id, note.id, note.text)  # the same values again
    assert monolith.sync.pending(10) == []


def test_drain_delivers_parents_first_and_settles(monolith, service):
    ada = monolith.author("ada@example.com")
    notes = [monolith.note(ada, f"note {n}") for n in range(3)]
    result = Channel("notes", REMOTE, monolith.sync, service.sync).drain(limit=2)
    assert result.refused == [] and result.settled == 4
    assert service.notes.list_notes(ada.id) == notes
    assert monolith.sync.backlog().entries == 0
    assert service.sync.backlog().entries == 0  # a mirrored change is not sent back


def test_a_note_mirrored_before_its_author_brings_the_author(monolith, service):
    """Issue 8: 'FOREIGN KEY constraint failed' when a row was mirrored before its parent."""
    ada = monolith.author("ada@example.com")
    note = monolith.note(ada)
    Channel("notes", REMOTE, monolith.sync, service.sync).push([RowKey("note", note.id)])
    assert service.notes.get_note(ada.id, note.id) == note


def test_changes_wait_in_the_outbox_while_the_target_is_down(monolith, service):
    """Issue 8: skipped mirror writes were never made up."""
    target = Flaky(service.sync)
    link = Channel("notes", REMOTE, monolith.sync, target)
    ada = monolith.author("ada@example.com")
    target.down = True
    for n in range(5):
        note = monolith.note(ada, f"while down {n}")
        with pytest.raises(TransportError):
            link.push([RowKey("note", note.id)])
    with pytest.raises(TransportError):
        link.drain()
    assert monolith.sync.backlog().entries == 6
    target.down = False
    assert link.drain().settled == 6
    assert service.texts() == {f"while down {n}" for n in range(5)}


def test_a_refused_change_stays_pending_and_holds_back_no_other(monolith, service):
    ada = monolith.author("ada@example.com")
    bob = monolith.author("bob@example.com")
    Channel("notes", REMOTE, monolith.sync, service.sync).drain()
    # The service holds another author under bob's new email: bob's change cannot land.
    clash = service.author("bob-new@example.com")
    with monolith.engine.begin() as connection:
        connection.execute(update(AUTHORS).where(AUTHORS.c.id == bob.id)
                           .values(email="bob-new@example.com"))
        outbox.record(connection, [("author", bob.id)])
    monolith.note(ada, "after the clash")
    result = Channel("notes", REMOTE, monolith.sync, service.sync).drain()
    assert [(c.entity, c.id) for c, _ in result.refused] == [("author", bob.id)]
    assert "after the clash" in service.texts()
    assert [(p.entity, p.id) for p in monolith.sync.pending(10)] == [("author", bob.id)]
    service.notes.delete_author(clash.id)
    assert Channel("notes", REMOTE, monolith.sync, service.sync).drain().refused == []
    assert monolith.sync.pending(10) == []


def test_changes_cross_both_ways_and_the_newest_wins(monolith, service):
    """Canary: both sides write; each side's change reaches the other, and an older state
    never replaces a newer one."""
    ada = monolith.author("ada@example.com")
    note = monolith.note(ada, "first")
    out, home = (Channel("notes", REMOTE, monolith.sync, service.sync),
                 Channel("notes", LOCAL, service.sync, monolith.sync))
    stale = monolith.sync.export([RowKey("note", note.id)])
    out.drain()
    service.notes.update_note(ada.id, note.id, "renamed on the service")
    home.drain()
    assert monolith.notes.get_note(ada.id, note.id).text == "renamed on the service"
    service.sync.apply(stale)  # a late, old export arriving after the newer change
    assert service.notes.get_note(ada.id, note.id).text == "renamed on the service"
    assert monolith.sync.backlog().entries == service.sync.backlog().entries == 0


def test_a_deleted_row_is_deleted_on_the_other_side_and_stays_deleted(monolith, service):
    ada = monolith.author("ada@example.com")
    note = monolith.note(ada)
    out = Channel("notes", REMOTE, monolith.sync, service.sync)
    out.drain()
    alive = service.sync.export([RowKey("note", note.id)])
    monolith.notes.delete_note(ada.id, note.id)
    out.drain()
    with pytest.raises(NotFound):
        service.notes.get_note(ada.id, note.id)
    service.sync.apply(alive)
    with pytest.raises(NotFound):
        service.notes.get_note(ada.id, note.id)


# --- the applier -------------------------------------------------------------------------

def applier(monolith, service, mode, **options):
    channels = {REMOTE: Channel("notes", REMOTE, monolith.sync, service.sync),
                LOCAL: Channel("notes", LOCAL, service.sync, monolith.sync)}
    reports = []
    lease = Lease(monolith.engine, "mirror:notes", holder=options.pop("holder", "worker-1"))
    lease.create_schema()
    return MirrorApplier("notes", channels, lambda: (mode[0], False), lease,
                         report=lambda *args: reports.append(args), **options), reports


def test_the_applier_drains_each_way_its_stage_needs(monolith, service):
    mode = ["local"]
    worker, reports = applier(monolith, service, mode)
    monolith.note(monolith.author("ada@example.com"), "written in local")
    worker.step()
    assert service.texts() == set()  # local: nothing goes to the service
    mode[0] = "dualwrite"
    worker._next_try.clear()
    worker.step()
    assert service.texts() == {"written in local"}
    bob = service.author("bob@example.com")
    service.note(bob, "written by the service")
    mode[0] = "remote"
    worker._next_try.clear()
    worker.step()
    assert "written by the service" not in monolith.texts()  # remote: held on the service
    mode[0] = "local"
    worker._next_try.clear()
    worker.step()  # back to local: the service's writes come home
    assert "written by the service" in monolith.texts()
    assert ("notes", LOCAL) in {(feature, target) for feature, target, _ in reports}


def test_only_the_lease_holder_drains_and_a_lapsed_lease_is_taken_over(monolith, service):
    clock = ManualClock(1000.0)
    first = Lease(monolith.engine, "mirror:notes", holder="a", ttl=3, clock=clock)
    second = Lease(monolith.engine, "mirror:notes", holder="b", ttl=3, clock=clock)
    first.create_schema()
    assert first.hold() and not second.hold()
    clock.advance(2)
    assert first.hold() and not second.hold()  # renewed
    clock.advance(3.5)  # a killed holder stops renewing
    assert second.hold()
    first._held_until = 0.0  # the killed holder's memory is gone with it
    assert not first.hold()


def test_the_applier_backs_off_while_the_target_is_down_and_complains_once(monolith, service,
                                                                             caplog):
    mode = ["dualwrite"]
    worker, _ = applier(monolith, service, mode, complain_every=60)
    flaky = Flaky(service.sync)
    worker._channels[REMOTE] = Channel("notes", REMOTE, monolith.sync, flaky)
    monolith.note(monolith.author("ada@example.com"), "waits")
    flaky.down = True
    with caplog.at_level(logging.WARNING, logger="turnout.mirror"):
        for _ in range(5):
            worker.step()
    assert sum("mirror_stalled" in r.getMessage() for r in caplog.records) == 1
    flaky.down = False
    worker._next_try.clear()
    worker.step()
    assert service.texts() == {"waits"}


def test_the_applier_runs_in_its_own_greenlet_until_stopped(monolith, service):
    mode = ["dualwrite"]
    worker, _ = applier(monolith, service, mode, interval=0.01)
    worker.start()
    try:
        ada = monolith.author("ada@example.com")
        monolith.note(ada, "delivered in the background")
        deadline = gevent.Timeout(5)
        with deadline:
            while "delivered in the background" not in service.texts():
                gevent.sleep(0.01)
    finally:
        worker.stop()


def test_mirroring_to_and_from_postgresql(monolith, postgres_url):
    """The ON CONFLICT upsert, the hybrid clock and both directions on the multi-host
    backend (the data service on PostgreSQL, the monolith on SQLite)."""
    service = Side(postgres_url)
    try:
        ada = monolith.author("ada@example.com")
        monolith.note(ada, "from sqlite")
        Channel("notes", REMOTE, monolith.sync, service.sync).drain()
        note = service.note(ada, "from postgresql")
        with service.engine.begin() as connection:
            outbox.store_version(connection, "note", note.id, 2**62)  # a far-ahead clock
        service.notes.update_note(ada.id, note.id, "renamed")
        [pending] = service.sync.pending(10)
        assert pending.version == 2**62 + 1
        Channel("notes", LOCAL, service.sync, monolith.sync).drain()
        assert monolith.texts() == service.texts() == {"from sqlite", "renamed"}
        assert service.sync.backlog().entries == 0
    finally:
        service.close()


def test_pushed_changes_are_settled_in_one_batch_by_every_workers_applier(monolith, service):
    worker, _ = applier(monolith, service, ["dualwrite"], holder="not-the-holder")
    Lease(monolith.engine, "mirror:notes", holder="someone-else").hold()
    channel = worker._channels[REMOTE]
    ada = monolith.author("ada@example.com")
    notes = [monolith.note(ada, f"pushed {n}") for n in range(3)]
    for note in notes:
        channel.push([RowKey("note", note.id)])
    assert monolith.sync.backlog().entries == 4  # delivered, not yet settled
    source = channel.source
    channel.source = Flaky(source)
    channel.source.down = True
    worker.step()  # the source is down: the settles are kept for the next step
    channel.source = source
    worker.step()
    assert monolith.sync.backlog().entries == 0
    assert service.texts() == {f"pushed {n}" for n in range(3)}
