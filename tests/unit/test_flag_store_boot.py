"""Runnerly's composition root (monolith/wiring.py) on a damaged flag store: the worker boots
and serves every feature locally. The store's own behaviour on a damaged file is the kit's
(tests/kit/test_flag_store_faults.py)."""

from __future__ import annotations

import json
import logging

from shims.flags.model import FeatureInfo
from shims.flags.store import SqlFlagStore

FEATURES = {"runs": FeatureInfo("runs", has_remote=True, owns_data=True)}


def test_a_worker_booting_on_a_damaged_store_still_starts(tmp_path, caplog):
    from monolith.wiring import build_control

    path = tmp_path / "flags.db"
    operator = SqlFlagStore.from_url(f"sqlite:///{path}", FEATURES)
    operator.open()
    operator.set("runs", "remote", actor="ops")
    operator.engine.dispose()
    path.write_bytes(b"garbage " * 4096)
    caplog.set_level(logging.ERROR, logger="turnout")
    control = build_control({"FLAGS_URL": f"sqlite:///{path}", "FLAGS_REFRESH": 0,
                             "BREAKER_FAILURES": 5, "BREAKER_RESET_SECONDS": 5})
    assert control.flags.flag("runs").mode == "local"  # nothing read yet: every feature local
    assert control.flags.healthy is False
    unreadable = [json.loads(record.getMessage()) for record in caplog.records
                  if '"flag_store_unreadable"' in record.getMessage()]
    assert unreadable[0]["at"] == "start-up"
    control.store.engine.dispose()
