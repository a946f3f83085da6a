"""B5: time from a flag change to every worker of a 4-worker monolith serving the new mode.

The real monolith (monolith.wsgi:app) under gunicorn with 4 gevent workers on CPU 0. The change is
written with SqlFlagStore.set in this process, against the same flags.db the CLI uses (no CLI
start-up in the figure); the clock starts just before the write. Then each worker's /healthz
(which reports its pid and the mode it serves) is polled over a kept-alive connection that
worker accepted, until every worker answers with the new mode. One connection per worker, not
new connections: the kernel hands a new connection to whichever worker it likes, and measured
here it left one of four workers without any for up to 4 s, which timed the kernel, not the
flags. Separately, `turnout flags set` through the CLI, timed from before the process starts,
end to end.
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


KEEP_ALIVE_S = 30  # gunicorn's default (2 s) would close a line between two changes


def _ask(connection: http.client.HTTPConnection) -> tuple[int, str]:
    connection.request("GET", "/healthz")
    body = json.loads(connection.getresponse().read())
    return body["pid"], body["flags"]["modes"]["runs"]


def _line_to_every_worker(port: int, pids: set[int]) -> dict[int, http.client.HTTPConnection]:
    """Opens connections until each worker holds one (bounded); closes the spares."""
    lines: dict[int, http.client.HTTPConnection] = {}
    deadline = time.monotonic() + 30
    while set(lines) != pids and time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        pid, _ = _ask(connection)
        if pid in lines:
            connection.close()
        else:
            lines[pid] = connection
    if set(lines) != pids:
        raise RuntimeError(f"no connection reached workers {pids - set(lines)} within 30 s")
    return lines


def _serve_traffic(lines: dict[int, http.client.HTTPConnection], seconds: float) -> None:
    """Keeps every worker answering until the next change, as under real traffic: each one's
    flag cache then checks the store on its own 0.25 s clock, and a change lands at a random
    point of it (an idle worker would check on its very next request, which flatters)."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        for connection in lines.values():
            _ask(connection)


def _wait_all(lines: dict[int, http.client.HTTPConnection], mode: str,
              started: float) -> tuple[float, int]:
    lagging, probes = set(lines), 0
    while lagging and time.perf_counter() - started < LIMIT:  # bounded
        for pid in sorted(lagging):
            answered_by, served = _ask(lines[pid])
            probes += 1
            assert answered_by == pid, "a kept-alive connection stays with its worker"
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
    lines: dict[int, http.client.HTTPConnection] = {}
    try:
        monolith = setup.start(Server("b5-monolith", "monolith.wsgi:app", env,
                                      setup.run_dir / "logs", workers=WORKERS,
                                      extra=("--keep-alive", str(KEEP_ALIVE_S))))
        lines = _line_to_every_worker(monolith.port, set(monolith.worker_pids()))
        for i in range(changes + cli_changes):
            mode = MODES[i % len(MODES)]
            _serve_traffic(lines, 0.3 + 0.137 * (i % 4))
            started = time.perf_counter()
            if i < changes:
                store.set("runs", mode, actor="bench")
                elapsed, probes = _wait_all(lines, mode, started)
                direct.append({"mode": mode, "seconds": elapsed, "probes": probes})
            else:
                subprocess.run([sys.executable, "-m", "shims.cli", "flags", "set", "runs", mode,
                                "--actor", "bench"], cwd=ROOT, env=env, check=True,
                               capture_output=True, timeout=60)
                cli_process.append(time.perf_counter() - started)
                elapsed, probes = _wait_all(lines, mode, started)
                cli.append({"mode": mode, "seconds": elapsed, "probes": probes})
    finally:
        for connection in lines.values():
            connection.close()
        store.engine.dispose()
        setup.stop_all()
    seconds = spread([d["seconds"] for d in direct])
    cli_seconds = spread([d["seconds"] for d in cli])
    passed = seconds["median"] <= MEDIAN_TARGET and seconds["max"] <= MAX_TARGET
    result = {
        "id": ID, "title": "flag change reaches every worker",
        "method": f"{changes} changes via SqlFlagStore.set + {cli_changes} via the CLI; "
                  f"{WORKERS} gevent workers on CPU 0; each worker's /healthz polled over "
                  "its own kept-alive connection",
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


