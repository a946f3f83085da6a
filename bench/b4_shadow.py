"""B4: `shadow` mode with the shadow side 50 ms slower than the primary, against the primary alone.

bench.app (the monolith, 1 gevent worker, CPU 0) serves `/bench/router/runs`; its data service
URL points at a stand-in (bench.b3_apps:slow, CPU 1) that answers after 50 ms with exactly what
the data service would answer (the contract's wire form, ids as integers), so every comparison
matches. Flag `local` (primary alone) and flag `shadow` (primary local, shadow remote) alternate
run by run. Open loop at a fixed rate (latency measured from the scheduled send, no coordinated
omission), 4 connections.

A shadow that gives way by dropping everything must not pass: the share of shadowed requests
that were compared (match or mismatch, from the worker's /metrics) must be at least
MIN_COMPARED, and every comparison must match.
"""

from __future__ import annotations

import json
import re
import time

import requests

from bench.common import BENCH_MONTH, markdown_table, med_range, set_flag, spread, table
from bench.loadgen import run_load
from bench.servers import Server, clean_env

ID = "B4"
SHADOW_DELAY = 0.05
RATE = 100
P50_TARGET, P99_TARGET = 1.05, 1.25  # issue 12 (was p50 1.10)
MIN_COMPARED = 0.90  # of the shadowed requests, the share whose shadow was compared


def run(ctx) -> dict:
    setup = ctx.setup()
    runs, duration = (3, 3.0) if ctx.quick else (5, 5.0)
    logs = setup.run_dir / "logs"
    results = {"local": [], "shadow": []}
    try:
        # The exact answer the data service gives: the contract's wire form of the
        # monolith's own copy of the data (the public /api answers ids as strings).
        body = setup.root / "slow-body.json"
        body.write_text(json.dumps({"result": wire_answer(setup)}))
        slow = setup.start(Server("b4-slow", "bench.b3_apps:slow",
                                  clean_env(BENCH_SLOW_DELAY=SHADOW_DELAY,
                                            BENCH_SLOW_BODY_FILE=body), logs, cpu=1))
        monolith = setup.start(Server("b4-monolith", "bench.app:app",
                                      setup.monolith_env(slow.url), logs))
        for i in range(runs):
            for mode in (("local", "shadow") if i % 2 == 0 else ("shadow", "local")):
                set_flag(setup.run_dir, "runs", mode)
                time.sleep(0.6)  # > FLAGS_REFRESH
                results[mode].append(run_load(
                    {"port": monolith.port, "requests": [{"path": "/bench/router/runs"}],
                     "concurrency": 4, "rate": RATE, "duration": duration, "warmup": 0.5,
                     "timeout": 10}))
        time.sleep(0.5)  # the last shadows (50 ms) compare
        metrics = requests.get(monolith.url + "/metrics", timeout=5).text
    finally:
        setup.stop_all()
    shadow_counts = {}
    for m in re.finditer(r'turnout_shadow_comparisons_total\{([^}]*)\} ([0-9.e+]+)', metrics):
        result = re.search(r'result="([^"]+)"', m.group(1)).group(1)
        shadow_counts[result] = shadow_counts.get(result, 0) + float(m.group(2))
    side = {mode: {"p50_ms": spread([r["p50_ms"] for r in rs]),
                   "p99_ms": spread([r["p99_ms"] for r in rs]),
                   "rps": spread([r["rps"] for r in rs]),
                   "errors": sum(sum(r["errors"].values()) for r in rs),
                   "non_200": sum(v for r in rs for k, v in r["statuses"].items() if k != "200")}
            for mode, rs in results.items()}
    p50_ratio = side["shadow"]["p50_ms"]["median"] / side["local"]["p50_ms"]["median"]
    p99_ratio = side["shadow"]["p99_ms"]["median"] / side["local"]["p99_ms"]["median"]
    clean = all(s["errors"] == 0 and s["non_200"] == 0 for s in side.values())
    shadowed = sum(r["all_completed"] for r in results["shadow"])  # warm-up included
    compared = shadow_counts.get("match", 0) + shadow_counts.get("mismatch", 0)
    compared_share = compared / shadowed if shadowed else 0.0
    result = {
        "id": ID, "title": "shadow mode, shadow side 50 ms slower",
        "method": f"{runs} alternating runs x {duration}s at {RATE} req/s (open loop, 4 "
                  "connections); monolith 1 gevent worker on CPU 0; 50 ms shadow on CPU 1",
        "sides": side, "shadow_comparisons": shadow_counts,
        "shadowed_requests": shadowed, "compared_share": round(compared_share, 4),
        "ratio": round(p99_ratio, 3), "p50_ratio": round(p50_ratio, 3),
        "p99_ratio": round(p99_ratio, 3),
        "baseline_desc": f"primary alone: p50 {side['local']['p50_ms']['median']:.2f} ms, "
                         f"p99 {side['local']['p99_ms']['median']:.2f} ms",
        "measured": f"shadow: p50 {side['shadow']['p50_ms']['median']:.2f} ms "
                    f"({p50_ratio:.2f}x), p99 {side['shadow']['p99_ms']['median']:.2f} ms "
                    f"({p99_ratio:.2f}x)",
        "target": f"p50 <= {P50_TARGET}x, p99 <= {P99_TARGET}x baseline; >= "
                  f"{MIN_COMPARED:.0%} of shadowed requests compared, all matching",
        "pass": p50_ratio <= P50_TARGET and p99_ratio <= P99_TARGET and clean
        and compared_share >= MIN_COMPARED and shadow_counts.get("match", 0) == compared,
        "raw": results,
    }
    result["table"] = render(result)
    return result


HEADER = ["flag", "p50 ms median [min-max]", "p99 ms median [min-max]", "rps", "errors"]


def _rows(r: dict) -> list[list[str]]:
    return [[f"{mode}{' (baseline)' if mode == 'local' else ''}", med_range(s["p50_ms"], 2),
             med_range(s["p99_ms"], 2), med_range(s["rps"]), str(s["errors"] + s["non_200"])]
            for mode, s in r["sides"].items()]


def wire_answer(setup) -> list:
    """`list_runs` for the bench user's month, as the data service puts it on the wire."""
    from monolith.db import make_engine, make_sessions
    from monolith.runs.service import LocalRuns
    from shims.wire import to_wire

    engine = make_engine(f"sqlite:///{setup.run_dir / 'monolith.db'}")
    try:
        return to_wire(LocalRuns(make_sessions(engine)).list_runs(setup.user_id, *BENCH_MONTH))
    finally:
        engine.dispose()


def _line(r: dict) -> str:
    counts = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["shadow_comparisons"].items()))
    return (f"p50 ratio {r['p50_ratio']:.3f} (target <= {P50_TARGET}), p99 ratio "
            f"{r['p99_ratio']:.3f} (target <= {P99_TARGET}); shadow outcomes: {counts}; "
            f"compared {r['compared_share']:.1%} of {r['shadowed_requests']} shadowed "
            f"requests (target >= {MIN_COMPARED:.0%})")


def render(r: dict) -> str:
    return "\n".join([table(f"B4 ({r['method']})", HEADER, _rows(r)),
                      _line(r) + f": {'PASS' if r['pass'] else 'FAIL'}"])


def markdown(r: dict) -> str:
    return markdown_table(HEADER, _rows(r)) + "\n\n" + _line(r) + "."
