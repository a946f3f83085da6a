"""B6: RSS of a monolith worker after 10,000 mixed requests, and its growth over 50,000 more.

bench.app (the real monolith, product wiring) with 1 gevent worker on CPU 0, Prometheus
multiprocess metrics as under circus, the `runs` flag in `shadow` against a real data service
(1 gevent worker, CPU 1): every read of users and runs is compared, every write is mirrored. One
month of the monolith's data was changed behind the data service's back, so reads of that month
mismatch and the mismatch log records them. The mix (20 requests, round robin, 8 keep-alive
connections): run list reads (matching and mismatching months), run reads by id, new runs
(mirrored writes), monthly reports, /api/me, /metrics scrapes, /healthz.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time

import psutil
import requests

from bench.common import (BENCH_PASSWORD, BENCH_USER, markdown_table, set_flag, table)
from bench.loadgen import run_load
from bench.servers import Server

ID = "B6"
TARGET = 0.05
WARM, MORE = 10_000, 50_000


def _diverge(run_dir, user_id: int) -> None:
    """A run in January 2014 in the monolith's database only."""
    from monolith.db import make_engine, make_sessions
    from monolith.runs.service import LocalRuns
    from contracts.runs import RunInput

    engine = make_engine(f"sqlite:///{run_dir / 'monolith.db'}")
    LocalRuns(make_sessions(engine)).add_run(user_id, RunInput(
        name="only in the monolith", distance=4000.0, start_date=dt.datetime(2014, 1, 5, 8),
        elapsed_time=1300))
    engine.dispose()


def _mix(token: str, run_id: int) -> list[dict]:
    auth = {"Authorization": f"Bearer {token}"}
    post = {**auth, "Content-Type": "application/json"}
    mix = []
    for i in range(20):
        slot = i % 20
        if slot in (0, 1, 2, 3, 4, 5, 6, 7):
            mix.append({"path": "/api/runs?year=2024&month=3", "headers": auth})
        elif slot in (8, 9):
            mix.append({"path": "/api/runs?year=2014&month=1", "headers": auth})  # mismatches
        elif slot in (10, 11):
            mix.append({"path": f"/api/runs/{run_id}", "headers": auth})
        elif slot in (12, 13):
            year, month = 2015 + i % 5, 1 + i % 12
            mix.append({"method": "POST", "path": "/api/runs", "headers": post,
                        "body": json.dumps({"name": f"bench {i}", "distance": 5000 + i,
                                            "start_date": f"{year}-{month:02d}-10T07:00:00Z",
                                            "elapsed_time": 1500 + i})})
        elif slot in (14, 15):
            mix.append({"path": "/api/reports/monthly?year=2024&month=3", "headers": auth})
        elif slot == 16:
            mix.append({"path": "/api/me", "headers": auth})
        elif slot == 17:
            mix.append({"path": "/metrics"})
        elif slot == 18:
            mix.append({"path": "/healthz"})
        else:
            mix.append({"path": "/bench/router/runs"})
    return mix


def run(ctx) -> dict:
    setup = ctx.setup()
    warm, more = (2_000, 8_000) if ctx.quick else (WARM, MORE)
    logs = setup.run_dir / "logs"
    metrics_dir = setup.run_dir / "metrics"
    metrics_dir.mkdir()
    _diverge(setup.run_dir, setup.user_id)
    phases = {}
    try:
        data = setup.start(Server("b6-dataservice", "extracted.dataservice.wsgi:app",
                                  setup.dataservice_env(), logs, cpu=1))
        set_flag(setup.run_dir, "runs", "shadow")
        monolith = setup.start(Server(
            "b6-monolith", "bench.app:app",
            setup.monolith_env(data.url, PROMETHEUS_MULTIPROC_DIR=metrics_dir), logs))
        worker = psutil.Process(monolith.worker_pids()[0])
        rss_start = worker.memory_info().rss
        basic = base64.b64encode(f"{BENCH_USER}:{BENCH_PASSWORD}".encode()).decode()
        token = requests.post(monolith.url + "/api/tokens", timeout=10,
                              headers={"Authorization": f"Basic {basic}"}).json()["token"]
        run_id = requests.get(monolith.url + "/api/runs?year=2024&month=3", timeout=10,
                              headers={"Authorization": f"Bearer {token}"}).json()["runs"][0]["id"]
        mix = _mix(token, run_id)
        # The further phase needs ~235 s at the ~214 rps of an idle machine; the bound keeps
        # a slow machine from running past the whole suite's 10-minute budget.
        for name, count, budget in (("warm", warm, 90.0), ("more", more, 250.0)):
            t0 = time.monotonic()
            phases[name] = run_load({"port": monolith.port, "requests": mix,
                                     "concurrency": 8, "duration": budget,
                                     "max_requests": count, "timeout": 10})
            phases[name]["wall_s"] = round(time.monotonic() - t0, 1)
            time.sleep(1.0)  # let shadows and mirrored writes in flight finish
            phases[name]["rss"] = worker.memory_info().rss
        metrics = requests.get(monolith.url + "/metrics", timeout=10).text
        mismatch_rows = _count_mismatches(setup.run_dir)
    finally:
        setup.stop_all()
    shadow = {}
    for m in re.finditer(r'turnout_shadow_comparisons_total\{([^}]*)\} ([0-9.e+]+)', metrics):
        kind = re.search(r'result="([^"]+)"', m.group(1)).group(1)
        shadow[kind] = shadow.get(kind, 0) + float(m.group(2))
    mirrors = sum(float(v) for v in re.findall(
        r'turnout_mirror_writes_total\{[^}]*outcome="ok"[^}]*\} ([0-9.e+]+)', metrics))
    rss_warm, rss_end = phases["warm"]["rss"], phases["more"]["rss"]
    growth = (rss_end - rss_warm) / rss_warm
    served = {name: p["completed"] for name, p in phases.items()}
    errors = sum(sum(p["errors"].values()) for p in phases.values())
    bad = {k: v for p in phases.values() for k, v in p["statuses"].items()
           if not k.startswith("2")}
    complete = served["warm"] >= warm and served["more"] >= more
    mb = 1024 * 1024
    result = {
        "id": ID, "title": "worker memory under mixed traffic (shadow mode)",
        "method": "1 gevent worker on CPU 0, runs flag shadow against a real data service on "
                  "CPU 1, 8 keep-alive connections, 20-request mix",
        "requests": served, "rps": {n: p["rps"] for n, p in phases.items()},
        "rss_bytes": {"start": rss_start, "after_warm": rss_warm, "after_more": rss_end},
        "growth": round(growth, 4), "ratio": round(rss_end / rss_warm, 4),
        "shadow_comparisons": shadow, "mirrored_writes_ok": mirrors,
        "mismatch_rows_kept": mismatch_rows, "errors": errors, "non_2xx": bad,
        "baseline_desc": f"same worker after {served['warm']:,} requests, "
                         f"{rss_warm / mb:.1f} MiB (at start {rss_start / mb:.1f} MiB)",
        "measured": f"{rss_end / mb:.1f} MiB after {served['more']:,} more: "
                    f"{growth * 100:+.2f}%" + ("" if complete else " (partial, time budget)"),
        "target": f"growth <= {TARGET * 100:g}%",
        "pass": growth <= TARGET and not errors and not bad,
        "complete": complete,
        "note": None if complete else
        f"time budget reached: {served['more']:,} of {more:,} further requests at "
        f"{phases['more']['rps']:.0f} rps (growth measured over those)",
        "raw": {n: {k: v for k, v in p.items()} for n, p in phases.items()},
    }
    result["table"] = render(result)
    return result


def _count_mismatches(run_dir) -> int | None:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{run_dir / 'flags.db'}")
    try:
        with engine.connect() as connection:
            tables = [r[0] for r in connection.execute(text(
                "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%mismatch%'"))]
            return sum(connection.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar()  # nosec B608
                       for t in tables) if tables else None
    finally:
        engine.dispose()


HEADER = ["point", "requests", "rps", "worker RSS MiB"]


def _rows(r: dict) -> list[list[str]]:
    mb = 1024 * 1024
    rss = r["rss_bytes"]
    return [["at start", "0", "-", f"{rss['start'] / mb:.1f}"],
            ["after warm-up", f"{r['requests']['warm']:,}", f"{r['rps']['warm']:.0f}",
             f"{rss['after_warm'] / mb:.1f}"],
            ["after further", f"{r['requests']['more']:,}", f"{r['rps']['more']:.0f}",
             f"{rss['after_more'] / mb:.1f}"]]


def _line(r: dict) -> str:
    counts = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["shadow_comparisons"].items()))
    return (f"growth over the further requests {r['growth'] * 100:+.2f}% (target <= "
            f"{TARGET * 100:g}%); shadow comparisons: {counts}; mirrored writes ok "
            f"{r['mirrored_writes_ok']:.0f}; mismatch rows kept {r['mismatch_rows_kept']}; "
            f"errors {r['errors']}, non-2xx {r['non_2xx'] or 0}")


def render(r: dict) -> str:
    return "\n".join([table(f"B6 ({r['method']})", HEADER, _rows(r)),
                      _line(r) + f": {'PASS' if r['pass'] else 'FAIL'}"])


def markdown(r: dict) -> str:
    return markdown_table(HEADER, _rows(r)) + "\n\n" + _line(r) + "."
