"""Gated moves (shims/gates): the policy read from turnout.toml's tables, the stage path,
each gate's verdict with its numbers, and advance/rollback on a real flag store, through
the stage mover for a feature that owns data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from notes_app import Flaky, Side
from shims.evidence.model import FeatureEvidence, ShadowFigures, SideFigures
from shims.flags.model import FeatureInfo, Flag, FlagError
from shims.flags.store import FlagMoved, SqlFlagStore
from shims.gates.config import GateSettings, GuardSettings, Policy, parse_policy, policy_for
from shims.gates.moves import NoFurtherStage, StageMoves
from shims.gates.path import next_stage, previous_stage, stage_path
from shims.gates.verdict import GatesFailed, judge
from shims.mirror import mirror_channels
from shims.settings import ConfigError
from shims.stages import MoveRefused
from shims.sync import Backlog

FEATURES = {"notes": FeatureInfo("notes", has_remote=True, owns_data=True),
            "search": FeatureInfo("search", has_remote=True),
            "billing": FeatureInfo("billing", has_remote=False)}


# --- the policy ------------------------------------------------------------------------------

def test_defaults_and_per_feature_overrides():
    policy = parse_policy({"gates": {"window": 600, "search": {"max_error_rate": 0.05}},
                           "guard": {"enabled": True, "notes": {"enabled": False}}},
                          "turnout.toml")
    assert policy.gates_of("notes") == dataclasses.replace(GateSettings(), window=600)
    assert policy.gates_of("search").max_error_rate == 0.05
    assert policy.gates_of("search").window == 600  # the default table's, not the kit's
    assert (policy.guard_of("search").enabled, policy.guard_of("notes").enabled) == (True, False)
    assert parse_policy({}, "turnout.toml") == Policy()


@pytest.mark.parametrize(("data", "words"), [
    ({"gates": {"max_error_rate": 2}}, "`gates.max_error_rate` must be a number from 0 to 1, "
                                       "got 2"),
    ({"gates": {"notes": {"min_calls": -1}}}, "`gates.notes.min_calls` must be a whole number"),
    ({"gates": {"window": "15m"}}, "`gates.window` must be a whole number of at least 1"),
    ({"gates": {"canary_steps": [25, 5]}}, "`gates.canary_steps` must be a list of percentages"),
    ({"gates": {"canary_steps": [0, 50]}}, "`gates.canary_steps`"),
    ({"gates": {"canary_steps": [5, 150]}}, "`gates.canary_steps`"),
    ({"gates": {"max_p99_ratio": 0}}, "`gates.max_p99_ratio` must be a number above 0"),
    ({"gates": {"max_mismatch_rate": True}}, "`gates.max_mismatch_rate`"),
    ({"gates": {"colour": 1}}, "unknown key `gates.colour`"),
    ({"guard": {"enabled": "yes"}}, "`guard.enabled` must be true or false"),
    ({"guard": {"search": {"cooldown": 1.5}}}, "`guard.search.cooldown`"),
    ({"guard": "on"}, "`guard` must be a table"),
])
def test_a_bad_value_is_refused_naming_the_key(data, words):
    with pytest.raises(ConfigError) as refused:
        parse_policy(data, "turnout.toml")
    assert str(refused.value).startswith("turnout.toml: ") and words in str(refused.value)


def test_a_table_for_an_unknown_feature_and_windows_out_of_range_are_refused():
    policy = parse_policy({"gates": {"notez": {"window": 600}}}, "turnout.toml")
    with pytest.raises(ConfigError, match=r"`gates\.notez` names no feature"):
        policy.require_features(FEATURES, "turnout.toml")
    short = parse_policy({"guard": {"search": {"window": 10}}}, "turnout.toml")
    with pytest.raises(ConfigError, match=r"`guard.search.window` is 10s; it must be from 20s"):
        short.require_windows(10, 3600, "turnout.toml")
    Policy().require_windows(10, 3600, "turnout.toml")  # the defaults fit the defaults


def test_workers_follow_the_project_file_named_or_the_defaults(tmp_path: Path):
    project = tmp_path / "turnout.toml"
    project.write_text('registry = "app:R"\n[guard]\nenabled = true\nwindow = 30\n')
    assert policy_for(str(project)).guard == GuardSettings(enabled=True, window=30)
    assert policy_for(None) == Policy()  # never found by itself: named, or the defaults
    with pytest.raises(ConfigError, match="TURNOUT_PROJECT"):
        policy_for(str(tmp_path / "missing.toml"))


# --- the path ----------------------------------------------------------------------------------

def labels(path):
    return [f"{f.mode} {f.percent:g}" if f.mode == "canary" else f.mode for f in path]


def test_a_feature_that_owns_data_walks_every_stage():
    assert labels(stage_path(FEATURES["notes"], (5, 25, 50))) == [
        "local", "dualwrite", "shadow", "canary 5", "canary 25", "canary 50", "live",
        "rampdown", "remote"]


def test_without_data_dualwrite_and_rampdown_are_skipped_and_without_remote_nothing_moves():
    assert labels(stage_path(FEATURES["search"], (10, 50))) == [
        "local", "shadow", "canary 10", "canary 50", "live", "remote"]
    assert labels(stage_path(FEATURES["billing"], (5,))) == ["local"]


def test_a_flag_set_off_the_path_moves_to_its_neighbours_on_it():
    path = stage_path(FEATURES["search"], (5, 25, 50))
    assert next_stage(Flag("search", "canary", 30), path) == Flag("search", "canary", 50)
    assert previous_stage(Flag("search", "canary", 30), path) == Flag("search", "canary", 25)
    assert next_stage(Flag("search", "canary", 100), path) == Flag("search", "live")
    assert next_stage(Flag("search", "dualwrite"), path) == Flag("search", "shadow")
    assert previous_stage(Flag("search", "rampdown"), path) == Flag("search", "live")
    assert next_stage(Flag("search", "remote"), path) is None
    assert previous_stage(Flag("search", "local"), path) is None


# --- verdicts ----------------------------------------------------------------------------------

GATES = GateSettings(min_comparisons=100, max_mismatch_rate=0.01, min_calls=50,
                     max_error_rate=0.02, max_p99_ratio=2.0, max_mirror_backlog=10,
                     max_mirror_lag=5.0)


def side(name, calls, errors, p99):
    return SideFigures(name, calls=calls, errors=errors,
                       error_rate=errors / calls if calls else None,
                       p50_ms=p99 / 2 if p99 else None, p99_ms=p99)


def evidence(*, compared=500, persistent=0, remote=(400, 2, 30.0), local=(2000, 0, 20.0),
             feature="search"):
    shadow = ShadowFigures(compared=compared, matches=compared - persistent,
                           mismatches=persistent, persistent=persistent,
                           mismatch_rate=persistent / compared if compared else None)
    return FeatureEvidence(feature, 900, 0, 900, local=side("local", *local),
                           remote=side("remote", *remote), shadow=shadow)


def gate_names(verdict):
    return [result.gate for result in verdict.results]


def test_the_gates_that_apply_depend_on_what_the_current_stage_shows():
    found = evidence()
    move = [(Flag("search", m), Flag("search", "x")) for m in ("local", "shadow", "canary",
                                                                "live", "rampdown")]
    judged = {current.mode: gate_names(judge(current, target, found, GATES, owns_data=False))
              for current, target in move}
    assert judged == {
        "local": [],
        "shadow": ["shadow_comparisons", "shadow_mismatch_rate", "remote_calls",
                   "remote_error_rate", "remote_p99"],
        "canary": ["remote_calls", "remote_error_rate", "remote_p99"],
        "live": ["shadow_comparisons", "shadow_mismatch_rate", "remote_calls",
                 "remote_error_rate", "remote_p99"],
        "rampdown": ["remote_calls", "remote_error_rate"]}


def test_good_evidence_passes_every_gate():
    verdict = judge(Flag("search", "shadow"), Flag("search", "canary", 5), evidence(), GATES,
                    owns_data=False)
    assert verdict.passed and verdict.failed == ()
    assert (verdict.current, verdict.target) == ("shadow", "canary 5%")


def test_each_failed_gate_says_its_numbers():
    bad = evidence(compared=80, persistent=4, remote=(400, 20, 90.0), local=(2000, 0, 20.0))
    verdict = judge(Flag("search", "shadow"), Flag("search", "canary", 5), bad, GATES,
                    owns_data=False)
    lines = {result.gate: result.line() for result in verdict.failed}
    assert lines == {
        "shadow_comparisons": "shadow_comparisons: 80 shadow comparisons; at least 100 needed",
        "shadow_mismatch_rate": "shadow_mismatch_rate: 5.00% of 80 comparisons mismatched "
                                "persistently (4; 0 more were transient); at most 1.00% "
                                "allowed",
        "remote_error_rate": "remote_error_rate: 5.00% of 400 remote calls failed (20); at "
                             "most 2.00% allowed",
        "remote_p99": "remote_p99: remote p99 90.0 ms is 4.50x local p99 20.0 ms; at most 2x "
                      "allowed"}


def test_no_evidence_fails_a_gate_rather_than_passing_it():
    empty = FeatureEvidence("search", 900, 0, 900, local=SideFigures("local"),
                            remote=SideFigures("remote"))
    verdict = judge(Flag("search", "canary", 5), Flag("search", "canary", 25), empty, GATES,
                    owns_data=False)
    assert [r.observed for r in verdict.results] == [0, None, None]
    assert not any(r.passed for r in verdict.results)


def test_the_mirror_gates_read_each_direction_the_stage_drains():
    backlogs = {"remote": Backlog(3, 1.0), "local": Backlog(40, 12.0)}
    verdict = judge(Flag("notes", "dualwrite"), Flag("notes", "shadow"),
                    evidence(feature="notes"), GATES, owns_data=True, backlogs=backlogs)
    assert [(r.gate, r.passed) for r in verdict.results] == [
        ("mirror_backlog.remote", True), ("mirror_backlog.local", False)]
    down = judge(Flag("notes", "dualwrite"), Flag("notes", "shadow"), evidence(feature="notes"),
                 GATES, owns_data=True, backlogs={"remote": ConnectionError("refused")})
    assert "could not be read (refused)" in down.failed[0].detail


# --- moves on a real store ----------------------------------------------------------------------

class FixedEvidence:
    """An EvidenceReader that answers the same figures for any window, and notes it."""

    def __init__(self, found: FeatureEvidence):
        self.found = found
        self.windows: list[int] = []

    def feature(self, name: str, window_seconds: int) -> FeatureEvidence:
        self.windows.append(window_seconds)
        return dataclasses.replace(self.found, feature=name, window_seconds=window_seconds)

    def features(self, window_seconds: int, only=None) -> dict[str, FeatureEvidence]:
        return {name: self.feature(name, window_seconds) for name in (only or FEATURES)}


@pytest.fixture
def store(tmp_path):
    made = SqlFlagStore.from_url(f"sqlite:///{tmp_path / 'flags.db'}", FEATURES)
    made.open()
    yield made
    made.engine.dispose()


@pytest.fixture
def sides(tmp_path):
    monolith, service = Side(tmp_path / "monolith.db"), Side(tmp_path / "service.db")
    yield monolith, service
    monolith.close()
    service.close()


def moves_on(store, found=None, channels=None, policy=None):
    reader = FixedEvidence(found or evidence())
    return StageMoves(store, reader, policy or Policy(gates=GATES),
                      lambda feature: channels if feature == "notes" else None,
                      wait_seconds=2)


def test_advance_moves_one_stage_when_the_gates_pass_and_audits_it(store):
    moves = moves_on(store)
    assert moves.advance("search", actor="ops") == Flag("search", "shadow")
    assert moves.advance("search", actor="ops") == Flag("search", "canary", 5)
    assert moves.evidence.windows[-1] == GATES.window
    entry = store.history("search")[0]
    assert (entry.actor, entry.old, entry.new) == ("ops", "shadow", "canary 5%")


def test_advance_refused_by_its_gates_moves_nothing_and_names_every_failed_gate(store):
    store.set("search", "shadow", actor="ops")
    moves = moves_on(store, evidence(remote=(400, 40, 30.0)))
    with pytest.raises(GatesFailed) as refused:
        moves.advance("search", actor="ops", window=300)
    body = refused.value.to_dict()
    assert (body["error"], refused.value.status) == ("gates_failed", 422)
    assert [gate["gate"] for gate in body["failed"]] == ["remote_error_rate"]
    assert body["window_seconds"] == 300 and len(body["gates"]) == 5
    assert "10.00% of 400 remote calls failed" in refused.value.message
    assert store.snapshot().flag("search").mode == "shadow"


def test_advance_forced_past_its_gates_is_audited_with_the_reason(store):
    store.set("search", "shadow", actor="ops")
    moves_on(store, evidence(remote=(400, 40, 30.0))).advance(
        "search", actor="ops", force=True, reason="known flaky test account")
    entry = store.history("search")[0]
    assert entry.actor == "ops (forced past gates: known flaky test account)"
    assert entry.new == "canary 5%"


def test_rollback_has_no_gates_and_each_end_of_the_path_is_refused(store):
    moves = moves_on(store, evidence(remote=(400, 400, 5000.0)))
    with pytest.raises(NoFurtherStage, match="first stage"):
        moves.rollback("search", actor="ops")
    store.set("search", "remote", actor="ops")
    with pytest.raises(NoFurtherStage, match="last stage"):
        moves.advance("search", actor="ops")
    assert moves.rollback("search", actor="ops") == Flag("search", "live")
    with pytest.raises(NoFurtherStage, match="no remote side"):
        moves.advance("billing", actor="ops")
    with pytest.raises(FlagError, match="unknown feature"):
        moves.rollback("payroll", actor="ops")


def test_a_move_decided_on_a_flag_someone_changed_meanwhile_is_refused(store):
    store.set("search", "shadow", actor="ops")
    moves = moves_on(store)
    step = moves.next_step("search")
    store.set("search", "live", actor="someone else")
    with pytest.raises(FlagMoved, match="someone else moved it"):
        store.set("search", step.target.mode, step.target.percent, actor="ops",
                  expected=step.current)
    assert store.snapshot().flag("search").mode == "live"


def test_a_feature_that_owns_data_moves_through_the_stage_mover(store, sides):
    monolith, service = sides
    channels = mirror_channels("notes", monolith.sync, service.sync)
    store.set("notes", "shadow", actor="ops")
    monolith.note(monolith.author("ada@example.com"), "not mirrored yet")
    moves = moves_on(store, evidence(feature="notes"), channels)
    assert moves.advance("notes", actor="ops") == Flag("notes", "canary", 5)
    assert service.texts() == {"not mirrored yet"}  # drained before the service answered


def test_a_rollback_whose_drain_cannot_finish_is_refused_unless_forced(store, sides):
    monolith, service = sides
    flaky = Flaky(service.sync)
    channels = mirror_channels("notes", monolith.sync, flaky)
    store.set("notes", "live", actor="ops")
    flaky.down = True  # the service's writes cannot come home
    moves = moves_on(store, evidence(feature="notes"), channels)
    with pytest.raises(MoveRefused, match="could not be brought"):
        moves.rollback("notes", actor="ops")
    assert store.snapshot().flag("notes").mode == "live"
    assert moves.rollback("notes", actor="ops", force=True, reason="service gone") == \
        Flag("notes", "canary", 50)
    assert store.history("notes")[0].actor == "ops (forced: service gone)"
