"""B2: a monolith API request whose feature is `remote`, against the same view calling the data
service with a hand-written requests.Session call.

The monolith (bench.app, 1 gevent worker) and the data service (1 gevent worker) both on CPU 0,
client on CPU 1. `/bench/router/runs` (Router -> RemoteRuns -> HttpTransport, flag remote) and
`/bench/handwritten/runs` (requests.Session().post to /rpc/runs/list_runs with the same bearer
token) alternate run by run. Note: the product's remote client sends If-None-Match and the data
service answers 304 for an unchanged read; the hand-written call does not (it is what a team
would write without the kit), so the router's hop skips re-sending an unchanged body.
"""

from __future__ import annotations

import time

from bench.b1_local_overhead import http_pair
from bench.common import markdown_table, med_range, set_flag, spread, table
from bench.servers import Server

ID = "B2"
TARGET = 0.90


def run(ctx) -> dict:
    setup = ctx.setup()
    runs, duration = (3, 1.5) if ctx.quick else (7, 3.0)
    try:
        data = setup.start(Server("b2-dataservice", "extracted.dataservice.wsgi:app",
                                  setup.dataservice_env(), setup.run_dir / "logs"))
        set_flag(setup.run_dir, "runs", "remote")
        monolith = setup.start(Server("b2-monolith", "bench.app:app",
                                      setup.monolith_env(data.url), setup.run_dir / "logs"))
        time.sleep(0.5)  # > FLAGS_REFRESH: the worker serves `remote`
        subject, baseline = http_pair(monolith.port, "/bench/router/runs",
                                      "/bench/handwritten/runs", runs, duration,
                                      {"monolith": monolith.worker_pids(),
                                       "dataservice": data.worker_pids()})
    finally:
        setup.stop_all()

    def side(rs: list[dict], path: str) -> dict:
        return {"path": path, "rps": spread([r["rps"] for r in rs]),
                "p50_ms": spread([r["p50_ms"] for r in rs]),
                "p99_ms": spread([r["p99_ms"] for r in rs]),
                "monolith_cpu_us_per_req": spread([r["monolith_cpu_us_per_req"] for r in rs]),
                "dataservice_cpu_us_per_req": spread([r["dataservice_cpu_us_per_req"]
                                                      for r in rs])}

    s, b = side(subject, "/bench/router/runs"), side(baseline, "/bench/handwritten/runs")
    ratio = s["rps"]["median"] / b["rps"]["median"]
    errors = sum(sum(r["errors"].values()) for r in subject + baseline)
    non200 = sum(v for r in subject + baseline for k, v in r["statuses"].items() if k != "200")
    total = {k: spread([r["monolith_cpu_us_per_req"] + r["dataservice_cpu_us_per_req"]
                        for r in rs]) for k, rs in (("subject", subject), ("baseline", baseline))}
    result = {
        "id": ID, "title": "remote feature through the shim vs hand-written requests.Session",
        "method": f"{runs} alternating runs x {duration}s, 8 keep-alive connections; monolith and "
                  "data service 1 gevent worker each on CPU 0; client on CPU 1",
        "subject": s, "baseline": b, "ratio": round(ratio, 4),
        "pair_ratios": spread([x["rps"] / y["rps"]
                               for x, y in zip(subject, baseline, strict=True)]),
        "monolith_cpu_cost_us": round(s["monolith_cpu_us_per_req"]["median"] -
                                      b["monolith_cpu_us_per_req"]["median"], 1),
        "capacity_ratio_from_cpu": round(total["baseline"]["median"] /
                                         total["subject"]["median"], 4),
        "total_cpu_us_per_req": total, "errors": errors, "non_200": non200,
        "baseline_desc": f"hand-written Session call, {b['rps']['median']:.0f} rps",
        "measured": f"{s['rps']['median']:.0f} rps ({ratio:.3f}x)",
        "target": f"throughput >= {TARGET} x baseline",
        "pass": ratio >= TARGET and not errors and not non200,
        "raw": {"subject": subject, "baseline": baseline},
    }
    result["table"] = render(result)
    return result


def _rows(r: dict) -> list[list[str]]:
    out = []
    for label, side in (("hand-written requests.Session (baseline)", r["baseline"]),
                        ("through Router, flag remote", r["subject"])):
        out.append([label, med_range(side["rps"]), med_range(side["p50_ms"], 2),
                    med_range(side["p99_ms"], 2), med_range(side["monolith_cpu_us_per_req"], 0),
                    med_range(side["dataservice_cpu_us_per_req"], 0)])
    return out


HEADER = ["route", "rps median [min-max]", "p50 ms", "p99 ms", "monolith CPU us/req",
          "data service CPU us/req"]


def render(r: dict) -> str:
    return "\n".join([table(f"B2 ({r['method']})", HEADER, _rows(r)),
                      f"ratio {r['ratio']:.3f} (per-run pairs {med_range(r['pair_ratios'], 3)}), "
                      f"target >= {TARGET}: {'PASS' if r['pass'] else 'FAIL'}; monolith CPU "
                      f"difference {r['monolith_cpu_cost_us']:+.0f} us/request; capacity ratio "
                      f"from total CPU {r['capacity_ratio_from_cpu']:.3f}"])


def markdown(r: dict) -> str:
    return markdown_table([h.replace("us/req", "µs/request") for h in HEADER], _rows(r)) + \
        (f"\n\nThroughput ratio {r['ratio']:.3f} (per-run pairs {med_range(r['pair_ratios'], 3)});"
         f" monolith CPU difference {r['monolith_cpu_cost_us']:+.0f} µs/request; capacity ratio "
         f"from total server CPU {r['capacity_ratio_from_cpu']:.3f}.")
