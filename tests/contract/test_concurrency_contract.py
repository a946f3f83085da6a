"""Racing writes settle the same way on every side: one winner, contract errors for the
rest, never a 500. Over HTTP the calls really overlap, across two gunicorn workers."""

from __future__ import annotations

import gevent

from contracts.accounts import Profile, SignUp
from contracts.runs import ImportCount
from shims.errors import Conflict
from tests.contract.support import RACERS, PASSWORD, run_input, unique_email


def race(calls):
    """Run the calls together; each outcome is a result or the exception it raised."""
    def outcome(call):
        try:
            return call()
        except Exception as error:  # collected and asserted on below
            return error
    jobs = [gevent.spawn(outcome, call) for call in calls]
    gevent.joinall(jobs, timeout=30, raise_error=False)
    assert all(job.ready() for job in jobs), "the racing calls did not finish within 30s"
    return [job.value for job in jobs]


def test_racing_sign_ups_with_one_email_make_one_account(side):
    email = unique_email("race")
    request = SignUp(email=email, password=PASSWORD, profile=Profile())
    outcomes = race([lambda: side.accounts.sign_up(request)] * RACERS)
    winners = [o for o in outcomes if not isinstance(o, Exception)]
    losers = [o for o in outcomes if isinstance(o, Exception)]
    assert len(winners) == 1, outcomes
    assert all(type(error) is Conflict and error.field == "email" for error in losers), losers
    assert side.accounts.authenticate(email, PASSWORD) == winners[0]


def test_racing_imports_of_the_same_activities_store_each_once(side):
    user = side.user()
    batch = [run_input(day, strava_id=5000 + day) for day in range(1, 8)]
    outcomes = race([lambda: side.runs.import_runs(user.id, batch)] * RACERS)
    assert all(type(o) is ImportCount for o in outcomes), outcomes
    assert sum(o.created for o in outcomes) == len(batch)
    assert all(o.created + o.skipped == len(batch) for o in outcomes)
    stored = side.runs.list_runs(user.id, 2026, 5)
    assert sorted(run.strava_id for run in stored) == [5000 + day for day in range(1, 8)]
