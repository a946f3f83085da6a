"""`turnout flags advance|rollback|guard|evidence` in-process on Runnerly's project file: a
refused advance exits 1 with one line per failed gate, a forced one is audited with its
reason, the guard's switch is audited, the evidence is printed; every other mistake is one
line and exit code 2."""

from __future__ import annotations

import time

import pytest

from monolith.wiring import FEATURES
from shims.cli import main
from shims.evidence import histogram
from shims.evidence.model import CallRow, Rows
from shims.evidence.store import SqlEvidenceStore, evidence_engine, evidence_url
from shims.flags.store import SqlFlagStore
from support import FAST_HASH, ROOT


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    for name in ("DATABASE_URL", "FLAGS_URL", "DATASERVICE_DATABASE_URL", "SECRET_KEY"):
        monkeypatch.delenv(f"TURNOUT_{name}", raising=False)
    monkeypatch.setenv("TURNOUT_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("TURNOUT_PASSWORD_HASH_METHOD", FAST_HASH)
    monkeypatch.setenv("TURNOUT_PROJECT", str(ROOT / "turnout.toml"))
    monkeypatch.chdir(ROOT)
    return tmp_path


@pytest.fixture
def turnout(run_dir, capsys):
    def run(*args):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err
    return run


def one_line(turnout, *args):
    code, out, err = turnout(*args)
    assert (code, out) == (2, ""), (code, out, err)
    assert len(err.splitlines()) == 1, err
    return err.strip()


def history(turnout, feature):
    code, out, _ = turnout("flags", "history", feature)
    assert code == 0
    return out.splitlines()


def test_advance_moves_one_stage_and_says_which_gates_applied(turnout):
    code, out, err = turnout("flags", "advance", "reports")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["reports: local -> shadow: no gate applies",
                                "reports -> shadow (every worker within a second)"]


def test_an_advance_its_gates_refuse_exits_1_with_one_line_per_failed_gate(turnout):
    turnout("flags", "advance", "reports")
    code, out, err = turnout("flags", "advance", "reports", "--window", "300")
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert lines[0] == ("turnout: reports: shadow -> canary 5% refused by 5 gates over the "
                        "last 300s:")
    assert lines[1:6] == [
        "  shadow_comparisons: 0 shadow comparisons; at least 200 needed",
        "  shadow_mismatch_rate: no shadow comparison in the window",
        "  remote_calls: 0 remote calls; at least 200 needed",
        "  remote_error_rate: no remote call in the window",
        "  remote_p99: no remote call in the window to measure p99 on"]
    assert "--force" in lines[6]
    assert history(turnout, "reports")[0].endswith("local -> shadow")


def test_a_forced_advance_needs_a_reason_and_is_audited(turnout):
    turnout("flags", "advance", "reports")
    assert "--force needs --reason" in one_line(turnout, "flags", "advance", "reports",
                                                "--force")
    code, out, _ = turnout("flags", "advance", "reports", "--force", "--reason", "demo day",
                           "--actor", "ops@example.com")
    assert code == 0 and out.splitlines()[-1].startswith("reports -> canary 5%")
    assert "ops@example.com (forced past gates: demo day) reports  shadow -> canary 5%" in \
        history(turnout, "reports")[0]


def test_rollback_goes_back_one_stage_and_not_past_the_first(turnout):
    turnout("flags", "advance", "reports")
    code, out, _ = turnout("flags", "rollback", "reports")
    assert (code, out) == (0, "reports -> local (every worker within a second)\n")
    assert "nothing to roll back to" in one_line(turnout, "flags", "rollback", "reports")
    assert "no remote side" in one_line(turnout, "flags", "advance", "races")


def test_the_guard_switch_is_audited(turnout):
    code, out, _ = turnout("flags", "guard", "reports", "off", "--actor", "ops@example.com")
    assert (code, out) == (0, "reports: guard off (was on)\n")  # turnout.toml: enabled = true
    assert "ops@example.com" in history(turnout, "reports")[0]
    assert history(turnout, "reports")[0].endswith("guard on -> guard off")
    assert "unknown feature 'billing'" in one_line(turnout, "flags", "guard", "billing", "on")


def test_evidence_prints_each_sides_figures_from_every_workers_buckets(turnout, run_dir):
    turnout("flags", "list")  # the store exists
    store = SqlFlagStore.from_url(f"sqlite:///{run_dir / 'flags.db'}", FEATURES)
    counts = histogram.empty()
    counts[histogram.slot(0.004)] = 10
    bucket = int(time.time() // 10) * 10
    engine = evidence_engine(evidence_url(str(store.engine.url)))  # beside flags.db
    SqlEvidenceStore(engine).add(Rows(calls=(
        CallRow(bucket, "reports", "reports.monthly", "remote", 10, 2, 0.04, tuple(counts)),)))
    engine.dispose()
    store.engine.dispose()
    code, out, _ = turnout("flags", "evidence", "reports", "--window", "60")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "reports: local, guard on, last 60s"
    assert lines[2] == "  remote: 10 calls, 2 errors (20.00%), p50 4.0 ms, p99 5.0 ms"


def test_a_wrong_gate_in_the_project_file_is_one_line_naming_the_key(turnout, tmp_path,
                                                                     monkeypatch):
    project = tmp_path / "turnout.toml"
    project.write_text((ROOT / "turnout.toml").read_text().replace(
        'circus = "circus.ini"', f'circus = "{ROOT / "circus.ini"}"')
        + "\n[gates.reports]\nmax_error_rate = 2\n")
    monkeypatch.setenv("TURNOUT_PROJECT", str(project))
    line = one_line(turnout, "flags", "advance", "reports")
    assert "`gates.reports.max_error_rate` must be a number from 0 to 1, got 2" in line
