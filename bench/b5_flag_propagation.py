"""B5: time from a flag change to every worker of a 4-worker monolith serving the new mode.

The real monolith (monolith.wsgi:app) under gunicorn with 4 gevent workers on CPU 0. The change is
written with SqlFlagStore.set in this process, against the same flags.db the CLI uses (no CLI
start-up in the figure); the clock starts just before the write. Then /healthz (which reports the
worker's pid and the mode it serves) is polled over new connections until all 4 pids have
answered with the new mode: that instant is an upper bound of the propagation time (a worker is
only seen when the kernel hands it a connection). Separately, `turnout flags set` through the CLI,
timed from before the process starts, end to end.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time

from bench.common import markdown_table, spread, table
from bench.servers import ROOT, Server, clean_env

ID = "B5"
WORKERS = 4
MODES = ("shadow", "dualwrite", "local")
MEDIAN_TARGET, MAX_TARGET = 1.0, 2.0
LIMIT = 5.0


def _seen(port: int) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz", headers={"Connection": "close"})
        body = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    return body["pid"], body["flags"]["modes"]["runs"]


def _wait_all(port: int, pids: set[int], mode: str, started: float) -> tuple[float, int]:
    lagging, probes = set(pids), 0
    while lagging and time.perf_counter() - started < LIMIT:  # bounded
        pid, served = _seen(port)
        probes += 1
        if served == mode:
            lagging.discard(pid)
    if lagging:
        return float("inf"), probes
    return time.perf_counter() - started, probes


def run(ctx) -> dict:
    from monolith.wiring import FEATURES
    from shims.flags.store import SqlFlagStore

    setup = ctx.setup()
    changes, cli_changes = (4, 2) if ctx.quick else (9, 3)
    env = clean_env(TURNOUT_RUN_DIR=setup.run_dir)
    store = SqlFlagStore.from_url(f"sqlite:///{setup.run_dir / 'flags.db'}", FEATURES)
    direct, cli, cli_process = [], [], []
    try:
        monolith = setup.start(Server("b5-monolith", "monolith.wsgi:app", env,
                                      setup.run_dir / "logs", workers=WORKERS))
        pids = set(monolith.worker_pids())
        for i in range(changes + cli_changes):
            mode = MODES[i % len(MODES)]
            time.sleep(0.3 + 0.137 * (i % 4))  # vary the phase against the 0.25 s refresh
            started = time.perf_counter()
            if i < changes:
                store.set("runs", mode, actor="bench")
                elapsed, probes = _wait_all(monolith.port, pids, mode, started)
                direct.append({"mode": mode, "seconds": elapsed, "probes": probes})
            else:
                subprocess.run([sys.executable, "-m", "scripts.cli", "flags", "set", "runs", mode,
                                "--actor", "bench"], cwd=ROOT, env=env, check=True,
                               capture_output=True, timeout=60)
                cli_process.append(time.perf_counter() - started)
                elapsed, probes = _wait_all(monolith.port, pids, mode, started)
                cli.append({"mode": mode, "seconds": elapsed, "probes": probes})
    finally:
        store.engine.dispose()
        setup.stop_all()
    seconds = spread([d["seconds"] for d in direct])
    cli_seconds = spread([d["seconds"] for d in cli])
    passed = seconds["median"] <= MEDIAN_TARGET and seconds["max"] <= MAX_TARGET
    result = {
        "id": ID, "title": "flag change reaches every worker",
        "method": f"{changes} changes via SqlFlagStore.set + {cli_changes} via the CLI; "
                  f"{WORKERS} gevent workers on CPU 0; /healthz polled over new connections",
        "direct": direct, "cli": cli, "propagation_s": seconds, "cli_seconds": cli_seconds,
        "cli_process_seconds": spread(cli_process),
        "refresh_interval_s": 0.25, "ratio": None,
        "baseline_desc": "-",
        "measured": f"median {seconds['median']:.2f} s, max {seconds['max']:.2f} s "
                    f"(CLI end to end: median {cli_seconds['median']:.2f} s)",
        "target": f"median <= {MEDIAN_TARGET:g} s, max <= {MAX_TARGET:g} s",
        "pass": passed,
    }
    result["table"] = render(result)
    return result


HEADER = ["path", "n", "median s", "min s", "max s"]


def _rows(r: dict) -> list[list[str]]:
    out = []
    for label, key in (("SqlFlagStore.set -> all 4 workers", "propagation_s"),
                       ("`turnout flags set` (CLI) -> all 4 workers", "cli_seconds"),
                       ("  of which the CLI process itself", "cli_process_seconds")):
        s = r[key]
        out.append([label, str(s["n"]), f"{s['median']:.3f}", f"{s['min']:.3f}",
                    f"{s['max']:.3f}"])
    return out


def render(r: dict) -> str:
    return "\n".join([table(f"B5 ({r['method']})", HEADER, _rows(r)),
                      f"target {r['target']}: {'PASS' if r['pass'] else 'FAIL'}"])


def markdown(r: dict) -> str:
    return markdown_table(HEADER, _rows(r))


