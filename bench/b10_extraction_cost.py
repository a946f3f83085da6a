"""B10: what extraction costs: total CPU per public `GET /api/runs` with the runs feature
`remote` (monolith + data service), against the monolith's alone with it `local`.

The monolith (bench.app, 1 gevent worker) and the data service (1 gevent worker) both on CPU 0,
the load generator on CPU 1. The benchmark user's API token (POST /api/tokens) on every
request, the month's runs listed; the flag alternates `local` and `remote` run by run. CPU is
each server's worker threads' on-CPU time per request served (bench.common.load), so the
`remote` side carries the data service's share and the monolith's client side of the hop.

The target is judged at the same offered load for both stages: an open loop at RATE requests
a second, below either's capacity, as production runs. CPU per request depends on load: a
saturated worker amortises each wake-up of its loop over many requests (B12 measured a local
read at 3.6 ms in a closed loop and 5.5 ms at 70 req/s), and a closed loop drives `local` to
about twice the rate of `remote`, so a closed-loop ratio compares two different loads. It is
still measured and shown (`saturated`), not judged.
"""

from __future__ import annotations

import base64
import time

import requests

from bench.common import (BENCH_MONTH, BENCH_PASSWORD, BENCH_USER, load, markdown_table,
                          med_range, set_flag, spread, table)
from bench.servers import Server

ID = "B10"
TARGET = 1.5  # remote total CPU per request <= 1.5 x local's (issue 12), at the same load
MODES = ("local", "remote")
RATE = 70.0  # requests a second offered to both stages (remote served ~140 in a closed loop)


def api_token(url: str) -> str:
    credentials = base64.b64encode(f"{BENCH_USER}:{BENCH_PASSWORD}".encode()).decode()
    answer = requests.post(f"{url}/api/tokens", timeout=10,
                           headers={"Authorization": f"Basic {credentials}"})
    answer.raise_for_status()
    return answer.json()["token"]


def run(ctx) -> dict:
    setup = ctx.setup()
    runs, duration = (3, 2.0) if ctx.quick else (7, 4.0)
    results: dict[str, dict[str, list[dict]]] = {
        load_kind: {mode: [] for mode in MODES} for load_kind in ("rate", "saturated")}
    try:
        data = setup.start(Server("b10-dataservice", "extracted.dataservice.wsgi:app",
                                  setup.dataservice_env(), setup.run_dir / "logs"))
        monolith = setup.start(Server("b10-monolith", "bench.app:app",
                                      setup.monolith_env(data.url), setup.run_dir / "logs"))
        year, month = BENCH_MONTH
        request = {"path": f"/api/runs?year={year}&month={month}",
                   "headers": {"Authorization": f"Bearer {api_token(monolith.url)}"}}
        groups = {"monolith": monolith.worker_pids(), "dataservice": data.worker_pids()}
        spec = {"port": monolith.port, "requests": [request], "concurrency": 8,
                "warmup": 0.5, "timeout": 10}
        for i in range(runs):
            for mode in (MODES if i % 2 == 0 else tuple(reversed(MODES))):
                set_flag(setup.run_dir, "runs", mode)
                time.sleep(0.6)  # > FLAGS_REFRESH: the worker serves `mode`
                results["rate"][mode].append(
                    load({**spec, "rate": RATE, "duration": duration}, groups))
                if i < 3:  # the saturated figure: shown, not judged
                    results["saturated"][mode].append(
                        load({**spec, "duration": duration / 2}, groups))
    finally:
        setup.stop_all()
    return summarize(results, runs, duration)


def summarize(results: dict[str, dict[str, list[dict]]], runs: int, duration: float) -> dict:
    def side(rs: list[dict]) -> dict:
        return {"rps": spread([r["rps"] for r in rs]),
                "p50_ms": spread([r["p50_ms"] for r in rs]),
                "p99_ms": spread([r["p99_ms"] for r in rs]),
                "monolith_cpu_us_per_req": spread([r["monolith_cpu_us_per_req"] for r in rs]),
                "dataservice_cpu_us_per_req": spread([r["dataservice_cpu_us_per_req"]
                                                      for r in rs]),
                "total_cpu_us_per_req": spread([_total(r) for r in rs])}

    at_rate, saturated = results["rate"], results["saturated"]
    local, remote = side(at_rate["local"]), side(at_rate["remote"])
    ratio = remote["total_cpu_us_per_req"]["median"] / local["total_cpu_us_per_req"]["median"]
    pairs = [_total(r) / _total(b) for r, b in zip(at_rate["remote"], at_rate["local"],
                                                      strict=True)]
    sat = {mode: side(rs) for mode, rs in saturated.items()}
    sat_ratio = (sat["remote"]["total_cpu_us_per_req"]["median"]
                 / sat["local"]["total_cpu_us_per_req"]["median"])
    every = [r for by_mode in results.values() for rs in by_mode.values() for r in rs]
    errors = sum(sum(r["errors"].values()) for r in every)
    non200 = sum(v for r in every for k, v in r["statuses"].items() if k != "200")
    kept_up = all(r["rps"] >= 0.95 * RATE for rs in at_rate.values() for r in rs)
    result = {
        "id": ID, "title": "GET /api/runs: remote (monolith + data service) vs local, CPU",
        "method": f"{runs} alternating runs x {duration}s at {RATE:.0f} req/s (open loop, 8 "
                  "connections), then 3 closed-loop runs each (saturated, shown); API token; "
                  "monolith and data service 1 gevent worker each on CPU 0; client on CPU 1",
        "local": local, "remote": remote, "ratio": round(ratio, 4),
        "pair_ratios": spread(pairs), "saturated": sat, "saturated_ratio": round(sat_ratio, 4),
        "errors": errors, "non_200": non200, "kept_up": kept_up,
        "target": f"<= {TARGET} at {RATE:.0f} req/s",
        "pass": ratio <= TARGET and errors == 0 and non200 == 0 and kept_up,
        "measured": f"{remote['total_cpu_us_per_req']['median']:.0f} µs CPU/request remote",
        "baseline_desc": f"{local['total_cpu_us_per_req']['median']:.0f} µs local",
    }
    result["rows"] = _rows(result)
    result["table"] = table(f"{ID}: {result['title']}", HEADER, result["rows"])
    return result


def _total(r: dict) -> float:
    return r["monolith_cpu_us_per_req"] + r["dataservice_cpu_us_per_req"]


HEADER = ["", f"local, {RATE:.0f} req/s", f"remote, {RATE:.0f} req/s", "local, saturated",
          "remote, saturated"]


def _rows(result: dict) -> list[list[str]]:
    local, remote = result["local"], result["remote"]
    sat = result["saturated"]
    return [[name, med_range(local[key]), med_range(remote[key]), med_range(sat["local"][key]),
             med_range(sat["remote"][key])] for name, key in (
        ("rps", "rps"), ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"),
        ("monolith CPU µs/req", "monolith_cpu_us_per_req"),
        ("data service CPU µs/req", "dataservice_cpu_us_per_req"),
        ("total CPU µs/req", "total_cpu_us_per_req"))] + [
        ["ratio (remote/local total CPU)", "",
         f"{result['ratio']:.3f} (target <= {TARGET})", "",
         f"{result['saturated_ratio']:.3f} (shown)"]]


def markdown(result: dict) -> str:
    return markdown_table(HEADER, result["rows"])
