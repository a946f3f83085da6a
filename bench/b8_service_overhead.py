"""B8: data service CPU per `list_runs` call against a bare Flask + SQLAlchemy endpoint.

The data service (extracted.dataservice.wsgi: token check, contract decoding, idempotency
scope, metrics, span and log line, ETag) and the same endpoint written without the kit
(bench.b8_apps:bare: same two ORM queries, same JSON shape, no token) each run as one
gevent worker on CPU 0, on the same database file. The load generator on CPU 1 sends a
fixed number of keep-alive `POST /rpc/runs/list_runs` requests (10 rows each) to one, then
the other, alternating which goes first; each server's CPU time (its worker's threads'
on-CPU time, bench.common.cpu_seconds) is read before and after. The figure is CPU
microseconds per request, and the ratio of the service's to the baseline's.
"""

from __future__ import annotations

import json

import requests

from bench.common import BENCH_MONTH, load, markdown_table, med_range, spread, table
from bench.servers import Server, clean_env

ID = "B8"
TARGET = 1.3
PATH = "/rpc/runs/list_runs"
CONNECTIONS = 4


def run(ctx) -> dict:
    setup = ctx.setup()
    runs, requests_per_run = (3, 1500) if ctx.quick else (7, 4000)
    year, month = BENCH_MONTH
    body = json.dumps({"args": {"user_id": setup.user_id, "year": year, "month": month}})
    headers = {"Content-Type": "application/json", **setup.tokens.header}
    database = f"sqlite:///{setup.run_dir / 'dataservice.db'}"
    try:
        service = setup.start(Server("b8-dataservice", "extracted.dataservice.wsgi:app",
                                     setup.dataservice_env(), setup.run_dir / "logs"))
        bare = setup.start(Server("b8-bare", "bench.b8_apps:bare",
                                  clean_env(BENCH_DATABASE_URL=database),
                                  setup.run_dir / "logs"))
        same = _same_answer(service.url, bare.url, body, headers)
        sides = {"service": service, "bare": bare}
        for server in sides.values():  # warm both: imports, compiled queries, pools
            _measure(server, body, headers, 500)
        measured: dict[str, list[dict]] = {"service": [], "bare": []}
        for index in range(runs):
            order = ("service", "bare") if index % 2 == 0 else ("bare", "service")
            for name in order:
                measured[name].append(_measure(sides[name], body, headers, requests_per_run))
    finally:
        setup.stop_all()
    return _result(measured, same, runs, requests_per_run)


def _measure(server: Server, body: str, headers: dict, count: int) -> dict:
    spec = {"host": "127.0.0.1", "port": server.port, "concurrency": CONNECTIONS,
            "duration": 120, "max_requests": count, "keepalive": True, "timeout": 10,
            "requests": [{"method": "POST", "path": PATH, "headers": headers, "body": body}]}
    return load(spec, {"server": server.worker_pids()})


def _same_answer(service_url: str, bare_url: str, body: str, headers: dict) -> bool:
    """Both answer 200 with the same rows (the baseline does not merely look cheaper)."""
    answers = [requests.post(url + PATH, data=body, headers=headers, timeout=10)
               for url in (service_url, bare_url)]
    if any(answer.status_code != 200 for answer in answers):
        raise RuntimeError(f"B8: a side did not answer 200: "
                           f"{[(a.status_code, a.text[:200]) for a in answers]}")
    service_rows, bare_rows = (answer.json()["result"] for answer in answers)
    return service_rows == bare_rows and len(service_rows) > 0


def _result(measured: dict[str, list[dict]], same: bool, runs: int, count: int) -> dict:
    def side(rs: list[dict]) -> dict:
        return {"cpu_us_per_req": spread([r["server_cpu_us_per_req"] for r in rs]),
                "rps": spread([r["rps"] for r in rs]), "p50_ms": spread([r["p50_ms"] for r in rs]),
                "p99_ms": spread([r["p99_ms"] for r in rs])}

    service, bare = side(measured["service"]), side(measured["bare"])
    ratio = service["cpu_us_per_req"]["median"] / bare["cpu_us_per_req"]["median"]
    every = measured["service"] + measured["bare"]
    errors = sum(sum(r["errors"].values()) for r in every)
    non200 = sum(v for r in every for k, v in r["statuses"].items() if k != "200")
    result = {
        "id": ID, "title": "data service CPU per list_runs call vs a bare Flask + SQLAlchemy "
                           "endpoint",
        "method": f"{runs} alternating runs x {count} keep-alive POST {PATH} (10 rows) on "
                  f"{CONNECTIONS} connections; each server 1 gevent worker on CPU 0, same "
                  "SQLite file; client on CPU 1; CPU = worker on-CPU time per request",
        "subject": service, "baseline": bare, "ratio": round(ratio, 4),
        "pair_ratios": spread([s["server_cpu_us_per_req"] / b["server_cpu_us_per_req"]
                               for s, b in zip(measured["service"], measured["bare"],
                                               strict=True)]),
        "same_answer": same, "errors": errors, "non_200": non200,
        "baseline_desc": f"bare Flask+SQLAlchemy, {bare['cpu_us_per_req']['median']:.0f} "
                         "µs CPU/req",
        "measured": f"{service['cpu_us_per_req']['median']:.0f} µs CPU/req ({ratio:.3f}x)",
        "target": f"CPU ratio <= {TARGET}",
        "pass": ratio <= TARGET and same and not errors and not non200,
        "raw": measured,
    }
    result["table"] = render(result)
    return result


HEADER = ["endpoint", "CPU us/req median [min-max]", "rps", "p50 ms", "p99 ms"]


def _rows(r: dict) -> list[list[str]]:
    return [[label, med_range(side["cpu_us_per_req"], 0), med_range(side["rps"], 0),
             med_range(side["p50_ms"], 2), med_range(side["p99_ms"], 2)]
            for label, side in (("bare Flask + SQLAlchemy (baseline)", r["baseline"]),
                                ("data service (kit)", r["subject"]))]


def _verdict(r: dict) -> str:
    return (f"CPU ratio {r['ratio']:.3f} (per-run pairs {med_range(r['pair_ratios'], 3)}), "
            f"target <= {TARGET}: {'PASS' if r['pass'] else 'FAIL'}; same rows: "
            f"{r['same_answer']}; errors {r['errors']}, non-200 {r['non_200']}")


def render(r: dict) -> str:
    return "\n".join([table(f"B8 ({r['method']})", HEADER, _rows(r)), _verdict(r)])


def markdown(r: dict) -> str:
    return markdown_table([h.replace("us/req", "µs/request") for h in HEADER], _rows(r)) + \
        "\n\n" + _verdict(r) + "."
