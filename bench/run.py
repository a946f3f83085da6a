"""Run the Turnout benchmarks: `bench/run [--quick] [--only B1,B3] [--markdown FILE]`.

Each benchmark prints its table and writes bench/results/<id>.json; at the end
bench/results/summary.json and a summary table. Every figure is a ratio against a baseline
measured in the same run, on loopback, servers pinned to CPU 0 and the load generator
(bench/loadgen.py, a gevent raw-socket client) to CPU 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.common import RESULTS, make_setup, make_tokens, markdown_table, table

BENCHMARKS = {
    "B1": "bench.b1_local_overhead",
    "B2": "bench.b2_remote_overhead",
    "B3": "bench.b3_concurrency",
    "B4": "bench.b4_shadow",
    "B5": "bench.b5_flag_propagation",
    "B6": "bench.b6_memory",
    "B7": "bench.b7_mirror_lag",
    "B8": "bench.b8_service_overhead",
    "B9": "bench.b9_client_overhead",
    "B10": "bench.b10_extraction_cost",
    "B11": "bench.b11_login_storm",
    "B12": "bench.b12_mode_costs",
}


class Context:
    def __init__(self, quick: bool, workdir: Path):
        self.quick = quick
        self.workdir = workdir
        self.tokens = make_tokens(workdir)
        self._count = 0

    def setup(self):
        """A fresh run directory with seeded databases for one benchmark."""
        self._count += 1
        return make_setup(self.workdir / f"setup{self._count}", self.tokens)


def machine() -> dict:
    import importlib.metadata as md

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory = next(line.split(":", 1)[1].strip() for line in
                      Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
    except OSError:
        memory = "?"
    versions = {}
    for name in ("gunicorn", "gevent", "Flask", "Werkzeug", "requests", "SQLAlchemy",
                 "prometheus_client", "psutil"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return {"nproc": os.cpu_count(), "affinity": sorted(os.sched_getaffinity(0)),
            "cpu_model": model, "memory": memory, "python": platform.python_version(),
            "platform": platform.platform(), "packages": versions}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs")
    parser.add_argument("--only", default="", help="comma-separated ids, e.g. B1,B3")
    parser.add_argument("--markdown", type=Path, help="also write the tables as Markdown here")
    args = parser.parse_args(argv)
    wanted = [i.strip().upper() for i in args.only.split(",") if i.strip()] or list(BENCHMARKS)
    unknown = [i for i in wanted if i not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from "
                     f"{', '.join(BENCHMARKS)}")
    if (os.cpu_count() or 1) < 2:
        print("warning: one CPU only; the load generator and servers share it", file=sys.stderr)
    RESULTS.mkdir(exist_ok=True)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="turnout-bench-"))
    summary = {"started": dt.datetime.now().isoformat(timespec="seconds"),
               "command": " ".join(["bench/run", *(argv if argv is not None else sys.argv[1:])]),
               "quick": args.quick, "machine": machine(),
               "load_tool": "bench/loadgen.py: gevent raw-socket HTTP/1.1 client (wrk is not "
                            "installed; requests would add ~0.8 ms client CPU per call)",
               "results": []}
    markdown_parts = []
    try:
        ctx = Context(args.quick, workdir)
        for ident in wanted:
            module = importlib.import_module(BENCHMARKS[ident])
            t0 = time.monotonic()
            load_before = os.getloadavg()
            print(f"\n=== {ident}: {module.__doc__.splitlines()[0]}", flush=True)
            try:
                result = module.run(ctx)
            except Exception as exc:  # one failed benchmark must not hide the others
                traceback.print_exc()
                result = {"id": ident, "pass": False, "error": repr(exc), "measured": "error",
                          "baseline_desc": "-", "ratio": None, "target": "-"}
            result["seconds"] = round(time.monotonic() - t0, 1)
            result["loadavg_before_after"] = [round(load_before[0], 2),
                                              round(os.getloadavg()[0], 2)]
            if "table" in result:
                print(result["table"], flush=True)
            print(f"({ident} took {result['seconds']:.0f}s; 1-min load average "
                  f"{result['loadavg_before_after'][0]} before, "
                  f"{result['loadavg_before_after'][1]} after)", flush=True)
            from bench.common import write_result

            write_result(result)
            summary["results"].append({k: result.get(k) for k in
                                       ("id", "title", "measured", "baseline_desc", "ratio",
                                        "target", "pass", "seconds", "error", "note",
                                        "loadavg_before_after")})
            if hasattr(module, "markdown") and "error" not in result:
                markdown_parts.append(f"### {ident}\n\n{module.markdown(result)}")
    finally:
        if any(r.get("error") for r in summary["results"]):
            print(f"a benchmark failed: its servers' logs stay in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    summary["total_seconds"] = round(time.monotonic() - started, 1)
    rows = [[r["id"], r.get("measured") or "-", r.get("baseline_desc") or "-",
             "-" if r.get("ratio") is None else f"{r['ratio']:.3f}", r.get("target") or "-",
             ("PASS" if r.get("pass") else "FAIL") + (" (partial)" if r.get("note") else "")]
            for r in summary["results"]]
    header = ["id", "measured", "baseline", "ratio", "target", "result"]
    print("\n" + table(f"Summary ({summary['total_seconds']:.0f}s total)", header, rows))
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nwrote {RESULTS}/summary.json and one <id>.json per benchmark")
    if args.markdown:
        args.markdown.write_text(markdown_table(header, rows) + "\n\n" +
                                 "\n\n".join(markdown_parts) + "\n")
    return 0 if all(r.get("pass") for r in summary["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
