"""B3: a monolith-like endpoint calling a remote feature whose service takes 50 ms, under
gunicorn gevent workers vs gunicorn sync workers (the same count, 2), at 50 and 200 clients.

The front (bench.b3_apps:front, RemoteRuns over HttpTransport) runs 2 workers on CPU 0; the
50 ms service (bench.b3_apps:slow, 1 gevent worker) runs on CPU 1 beside the client (it only
sleeps). Closed loop, keep-alive where the server allows it (sync workers close every
connection).
"""

from __future__ import annotations

from bench.common import markdown_table, med_range, spread, table
from bench.loadgen import run_load
from bench.servers import Server, clean_env

ID = "B3"
SERVICE_S = 0.05
CLIENTS = (50, 200)
TARGET_RATIO = 20.0
TARGET_P99 = 3.0
WORKERS = 2


def run(ctx) -> dict:
    runs, duration = (1, 3.0) if ctx.quick else (2, 4.0)
    logs = ctx.workdir / "b3-logs"
    logs.mkdir(exist_ok=True)
    measured: dict[str, dict[int, list[dict]]] = {"gevent": {}, "sync": {}}
    slow = Server("b3-slow", "bench.b3_apps:slow", clean_env(BENCH_SLOW_DELAY=SERVICE_S), logs,
                  workers=1, cpu=1).wait_ready()
    try:
        for kind in ("gevent", "sync"):
            front = Server(f"b3-front-{kind}", "bench.b3_apps:front",
                           clean_env(BENCH_FRONT=1, BENCH_SERVICE_URL=slow.url), logs,
                           worker=kind, workers=WORKERS, cpu=0).wait_ready()
            try:
                for clients in CLIENTS:
                    measured[kind][clients] = [
                        run_load({"port": front.port, "requests": [{"path": "/front/runs"}],
                                  "concurrency": clients, "duration": duration, "warmup": 1.0,
                                  "timeout": 30}) for _ in range(runs)]
            finally:
                front.stop()
    finally:
        slow.stop()

    rows = {}
    for kind, by_clients in measured.items():
        for clients, rs in by_clients.items():
            rows[f"{kind}/{clients}"] = {
                "worker": kind, "clients": clients, "rps": spread([r["rps"] for r in rs]),
                "p50_ms": spread([r["p50_ms"] for r in rs]),
                "p99_ms": spread([r["p99_ms"] for r in rs]),
                "errors": sum(sum(r["errors"].values()) for r in rs),
                "non_200": sum(v for r in rs for k, v in r["statuses"].items() if k != "200")}
    g50, s50, g200 = rows["gevent/50"], rows["sync/50"], rows["gevent/200"]
    ratio = g50["rps"]["median"] / s50["rps"]["median"]
    p99_ratio = g50["p99_ms"]["median"] / (SERVICE_S * 1000)
    p99_ratio_200 = g200["p99_ms"]["median"] / (SERVICE_S * 1000)
    clean = all(r["errors"] == 0 and r["non_200"] == 0 for k, r in rows.items()
                if k.startswith("gevent"))
    result = {
        "id": ID, "title": "50 ms remote call: gevent vs sync workers",
        "method": f"{runs} run(s) x {duration}s per cell after 1s warm-up; front {WORKERS} "
                  "workers on CPU 0; 50 ms service on CPU 1; client on CPU 1",
        "rows": rows, "ratio": round(ratio, 2), "p99_over_service_50": round(p99_ratio, 2),
        "p99_over_service_200": round(p99_ratio_200, 2),
        "baseline_desc": f"sync -w {WORKERS} at 50 clients, {s50['rps']['median']:.0f} rps",
        "measured": f"gevent {g50['rps']['median']:.0f} rps at 50 clients ({ratio:.1f}x sync); "
                    f"p99 {g50['p99_ms']['median']:.0f} ms = {p99_ratio:.2f}x service "
                    f"(200 clients: {p99_ratio_200:.2f}x)",
        "target": f"gevent >= {TARGET_RATIO:g}x sync at 50 clients; p99 <= {TARGET_P99:g}x "
                  "service latency (judged at 50 clients)",
        "pass": ratio >= TARGET_RATIO and p99_ratio <= TARGET_P99 and clean,
        "raw": measured,
    }
    result["table"] = render(result)
    return result


HEADER = ["worker", "clients", "rps median [min-max]", "p50 ms", "p99 ms", "p99 / 50 ms",
          "errors"]


def _rows(r: dict) -> list[list[str]]:
    return [[row["worker"], str(row["clients"]), med_range(row["rps"]),
             med_range(row["p50_ms"], 0), med_range(row["p99_ms"], 0),
             "-" if row["p99_ms"]["median"] is None else
             f"{row['p99_ms']['median'] / (SERVICE_S * 1000):.2f}",
             str(row["errors"] + row["non_200"])] for row in r["rows"].values()]


def render(r: dict) -> str:
    return "\n".join([table(f"B3 ({r['method']})", HEADER, _rows(r)),
                      f"gevent/sync at 50 clients {r['ratio']:.1f}x (target >= {TARGET_RATIO:g}x);"
                      f" p99/service {r['p99_over_service_50']:.2f} at 50 clients, "
                      f"{r['p99_over_service_200']:.2f} at 200 (target <= {TARGET_P99:g}): "
                      f"{'PASS' if r['pass'] else 'FAIL'}"])


def markdown(r: dict) -> str:
    return markdown_table(HEADER, _rows(r)) + (
        f"\n\ngevent/sync throughput at 50 clients: **{r['ratio']:.1f}x**; gevent p99 / service "
        f"latency: **{r['p99_over_service_50']:.2f}** at 50 clients, "
        f"{r['p99_over_service_200']:.2f} at 200.")
