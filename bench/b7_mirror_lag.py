"""B7: mirror lag under a mixed read/write load: how old the oldest unmirrored change gets.

bench.app (the real monolith, product wiring, its mirror applier running) with 2 gevent
workers on CPU 0, and a real data service (1 gevent worker, CPU 1). The `runs` flag is
`canary 50`: half the runners are answered by the service, so both sides write and both
outboxes drain, each way. 20 runners, 25 keep-alive connections, 70% month listings and 30%
new runs (round robin over the runners).

The figure: every 50 ms, both databases are asked for the age of the oldest change still
pending in their outbox (`turnout_outbox`, read from the files). That bounds the lag of every
change at that moment: a change is pending from its write's commit until it has been applied
on the other side and settled, so its lag can only be shorter than the oldest's age. The
distribution of those samples is reported; the goal is p99 <= 1 s. Its "baseline" is the
same sampling with no load (what settling in batches costs when nothing moves).
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import threading
import time
import uuid

import requests

from bench.common import markdown_table, set_flag, table
from bench.loadgen import run_load
from bench.servers import Server

ID = "B7"
TARGET_S = 1.0
RUNNERS = 20
PASSWORD = "bench-runner-9"


class LagSampler:
    """Samples the oldest pending change's age in each database, every `interval` s."""

    def __init__(self, databases, interval: float = 0.05):
        self._databases = databases
        self._interval = interval
        self.samples: list[float] = []
        self.backlog: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            now, oldest, waiting = time.time(), 0.0, 0
            for database in self._databases:
                count, first = _pending(database)
                waiting += count
                if first is not None:
                    oldest = max(oldest, now - first)
            self.samples.append(oldest)
            self.backlog.append(waiting)
            self._stop.wait(self._interval)


def _pending(database) -> tuple[int, float | None]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        return connection.execute("SELECT count(*), min(changed_at) FROM turnout_outbox "
                                  "WHERE pending").fetchone()
    except sqlite3.OperationalError:
        return 0, None  # busy for longer than the timeout: skip this sample
    finally:
        connection.close()


def _runners(url: str) -> list[str]:
    tokens = []
    for _ in range(RUNNERS):
        email = f"b7-{uuid.uuid4().hex[:10]}@example.com"
        created = requests.post(f"{url}/api/users", timeout=10,
                                json={"email": email, "password": PASSWORD})
        created.raise_for_status()
        token = requests.post(f"{url}/api/tokens", auth=(email, PASSWORD), timeout=10)
        token.raise_for_status()
        tokens.append(token.json()["token"])
    return tokens


def _mix(tokens: list[str]) -> list[dict]:
    mix = []
    for i, token in enumerate(tokens * 5):
        auth = {"Authorization": f"Bearer {token}"}
        if i % 10 < 7:
            mix.append({"path": "/api/runs?year=2026&month=11", "headers": auth})
        else:
            mix.append({"method": "POST", "path": "/api/runs",
                        "headers": {**auth, "Content-Type": "application/json"},
                        "body": json.dumps({"name": f"b7 {i}", "distance": 5000 + i,
                                            "start_date": "2026-11-10T07:00:00Z",
                                            "elapsed_time": 1500 + i})})
    return mix


def _spread(samples: list[float]) -> dict:
    ordered = sorted(samples)
    if not ordered:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    return {"p50": round(statistics.median(ordered), 3),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
            "max": round(ordered[-1], 3), "n": len(ordered)}


def run(ctx) -> dict:
    setup = ctx.setup()
    duration = 8.0 if ctx.quick else 30.0
    logs = setup.run_dir / "logs"
    databases = [setup.run_dir / "monolith.db", setup.run_dir / "dataservice.db"]
    try:
        data = setup.start(Server("b7-dataservice", "extracted.dataservice.wsgi:app",
                                  setup.dataservice_env(), logs, cpu=1))
        set_flag(setup.run_dir, "runs", "canary", 50)
        monolith = setup.start(Server("b7-monolith", "bench.app:app",
                                      setup.monolith_env(data.url), logs, workers=2))
        mix = _mix(_runners(monolith.url))
        with LagSampler(databases) as idle:
            time.sleep(3)
        with LagSampler(databases) as busy:
            result = run_load({"port": monolith.port, "requests": mix, "concurrency": 25,
                               "duration": duration, "timeout": 10})
        time.sleep(2)
        left = sum(_pending(database)[0] for database in databases)
    finally:
        setup.stop_all()
    loaded, baseline = _spread(busy.samples), _spread(idle.samples)
    statuses = result.get("statuses", {})
    writes = int(statuses.get("201", 0))
    errors = sum(result.get("errors", {}).values()) + sum(
        n for code, n in statuses.items() if code not in ("200", "201"))
    passed = loaded["p99"] is not None and loaded["p99"] <= TARGET_S and errors == 0 \
        and left == 0
    rows = [["under load", loaded["p50"], loaded["p99"], loaded["max"], loaded["n"],
             max(busy.backlog, default=0)],
            ["idle", baseline["p50"], baseline["p99"], baseline["max"], baseline["n"],
             max(idle.backlog, default=0)]]
    header = ["phase", "oldest pending p50 s", "p99 s", "max s", "samples", "max backlog"]
    return {
        "id": ID, "title": "mirror lag under a mixed load (canary 50, both ways)",
        "measured": f"p99 {loaded['p99']}s (max {loaded['max']}s) over {writes} writes at "
                    f"{result.get('rps', 0):.0f} rps; {left} left pending after",
        "baseline_desc": f"idle p99 {baseline['p99']}s", "ratio": None,
        "target": f"p99 <= {TARGET_S:g}s, no errors, backlog drained", "pass": passed,
        "rows": rows, "header": header, "load": result, "errors": errors,
        "table": table("B7 mirror lag (age of the oldest unmirrored change)", header, rows),
    }


def markdown(result: dict) -> str:
    return markdown_table(result["header"], result["rows"])
