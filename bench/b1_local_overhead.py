"""B1: a monolith API request whose feature is `local`, through the shim, against the same view
calling the feature code directly.

HTTP part: one gunicorn gevent worker (bench.app) on CPU 0, client on CPU 1, keep-alive,
8 connections, closed loop; `/bench/router/runs` (Router, flag local) and `/bench/direct/runs`
(a LocalRuns instance) alternate run by run. Per-call shim cost from HTTP = 1/rps difference
(one worker on one core: 1/rps is the server's time per request).

In-process part (`python -m bench.b1_local_overhead --micro`, pinned to CPU 0): timeit-style
loops of router.list_runs vs LocalRuns.list_runs on the same SQLite file, and of a Router over a
no-op stub vs the stub itself (the router's own cost without database noise).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import (BENCH_MONTH, load, markdown_table, med_range, spread, table)
from bench.servers import ROOT, SERVER_CPU, Server

ID = "B1"
TARGET = 0.97


def http_pair(port: int, subject: str, baseline: str, runs: int, duration: float,
              cpu_groups: dict[str, list[int]], concurrency: int = 8
              ) -> tuple[list[dict], list[dict]]:
    subject_runs, baseline_runs = [], []
    for i in range(runs):
        order = [(baseline, baseline_runs), (subject, subject_runs)]
        if i % 2:
            order.reverse()
        for path, into in order:
            into.append(load({"port": port, "requests": [{"path": path}],
                              "concurrency": concurrency, "duration": duration,
                              "warmup": 0.5, "timeout": 10}, cpu_groups))
    return subject_runs, baseline_runs


def run(ctx) -> dict:
    setup = ctx.setup()
    runs, duration = (3, 1.5) if ctx.quick else (5, 3.0)
    micro = micro_in_subprocess(setup.run_dir, setup.user_id, quick=ctx.quick)
    try:
        monolith = setup.start(Server("b1-monolith", "bench.app:app",
                                      setup.monolith_env("http://127.0.0.1:9"),
                                      setup.run_dir / "logs"))
        subject, baseline = http_pair(monolith.port, "/bench/router/runs", "/bench/direct/runs",
                                      runs, duration,
                                      {"monolith": monolith.worker_pids()})
    finally:
        setup.stop_all()
    s_rps = spread([r["rps"] for r in subject])
    b_rps = spread([r["rps"] for r in baseline])
    pair_ratios = spread([s["rps"] / b["rps"] for s, b in zip(subject, baseline, strict=False)])
    ratio = s_rps["median"] / b_rps["median"]
    http_cost_us = 1e6 / s_rps["median"] - 1e6 / b_rps["median"]
    s_cpu = spread([r["monolith_cpu_us_per_req"] for r in subject])
    b_cpu = spread([r["monolith_cpu_us_per_req"] for r in baseline])
    cpu_ratio = b_cpu["median"] / s_cpu["median"]
    errors = sum(sum(r["errors"].values()) for r in subject + baseline)
    non200 = sum(v for r in subject + baseline for k, v in r["statuses"].items() if k != "200")
    result = {
        "id": ID, "title": "local feature through the shim vs direct call",
        "method": f"{runs} alternating runs x {duration}s, 8 keep-alive connections, 1 gevent "
                  "worker on CPU 0, gevent raw-socket client on CPU 1",
        "subject": {"path": "/bench/router/runs", "rps": s_rps,
                    "p50_ms": spread([r["p50_ms"] for r in subject]),
                    "p99_ms": spread([r["p99_ms"] for r in subject]), "cpu_us_per_req": s_cpu},
        "baseline": {"path": "/bench/direct/runs", "rps": b_rps,
                     "p50_ms": spread([r["p50_ms"] for r in baseline]),
                     "p99_ms": spread([r["p99_ms"] for r in baseline]), "cpu_us_per_req": b_cpu},
        "capacity_ratio_from_cpu": round(cpu_ratio, 4),
        "cpu_shim_cost_us": round(s_cpu["median"] - b_cpu["median"], 1),
        "ratio": round(ratio, 4), "pair_ratios": pair_ratios,
        "http_shim_cost_us": round(http_cost_us, 1),
        "micro": micro, "errors": errors, "non_200": non200,
        "target": f"throughput >= {TARGET} x baseline", "pass": ratio >= TARGET and not errors
        and not non200,
        "baseline_desc": f"direct call, {b_rps['median']:.0f} rps",
        "measured": f"{s_rps['median']:.0f} rps ({ratio:.3f}x); shim "
                    f"{micro['router_overhead_us']['median']:.1f} us/call in-process",
        "raw": {"subject": subject, "baseline": baseline},
    }
    result["table"] = render(result)
    return result


def render(r: dict) -> str:
    rows = [["direct LocalRuns (baseline)", med_range(r["baseline"]["rps"]),
             med_range(r["baseline"]["p50_ms"], 2), med_range(r["baseline"]["p99_ms"], 2),
             med_range(r["baseline"]["cpu_us_per_req"], 0)],
            ["through Router, flag local", med_range(r["subject"]["rps"]),
             med_range(r["subject"]["p50_ms"], 2), med_range(r["subject"]["p99_ms"], 2),
             med_range(r["subject"]["cpu_us_per_req"], 0)]]
    m = r["micro"]
    micro_rows = [
        ["LocalRuns.list_runs direct", f"{m['direct_us']['median']:.1f}"],
        ["Router.list_runs (local)", f"{m['router_us']['median']:.1f}"],
        ["  difference: shim cost per call", med_range(m["router_overhead_us"], 1)],
        ["no-op stub direct", f"{m['stub_direct_us']['median']:.2f}"],
        ["Router over no-op stub", f"{m['stub_router_us']['median']:.2f}"],
        ["  difference: router alone", med_range(m["stub_overhead_us"], 2)],
    ]
    return "\n".join([
        table(f"B1 HTTP ({r['method']})", ["route", "rps median [min-max]", "p50 ms",
                                           "p99 ms", "server CPU us/req"], rows),
        f"ratio {r['ratio']:.3f} (per-run pairs {med_range(r['pair_ratios'], 3)}), target >= "
        f"{TARGET}: {'PASS' if r['pass'] else 'FAIL'}; shim cost from HTTP "
        f"{r['http_shim_cost_us']:.0f} us/request (1/rps), {r['cpu_shim_cost_us']:.0f} us/request "
        f"(server CPU); capacity ratio from CPU {r['capacity_ratio_from_cpu']:.3f}",
        table("B1 in-process, us per call (median [min-max] of "
              f"{m['repeats']} repeats)", ["call", "us"], micro_rows)])


def markdown(r: dict) -> str:
    m = r["micro"]
    return "\n\n".join([markdown_table(
        ["route", "rps median [min-max]", "p50 ms", "p99 ms", "server CPU µs/request"],
        [["direct LocalRuns (baseline)", med_range(r["baseline"]["rps"]),
          med_range(r["baseline"]["p50_ms"], 2), med_range(r["baseline"]["p99_ms"], 2),
          med_range(r["baseline"]["cpu_us_per_req"], 0)],
         ["through Router, flag `local`", med_range(r["subject"]["rps"]),
          med_range(r["subject"]["p50_ms"], 2), med_range(r["subject"]["p99_ms"], 2),
          med_range(r["subject"]["cpu_us_per_req"], 0)]]),
        f"Throughput ratio {r['ratio']:.3f} (per-run pairs {med_range(r['pair_ratios'], 3)}); "
        f"capacity ratio from server CPU per request {r['capacity_ratio_from_cpu']:.3f}; shim "
        f"cost {r['http_shim_cost_us']:.0f} µs/request from 1/rps, "
        f"{r['cpu_shim_cost_us']:.0f} µs from server CPU.",
        markdown_table(["in-process call", "µs per call (median [min-max])"],
                       [["LocalRuns.list_runs direct", med_range(m["direct_us"], 1)],
                        ["Router.list_runs, flag local", med_range(m["router_us"], 1)],
                        ["**shim cost** (difference)", med_range(m["router_overhead_us"], 1)],
                        ["no-op stub direct", med_range(m["stub_direct_us"], 2)],
                        ["Router over the no-op stub", med_range(m["stub_router_us"], 2)],
                        ["**router alone** (difference)", med_range(m["stub_overhead_us"], 2)]])])


# ---------------------------------------------------------------- in-process micro-benchmark

def micro_in_subprocess(run_dir: Path, user_id: int, *, quick: bool) -> dict:
    command = [sys.executable, "-m", "bench.b1_local_overhead", "--micro", str(run_dir),
               str(user_id), "quick" if quick else "full"]
    if os.cpu_count() > SERVER_CPU:
        command = ["taskset", "-c", str(SERVER_CPU), *command]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TURNOUT_")}
    env["TURNOUT_RUN_DIR"] = str(run_dir)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"B1 micro failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _micro(run_dir: str, user_id: int, quick: bool) -> dict:
    import logging

    logging.disable(logging.CRITICAL)
    from monolith.app import create_app
    from monolith.runs.sync import RunsMirror
    from monolith.wiring import FEATURES
    from shims.extension import EXTENSION_KEY
    from contracts.runs import RUNS
    from shims.router import Router, Sides
    from shims.shadow import ShadowRunner

    app = create_app({"RUN_DIR": run_dir})
    control = app.extensions[EXTENSION_KEY].control
    router = app.extensions[EXTENSION_KEY].routed.runs
    direct = router._sides.local  # the very LocalRuns the router calls
    year, month = BENCH_MONTH

    class Stub:
        def list_runs(self, user_id, year, month):
            return []

    stub = Stub()
    stub_router = Router(FEATURES["runs"], RUNS,
                         Sides(local=stub, remote=stub, local_sync=stub, remote_sync=stub),
                         flags=control.flags, breaker=control.breakers["runs"],
                         metrics=control.metrics, shadow=ShadowRunner("runs", control.metrics),
                         mirror=RunsMirror())
    repeats = 5 if quick else 9
    n_db, n_stub = (300, 5000) if quick else (1000, 20000)

    def per_call(fn, n: int) -> float:
        started = time.process_time()  # CPU time: robust to other processes on the core
        for _ in range(n):
            fn(user_id, year, month)
        return (time.process_time() - started) / n * 1e6

    samples = {"direct_us": [], "router_us": [], "stub_direct_us": [], "stub_router_us": []}
    with app.test_request_context("/bench"):
        assert router.list_runs(user_id, year, month) == direct.list_runs(user_id, year, month)
        for fn in (router.list_runs, direct.list_runs, stub.list_runs, stub_router.list_runs):
            per_call(fn, 200)  # warm up
        for i in range(repeats):
            pairs = [("direct_us", direct.list_runs, n_db), ("router_us", router.list_runs, n_db),
                     ("stub_direct_us", stub.list_runs, n_stub),
                     ("stub_router_us", stub_router.list_runs, n_stub)]
            if i % 2:
                pairs.reverse()
            for name, fn, n in pairs:
                samples[name].append(per_call(fn, n))
    out = {name: spread(values) for name, values in samples.items()}
    out["router_overhead_us"] = spread([r - d for r, d in zip(samples["router_us"],
                                                              samples["direct_us"], strict=False)])
    out["stub_overhead_us"] = spread([r - d for r, d in zip(samples["stub_router_us"],
                                                            samples["stub_direct_us"],
                                                            strict=True)])
    out["repeats"] = repeats
    out["calls_per_repeat"] = {"database": n_db, "stub": n_stub}
    out["relative_overhead"] = round(statistics.median(samples["router_us"]) /
                                     statistics.median(samples["direct_us"]) - 1, 4)
    return out


if __name__ == "__main__" and sys.argv[1:2] == ["--micro"]:
    print(json.dumps(_micro(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "quick")))
