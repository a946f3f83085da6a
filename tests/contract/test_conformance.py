"""Each local implementation can be called exactly as its contract declares.

The remote clients are generated from the contract spec; the local classes are written
by hand, so their signatures are checked here: a caller of the contract must never
learn which side it holds (e.g. by passing an argument by position).
"""

from __future__ import annotations

import inspect

import pytest

from monolith.accounts.service import LocalAccounts
from monolith.races.service import LocalRaces
from monolith.runs.service import LocalRuns
from monolith.runs.sync import LocalRunsSync
from monolith.strava.service import LocalStravaImport
from contracts.accounts import ACCOUNTS, RemoteAccounts
from contracts.races import RACES, RemoteRaces
from contracts.runs import RUNS, RemoteRuns
from contracts.strava import STRAVA, RemoteStravaImport
from shims.sync import SYNC, RemoteDataSync

PAIRS = [(ACCOUNTS, LocalAccounts, RemoteAccounts), (RUNS, LocalRuns, RemoteRuns),
         (SYNC, LocalRunsSync, RemoteDataSync), (RACES, LocalRaces, RemoteRaces),
         (STRAVA, LocalStravaImport, RemoteStravaImport)]


def _shape(function) -> list[tuple[str, inspect._ParameterKind, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize(("spec", "local", "remote"), PAIRS, ids=[p[0].name for p in PAIRS])
def test_local_and_remote_offer_every_method_with_the_contracts_signature(spec, local, remote):
    for name in spec.methods:
        declared = getattr(spec.protocol, name)
        assert _shape(getattr(local, name)) == _shape(declared), f"{local.__name__}.{name}"
        assert callable(getattr(remote, name))
