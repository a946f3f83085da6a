"""The outbox and the mirror (shims/outbox.py, shims/mirror.py) on two real SQLite
databases: every change recorded with its write, delivered in order with parents first,
never lost when the other side is down or refuses a row, never bounced back."""

from __future__ import annotations

import datetime as dt
import logging

import gevent
import pytest
from sqlalchemy import select, update

from monolith.accounts.service import LocalAccounts
from monolith.db import create_schema, make_sessions
from monolith.models import Run, User
from monolith.runs.service import LocalRuns
from monolith.runs.sync import LocalRunsSync
from shims import outbox
from contracts.accounts import Profile, SignUp
from contracts.runs import RunInput
from shims.errors import NotFound, TransportError
from shims.mirror import LOCAL, REMOTE, Channel, Lease, MirrorApplier, active_targets
from shims.sql import make_engine
from shims.sync import Applied, RowKey
from tests.support import ManualClock

FAST_HASH = "pbkdf2:sha256:1000"
WHEN = dt.datetime(2026, 5, 17, 7, 30)


class Side:
    def __init__(self, path):
        self.engine = make_engine(f"sqlite:///{path}", pool_size=2)
        create_schema(self.engine)
        sessions = make_sessions(self.engine)
        self.sync = LocalRunsSync(self.engine)
        self.accounts = LocalAccounts(sessions, hash_method=FAST_HASH)
        self.runs = LocalRuns(sessions)

    def user(self, email):
        return self.accounts.sign_up(SignUp(email=email, password="correct-horse-9",
                                            profile=Profile()))

    def run(self, user, name="Tempo"):
        return self.runs.add_run(user.id, RunInput(name=name, distance=5000.0, start_date=WHEN,
                                                   elapsed_time=1500))

    def names(self):
        with self.engine.connect() as connection:
            return set(connection.execute(select(Run.name)).scalars())


class Flaky:
    """A DataSync whose calls can be made to fail like a dead service."""

    def __init__(self, inner):
        self.inner = inner
        self.down = False

    def __getattr__(self, name):
        def call(*args, **kwargs):
            if self.down:
                raise TransportError("connection refused")
            return getattr(self.inner, name)(*args, **kwargs)
        return call


@pytest.fixture
def monolith(tmp_path):
    side = Side(tmp_path / "monolith.db")
    yield side
    side.engine.dispose()


@pytest.fixture
def service(tmp_path):
    side = Side(tmp_path / "service.db")
    yield side
    side.engine.dispose()


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
    ada = monolith.user("ada@example.com")
    with pytest.raises(NotFound):
        monolith.runs.add_run(ada.id + 1, RunInput(name="x", distance=1.0, start_date=WHEN,
                                                   elapsed_time=1))
    assert [p.entity for p in monolith.sync.pending(10)] == ["user"]


def test_a_session_that_changes_nothing_records_nothing(monolith):
    ada = monolith.user("ada@example.com")
    monolith.sync.settle(monolith.sync.pending(10))
    monolith.accounts.update_profile(ada.id, Profile())  # the same values again
    assert monolith.sync.pending(10) == []


def test_drain_delivers_parents_first_and_settles(monolith, service):
    ada = monolith.user("ada@example.com")
    runs = [monolith.run(ada, f"run {n}") for n in range(3)]
    result = Channel("runs", REMOTE, monolith.sync, service.sync).drain(limit=2)
    assert result.refused == [] and result.settled == 4
    assert service.runs.list_runs(ada.id, 2026, 5) == runs
    assert monolith.sync.backlog().entries == 0
    assert service.sync.backlog().entries == 0  # a mirrored change is not sent back


def test_a_run_mirrored_before_its_user_brings_the_user(monolith, service):
    """Issue 8: 'FOREIGN KEY constraint failed' when a run was mirrored before its user."""
    ada = monolith.user("ada@example.com")
    run = monolith.run(ada)
    Channel("runs", REMOTE, monolith.sync, service.sync).push([RowKey("run", run.id)])
    assert service.runs.get_run(ada.id, run.id) == run


def test_changes_wait_in_the_outbox_while_the_target_is_down(monolith, service):
    """Issue 8: skipped mirror writes were never made up."""
    target = Flaky(service.sync)
    link = Channel("runs", REMOTE, monolith.sync, target)
    ada = monolith.user("ada@example.com")
    target.down = True
    for n in range(5):
        run = monolith.run(ada, f"while down {n}")
        with pytest.raises(TransportError):
            link.push([RowKey("run", run.id)])
    with pytest.raises(TransportError):
        link.drain()
    assert monolith.sync.backlog().entries == 6
    target.down = False
    assert link.drain().settled == 6
    assert service.names() == {f"while down {n}" for n in range(5)}


def test_a_refused_change_stays_pending_and_holds_back_no_other(monolith, service):
    ada = monolith.user("ada@example.com")
    bob = monolith.user("bob@example.com")
    Channel("runs", REMOTE, monolith.sync, service.sync).drain()
    # The service holds another user under bob's new email: bob's change cannot land.
    clash = service.user("bob-new@example.com")
    with monolith.engine.begin() as connection:
        connection.execute(update(User.__table__).where(User.id == bob.id)
                           .values(email="bob-new@example.com"))
        outbox.record(connection, [("user", bob.id)])
    monolith.run(ada, "after the clash")
    result = Channel("runs", REMOTE, monolith.sync, service.sync).drain()
    assert [(c.entity, c.id) for c, _ in result.refused] == [("user", bob.id)]
    assert "after the clash" in service.names()
    assert [(p.entity, p.id) for p in monolith.sync.pending(10)] == [("user", bob.id)]
    service.accounts.delete_user(clash.id)
    assert Channel("runs", REMOTE, monolith.sync, service.sync).drain().refused == []
    assert monolith.sync.pending(10) == []


def test_changes_cross_both_ways_and_the_newest_wins(monolith, service):
    """Canary: both sides write; each side's change reaches the other, and an older state
    never replaces a newer one."""
    ada = monolith.user("ada@example.com")
    run = monolith.run(ada, "first")
    out, home = (Channel("runs", REMOTE, monolith.sync, service.sync),
                 Channel("runs", LOCAL, service.sync, monolith.sync))
    stale = monolith.sync.export([RowKey("run", run.id)])
    out.drain()
    service.runs.update_run(ada.id, run.id, RunInput(name="renamed on the service",
                                                     distance=5000.0, start_date=WHEN,
                                                     elapsed_time=1500))
    home.drain()
    assert monolith.runs.get_run(ada.id, run.id).name == "renamed on the service"
    service.sync.apply(stale)  # a late, old export arriving after the newer change
    assert service.runs.get_run(ada.id, run.id).name == "renamed on the service"
    assert monolith.sync.backlog().entries == service.sync.backlog().entries == 0


def test_a_deleted_row_is_deleted_on_the_other_side_and_stays_deleted(monolith, service):
    ada = monolith.user("ada@example.com")
    run = monolith.run(ada)
    out = Channel("runs", REMOTE, monolith.sync, service.sync)
    out.drain()
    alive = service.sync.export([RowKey("run", run.id)])
    monolith.runs.delete_run(ada.id, run.id)
    out.drain()
    with pytest.raises(NotFound):
        service.runs.get_run(ada.id, run.id)
    service.sync.apply(alive)
    with pytest.raises(NotFound):
        service.runs.get_run(ada.id, run.id)


# --- the applier -------------------------------------------------------------------------

def applier(monolith, service, mode, **options):
    channels = {REMOTE: Channel("runs", REMOTE, monolith.sync, service.sync),
                LOCAL: Channel("runs", LOCAL, service.sync, monolith.sync)}
    reports = []
    lease = Lease(monolith.engine, "mirror:runs", holder=options.pop("holder", "worker-1"))
    lease.create_schema()
    return MirrorApplier("runs", channels, lambda: (mode[0], False), lease,
                         report=lambda *args: reports.append(args), **options), reports


def test_the_applier_drains_each_way_its_stage_needs(monolith, service):
    mode = ["local"]
    worker, reports = applier(monolith, service, mode)
    monolith.run(monolith.user("ada@example.com"), "written in local")
    worker.step()
    assert service.names() == set()  # local: nothing goes to the service
    mode[0] = "dualwrite"
    worker._next_try.clear()
    worker.step()
    assert service.names() == {"written in local"}
    bob = service.user("bob@example.com")
    service.run(bob, "written by the service")
    mode[0] = "remote"
    worker._next_try.clear()
    worker.step()
    assert "written by the service" not in monolith.names()  # remote: held on the service
    mode[0] = "local"
    worker._next_try.clear()
    worker.step()  # back to local: the service's writes come home
    assert "written by the service" in monolith.names()
    assert ("runs", LOCAL) in {(feature, target) for feature, target, _ in reports}


def test_only_the_lease_holder_drains_and_a_lapsed_lease_is_taken_over(monolith, service):
    clock = ManualClock(1000.0)
    first = Lease(monolith.engine, "mirror:runs", holder="a", ttl=3, clock=clock)
    second = Lease(monolith.engine, "mirror:runs", holder="b", ttl=3, clock=clock)
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
    worker._channels[REMOTE] = Channel("runs", REMOTE, monolith.sync, flaky)
    monolith.run(monolith.user("ada@example.com"), "waits")
    flaky.down = True
    with caplog.at_level(logging.WARNING, logger="turnout.mirror"):
        for _ in range(5):
            worker.step()
    assert sum("mirror_stalled" in r.getMessage() for r in caplog.records) == 1
    flaky.down = False
    worker._next_try.clear()
    worker.step()
    assert service.names() == {"waits"}


def test_the_applier_runs_in_its_own_greenlet_until_stopped(monolith, service):
    mode = ["dualwrite"]
    worker, _ = applier(monolith, service, mode, interval=0.01)
    worker.start()
    try:
        ada = monolith.user("ada@example.com")
        monolith.run(ada, "delivered in the background")
        deadline = gevent.Timeout(5)
        with deadline:
            while "delivered in the background" not in service.names():
                gevent.sleep(0.01)
    finally:
        worker.stop()


def test_mirroring_to_and_from_postgresql(monolith, postgres_url):
    """The ON CONFLICT upsert, the hybrid clock and both directions on the multi-host
    backend (the data service on PostgreSQL, the monolith on SQLite)."""
    service = Side.__new__(Side)
    service.engine = make_engine(postgres_url, pool_size=2)
    try:
        create_schema(service.engine)
        sessions = make_sessions(service.engine)
        service.sync = LocalRunsSync(service.engine)
        service.accounts = LocalAccounts(sessions, hash_method=FAST_HASH)
        service.runs = LocalRuns(sessions)
        ada = monolith.user("ada@example.com")
        monolith.run(ada, "from sqlite")
        Channel("runs", REMOTE, monolith.sync, service.sync).drain()
        run = service.run(ada, "from postgresql")
        with service.engine.begin() as connection:
            outbox.store_version(connection, "run", run.id, 2**62)  # a far-ahead clock
        service.runs.update_run(ada.id, run.id, RunInput(name="renamed", distance=5000.0,
                                                         start_date=WHEN, elapsed_time=1500))
        [pending] = service.sync.pending(10)
        assert pending.version == 2**62 + 1
        Channel("runs", LOCAL, service.sync, monolith.sync).drain()
        assert monolith.names() == service.names() == {"from sqlite", "renamed"}
        assert service.sync.backlog().entries == 0
    finally:
        service.engine.dispose()


def test_pushed_changes_are_settled_in_one_batch_by_every_workers_applier(monolith, service):
    worker, _ = applier(monolith, service, ["dualwrite"], holder="not-the-holder")
    Lease(monolith.engine, "mirror:runs", holder="someone-else").hold()
    channel = worker._channels[REMOTE]
    ada = monolith.user("ada@example.com")
    runs = [monolith.run(ada, f"pushed {n}") for n in range(3)]
    for run in runs:
        channel.push([RowKey("run", run.id)])
    assert monolith.sync.backlog().entries == 4  # delivered, not yet settled
    source = channel.source
    channel.source = Flaky(source)
    channel.source.down = True
    worker.step()  # the source is down: the settles are kept for the next step
    channel.source = source
    worker.step()
    assert monolith.sync.backlog().entries == 0
    assert service.names() == {f"pushed {n}" for n in range(3)}


def test_a_push_and_the_applier_delivering_the_same_new_row_at_once(monolith, service,
                                                                     monkeypatch):
    """F1 saw it: both looked, found no row, and the second insert hit the primary key
    (`UNIQUE constraint failed: runs.id`). The second one now looks again and skips it."""
    from monolith.runs import sync as runs_sync

    ada = monolith.user("ada@example.com")
    run = monolith.run(ada)
    user_change, run_change = monolith.sync.export([RowKey("run", run.id)])
    service.sync.apply([user_change])
    real_newer, raced = runs_sync._newer, []

    def the_other_apply_lands_first(*args):
        if not raced:  # between this apply's look and its insert
            raced.append("racing")
            raced[0] = service.sync.apply([run_change])
        return real_newer(*args)

    monkeypatch.setattr(runs_sync, "_newer", the_other_apply_lands_first)
    assert service.sync.apply([run_change]) == Applied(applied=0, skipped=1)
    assert raced == [Applied(applied=1, skipped=0)]
    assert service.runs.get_run(ada.id, run.id) == run
