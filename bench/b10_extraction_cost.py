"""B10: what extraction costs: total CPU per public `GET /api/runs` with the runs feature
`remote` (monolith + data service), against the monolith's alone with it `local`.

The monolith (bench.app, 1 gevent worker) and the data service (1 gevent worker) both on CPU 0,
the load generator on CPU 1. The benchmark user's API token (POST /api/tokens) on every
request, the month's runs listed; the flag alternates `local` and `remote` run by run. CPU is
each server's worker processes' utime + stime per request served (bench.common.load), so the
`remote` side carries the data service's share and the monolith's client side of the hop.
"""

from __future__ import annotations

import base64
import time

import requests

from bench.common import (BENCH_MONTH, BENCH_PASSWORD, BENCH_USER, load, markdown_table,
                          med_range, set_flag, spread, table)
from bench.servers import Server

ID = "B10"
TARGET = 1.5  # remote total CPU per request <= 1.5 x local's (issue 12)
MODES = ("local", "remote")


def api_token(url: str) -> str:
    credentials = base64.b64encode(f"{BENCH_USER}:{BENCH_PASSWORD}".encode()).decode()
    answer = requests.post(f"{url}/api/tokens", timeout=10,
                           headers={"Authorization": f"Basic {credentials}"})
    answer.raise_for_status()
    return answer.json()["token"]


def run(ctx) -> dict:
    setup = ctx.setup()
    runs, duration = (3, 1.5) if ctx.quick else (7, 3.0)
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    try:
        data = setup.start(Server("b10-dataservice", "extracted.dataservice.wsgi:app",
                                  setup.dataservice_env(), setup.run_dir / "logs"))
        monolith = setup.start(Server("b10-monolith", "bench.app:app",
                                      setup.monolith_env(data.url), setup.run_dir / "logs"))
        year, month = BENCH_MONTH
        request = {"path": f"/api/runs?year={year}&month={month}",
                   "headers": {"Authorization": f"Bearer {api_token(monolith.url)}"}}
        groups = {"monolith": monolith.worker_pids(), "dataservice": data.worker_pids()}
        for i in range(runs):
            for mode in (MODES if i % 2 == 0 else tuple(reversed(MODES))):
                set_flag(setup.run_dir, "runs", mode)
                time.sleep(0.6)  # > FLAGS_REFRESH: the worker serves `mode`
                results[mode].append(load({"port": monolith.port, "requests": [request],
                                           "concurrency": 8, "duration": duration,
                                           "warmup": 0.5, "timeout": 10}, groups))
    finally:
        setup.stop_all()
    return summarize(results, runs, duration)


def summarize(results: dict[str, list[dict]], runs: int, duration: float) -> dict:
    def side(rs: list[dict]) -> dict:
        return {"rps": spread([r["rps"] for r in rs]),
                "p50_ms": spread([r["p50_ms"] for r in rs]),
                "p99_ms": spread([r["p99_ms"] for r in rs]),
                "monolith_cpu_us_per_req": spread([r["monolith_cpu_us_per_req"] for r in rs]),
                "dataservice_cpu_us_per_req": spread([r["dataservice_cpu_us_per_req"]
                                                      for r in rs]),
                "total_cpu_us_per_req": spread([r["monolith_cpu_us_per_req"]
                                                + r["dataservice_cpu_us_per_req"] for r in rs])}

    local, remote = side(results["local"]), side(results["remote"])
    ratio = remote["total_cpu_us_per_req"]["median"] / local["total_cpu_us_per_req"]["median"]
    pairs = [(r["monolith_cpu_us_per_req"] + r["dataservice_cpu_us_per_req"])
             / (b["monolith_cpu_us_per_req"] + b["dataservice_cpu_us_per_req"])
             for r, b in zip(results["remote"], results["local"], strict=True)]
    every = results["local"] + results["remote"]
    errors = sum(sum(r["errors"].values()) for r in every)
    non200 = sum(v for r in every for k, v in r["statuses"].items() if k != "200")
    result = {
        "id": ID, "title": "GET /api/runs: remote (monolith + data service) vs local, CPU",
        "method": f"{runs} alternating runs x {duration}s, 8 keep-alive connections, API token; "
                  "monolith and data service 1 gevent worker each on CPU 0; client on CPU 1",
        "local": local, "remote": remote, "ratio": round(ratio, 4),
        "pair_ratios": spread(pairs), "errors": errors, "non_200": non200,
        "target": f"<= {TARGET}",
        "pass": ratio <= TARGET and errors == 0 and non200 == 0,
        "measured": f"{remote['total_cpu_us_per_req']['median']:.0f} µs CPU/request remote",
        "baseline_desc": f"{local['total_cpu_us_per_req']['median']:.0f} µs local",
    }
    result["rows"] = _rows(result)
    result["table"] = table(f"{ID}: {result['title']}", ["", "local", "remote"], result["rows"])
    return result


def _rows(result: dict) -> list[list[str]]:
    local, remote = result["local"], result["remote"]
    return [[name, med_range(local[key]), med_range(remote[key])] for name, key in (
        ("rps", "rps"), ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"),
        ("monolith CPU µs/req", "monolith_cpu_us_per_req"),
        ("data service CPU µs/req", "dataservice_cpu_us_per_req"),
        ("total CPU µs/req", "total_cpu_us_per_req"))] + [
        ["ratio (remote/local total CPU)", "", f"{result['ratio']:.3f} (target <= {TARGET})"]]


def markdown(result: dict) -> str:
    return markdown_table(["", "local", "remote"], result["rows"])
