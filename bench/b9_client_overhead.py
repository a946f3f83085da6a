"""B9: the monolith's CPU per remote call through the kit's client, against a raw
`http.client` keep-alive call that sends and reads the same bytes.

One client process (gevent-patched, as a monolith worker is) pinned to CPU 0 calls the real
data service (1 gevent worker) pinned to CPU 1. The subject is `RemoteRuns.list_runs` built
as the monolith builds it (`transport_for` and `client_options` over the monolith's settings):
a dealer token from `ClientCredentials` (fetched once from an in-process stand-in dealer, then
cached), the request's deadline in `X-Turnout-Deadline-Ms`, a `traceparent` from an unsampled
server span (the monolith's default without an exporter), and the ETag read cache, so a
repeated read comes back a bodyless 304. The baseline sends the very bytes the kit sent
(captured from the kit's connection after warm-up: same request line, headers and body) over
one `http.client.HTTPConnection` and reads the answer. Both alternate sample by sample in the
same process, in small batches taken in turn (so both see the same load on a shared machine);
each sample is the process's CPU time (`time.process_time`) over a fixed number of calls,
divided by it (the client process is bench/b9_client.py). A second, informational
pair does the same with the read cache off: every call then reads and decodes the 200 with its
ten runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench.common import markdown_table, med_range, table
from bench.servers import ROOT, Server

ID = "B9"
TARGET = 1.5
CLIENT_CPU, SERVER_CPU = 0, 1


def run(ctx) -> dict:
    setup = ctx.setup()
    try:
        data = setup.start(Server("b9-dataservice", "extracted.dataservice.wsgi:app",
                                  setup.dataservice_env(), setup.run_dir / "logs",
                                  cpu=SERVER_CPU))
        measured = client_in_subprocess(data.url, setup.user_id, ctx.tokens.token, ctx.quick)
    finally:
        setup.stop_all()
    cached, uncached = measured["cached"], measured["uncached"]
    ratio = cached["kit_us"]["median"] / cached["raw_us"]["median"]
    result = {
        "id": ID, "title": "client CPU per remote call: kit vs raw http.client",
        "method": f"{measured['samples']} samples x {measured['calls']} calls each side "
                  f"(in {measured['rounds']} alternating batches; cache off: a quarter), one "
                  f"gevent client process on CPU {CLIENT_CPU}, data service (1 gevent worker) "
                  f"on CPU {SERVER_CPU}; client process CPU time per call",
        "cached": cached, "uncached": uncached, "ratio": round(ratio, 4),
        "uncached_ratio": round(uncached["kit_us"]["median"] / uncached["raw_us"]["median"], 4),
        "request_bytes": measured["request_bytes"], "status": measured["status"],
        "baseline_desc": f"raw http.client, {cached['raw_us']['median']:.0f} us/call",
        "measured": f"kit {cached['kit_us']['median']:.0f} us/call ({ratio:.2f}x)",
        "target": f"client CPU <= {TARGET} x baseline", "pass": ratio <= TARGET,
    }
    result["table"] = render(result)
    return result


def _rows(r: dict) -> list[list[str]]:
    rows = []
    for label, pair in (("read cache on (production): 304", r["cached"]),
                        ("read cache off: 200, ten runs decoded", r["uncached"])):
        rows.append([label, med_range(pair["raw_us"]), med_range(pair["kit_us"]),
                     med_range(pair["pair_ratios"], 2)])
    return rows


HEADER = ["call", "raw http.client us/call", "kit us/call", "kit / raw"]


def render(r: dict) -> str:
    return "\n".join([table(f"B9 ({r['method']})", HEADER, _rows(r)),
                      f"ratio {r['ratio']:.3f}, target <= {TARGET}: "
                      f"{'PASS' if r['pass'] else 'FAIL'} (cache off: {r['uncached_ratio']:.3f}, "
                      f"informational); request {r['request_bytes']} bytes"])


def markdown(r: dict) -> str:
    return markdown_table([h.replace("us/call", "µs/call") for h in HEADER], _rows(r)) + \
        (f"\n\nRatio {r['ratio']:.3f} with the read cache as in production (target ≤ {TARGET}); "
         f"{r['uncached_ratio']:.3f} with it off. The kit's request is {r['request_bytes']} "
         f"bytes.")


def client_in_subprocess(url: str, user_id: int, token: str, quick: bool) -> dict:
    command = [sys.executable, "-m", "bench.b9_client", url, str(user_id),
               "quick" if quick else "full"]
    if (os.cpu_count() or 1) > CLIENT_CPU:
        command = ["taskset", "-c", str(CLIENT_CPU), *command]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TURNOUT_", "OTEL_"))}
    env.update(PYTHONPATH=str(ROOT), BENCH_TOKEN=token)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"B9 client failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
