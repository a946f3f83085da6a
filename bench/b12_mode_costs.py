"""B12: what each stage of the runs feature costs, per request, for a read and a write.

CPU per request in the monolith and in the data service, rps and latency, for a public read
and a public write, in local, shadow, dualwrite, canary 50% and remote.

As B10: the monolith (bench.app) and the data service, one gevent worker each on CPU 0, the
load generator on CPU 1, 8 keep-alive connections, API tokens. The read is
`GET /api/runs?year=2024&month=3`; the write `POST /api/runs`, every body a different run.
The stage order alternates round by round, and so does the order of the two workloads in a
stage. CPU is each server's worker threads' on-CPU time per request served
(bench.common.cpu_seconds).

An open loop at a fixed rate per workload (RATES), below what the slowest stage can serve,
not a closed loop: a saturated worker is never idle, and a shadow, which waits for an idle
loop and never delays a primary, is then dropped as `skipped_busy`, so a closed loop's shadow
row priced a dropped shadow. At RATES every stage has idle time, as in production below
saturation; latency counts from the scheduled send (bench/loadgen.py). Each run is followed by
SETTLE seconds, inside the CPU window, so the shadows of its last reads run and are paid for.
The share of shadowed reads compared is in the table: the shadow row means what it says only
if most of them ran (MIN_COMPARED), and a stage that fell behind its rate (MIN_KEPT_UP) was
saturated after all.

A canary is sticky per runner (shims/canary.py: a hash of the user id), so one runner would
send all of its traffic to one side, and which side would change with every run's random
ids. So there are two readers and two writers, one of each on each side of the 50% canary,
and the load alternates between them: a canary request is half local, half remote, and every
stage sees the same users. Writes go to runners of their own, in another month, so the
readers' months (10 runs each) stay the size they were.

Flags are set straight in the store, without `turnout flags` (shims/stages.py), so what a
stage move drains before and after the flag change is waited for here instead: each stage's
measurement starts when the outboxes it mirrors from are empty (their wait is reported), and
a stage pays only for its own writes.

No target: B12 is a table, not a gate. It passes when every stage and workload was measured,
no request failed or answered other than 2xx, and the table means what it says: every run
served at least MIN_KEPT_UP of its rate, and every shadow run compared at least MIN_COMPARED
of its shadows.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from dataclasses import dataclass

import requests

from bench.common import (BENCH_MONTH, BENCH_PASSWORD, BENCH_USER, RUNS_IN_MONTH,
                          copy_to_dataservice, cpu_seconds, markdown_table, med_range,
                          set_flag, spread, table)
from bench.loadgen import run_load
from bench.servers import Server

ID = "B12"
CANARY_PERCENT = 50.0
STAGES = ("local", "shadow", "dualwrite", "canary", "remote")
WORKLOADS = ("read", "write")
WRITE_MONTH = (2023, 1)  # not the readers' month: writes never grow a read's answer
WRITE_BODIES = 1500  # per writer: more than a measured run sends, so no body repeats
MIRROR_WAIT = 60.0  # seconds a stage may take to drain its outboxes before it is measured
# Requests per second offered, about half of what the slowest stage served in a closed loop on
# this 2-core machine at 09:40 UTC (B12 --quick, main 8bb45de): reads remote ~138 rps (and
# shadow, with its shadows run, ~1e6 / (3.6 ms local + ~3 ms shadow) ~ 150), writes
# canary ~40 rps. Both servers share CPU 0, so half leaves room for other load on it.
RATES = {"read": 70.0, "write": 25.0}
SETTLE = 0.5  # seconds after a run, CPU still counted: the last reads' shadows run (~10 ms)
IDLE_PROBE = 2.0  # seconds of no load per stage: what the servers spend idle, per second
MIN_COMPARED = 0.90  # of the shadow stage's reads, the share whose shadow was compared
MIN_KEPT_UP = 0.95  # of the offered rate, the least a stage must serve to count as unsaturated
COUNTERS = ("turnout_shadow_comparisons_total", "turnout_mirror_writes_total",
            "turnout_fallbacks_total")


@dataclass(frozen=True)
class Runner:
    email: str
    user_id: int
    canary_side: str  # where a 50% canary sends this runner: "local" or "remote"


def run(ctx) -> dict:
    setup = ctx.setup()
    rounds, duration = (2, 1.5) if ctx.quick else (5, 4.0)
    readers, writers = add_runners(setup)
    results = {stage: {w: [] for w in WORKLOADS} for stage in STAGES}
    waits: dict[str, list[float]] = {stage: [] for stage in STAGES}
    outboxes = Outboxes(setup.run_dir)
    try:
        data = setup.start(Server("b12-dataservice", "extracted.dataservice.wsgi:app",
                                  setup.dataservice_env(), setup.run_dir / "logs"))
        monolith = setup.start(Server("b12-monolith", "bench.app:app",
                                      setup.monolith_env(data.url), setup.run_dir / "logs"))
        workloads = {"read": read_requests(monolith.url, readers),
                     "write": write_requests(monolith.url, writers)}
        groups = {"monolith": monolith.worker_pids(), "dataservice": data.worker_pids()}
        for i in range(rounds):
            for stage in (STAGES if i % 2 == 0 else tuple(reversed(STAGES))):
                waits[stage].append(enter_stage(setup.run_dir, stage, outboxes))
                for workload in (WORKLOADS if i % 2 == 0 else tuple(reversed(WORKLOADS))):
                    before = counters(monolith.url)
                    result = open_loop({"port": monolith.port, "requests": workloads[workload],
                                        "concurrency": 8, "rate": RATES[workload],
                                        "duration": duration, "warmup": 0.5, "timeout": 10},
                                       groups)
                    # Read after SETTLE, as the CPU is: a shadow not counted by now was
                    # still waiting, and is reported as such.
                    result["counters"] = subtract(counters(monolith.url), before)
                    results[stage][workload].append(result)
        idle = {stage: idle_in(setup.run_dir, stage, outboxes, groups) for stage in STAGES}
    finally:
        setup.stop_all()
        outboxes.close()
    return summarize(results, waits, rounds, duration, readers + writers, idle)


def open_loop(spec: dict, groups: dict[str, list[int]]) -> dict:
    """One load, then SETTLE seconds, with each group's CPU over both per request served
    (warm-up included). bench.common.load stops the CPU clock when the last answer is in,
    before the shadows of the last reads have run."""
    before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    result = run_load(spec)
    time.sleep(SETTLE)
    served = max(result["all_completed"], 1)
    for name, pids in groups.items():
        result[f"{name}_cpu_us_per_req"] = round(
            (cpu_seconds(pids) - before[name]) * 1e6 / served, 1)
    return result


def idle_in(run_dir, stage: str, outboxes: Outboxes,
            groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU µs per second each group spends in `stage` with no request (its background
    greenlets), after the rounds, the servers warm: at a fixed rate it lands on every request,
    `idle / rate` µs each. Read from the scheduler's ns clock: psutil's 10 ms ticks would
    round a probe of a few 10 ms to a tick or two."""
    enter_stage(run_dir, stage, outboxes)
    before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    time.sleep(IDLE_PROBE)
    return {name: round((cpu_seconds(pids) - before[name]) * 1e6 / IDLE_PROBE, 1)
            for name, pids in groups.items()}


# ---------------------------------------------------------------- runners and requests

def add_runners(setup) -> tuple[list[Runner], list[Runner]]:
    """The bench user and a second reader on the other side of the canary (the same 10
    runs in BENCH_MONTH), and a writer on each side; in both databases before either
    server starts. Runners whose random id lands on a side already taken stay unused."""
    from monolith.accounts.service import LocalAccounts
    from monolith.db import make_engine, make_sessions
    from monolith.runs.service import LocalRuns

    engine = make_engine(f"sqlite:///{setup.run_dir / 'monolith.db'}")
    sessions = make_sessions(engine)
    accounts = LocalAccounts(sessions, hash_method="pbkdf2:sha256:1000")
    bench = Runner(BENCH_USER, setup.user_id, canary_side(setup.user_id))
    try:
        other = sign_up_on(accounts, "reader", other_side(bench.canary_side))
        add_month_of_runs(LocalRuns(sessions), other.user_id)
        writers = [sign_up_on(accounts, "writer", side) for side in ("local", "remote")]
    finally:
        engine.dispose()
    copy_to_dataservice(setup.run_dir)  # the new users and runs, ids and all
    return [bench, other], writers


def canary_side(user_id: int) -> str:
    from shims.canary import goes_remote

    return "remote" if goes_remote("runs", user_id, CANARY_PERCENT) else "local"


def other_side(side: str) -> str:
    return "local" if side == "remote" else "remote"


def sign_up_on(accounts, role: str, side: str) -> Runner:
    from contracts.accounts import Profile, SignUp

    for n in range(1, 65):  # each try lands on `side` with odds 1/2
        email = f"b12-{role}-{side}-{n}@runnerly.dev"
        user = accounts.sign_up(SignUp(email=email, password=BENCH_PASSWORD,
                                       profile=Profile(first_name="B12", last_name=role)))
        if canary_side(user.id) == side:
            return Runner(email, user.id, side)
    raise RuntimeError(f"no {role} landed on the {side} side in 64 sign-ups")


def add_month_of_runs(runs, user_id: int) -> None:
    """The runs bench.common.seed_database gives the bench user: equal reads on both sides."""
    from contracts.runs import RunInput

    year, month = BENCH_MONTH
    for day in range(1, RUNS_IN_MONTH + 1):
        runs.add_run(user_id, RunInput(name=f"Run {day}", distance=5000.0 + day * 100,
                                       start_date=dt.datetime(year, month, day, 7, 0),
                                       elapsed_time=1500 + day * 30, average_heartrate=150.0,
                                       total_elevation_gain=20.0))


def api_token(url: str, email: str) -> str:
    credentials = base64.b64encode(f"{email}:{BENCH_PASSWORD}".encode()).decode()
    answer = requests.post(f"{url}/api/tokens", timeout=10,
                           headers={"Authorization": f"Basic {credentials}"})
    answer.raise_for_status()
    return answer.json()["token"]


def read_requests(url: str, readers: list[Runner]) -> list[dict]:
    year, month = BENCH_MONTH
    return [{"path": f"/api/runs?year={year}&month={month}",
             "headers": {"Authorization": f"Bearer {api_token(url, r.email)}"}}
            for r in readers]


def write_requests(url: str, writers: list[Runner]) -> list[dict]:
    """Distinct runs, the writers taking turns (the load generator sends them in order)."""
    headers = [{"Authorization": f"Bearer {api_token(url, w.email)}",
                "Content-Type": "application/json"} for w in writers]
    start = dt.datetime(*WRITE_MONTH, 1, 6, 0)
    return [{"method": "POST", "path": "/api/runs", "headers": headers[i % len(headers)],
             "body": json.dumps({"name": f"B12 run {i}", "distance": 4000.0 + i,
                                 "start_date": (start + dt.timedelta(minutes=i)).isoformat(),
                                 "elapsed_time": 1200 + i % 600})}
            for i in range(WRITE_BODIES * len(writers))]


# ---------------------------------------------------------------- stages and mirrors

class Outboxes:
    """Both sides' outboxes, read from their databases: what a stage still has to mirror."""

    def __init__(self, run_dir):
        from monolith.db import make_engine
        from monolith.runs.sync import LocalRunsSync

        self._engines = {side: make_engine(f"sqlite:///{run_dir / name}") for side, name in
                         (("local", "monolith.db"), ("remote", "dataservice.db"))}
        self._syncs = {side: LocalRunsSync(e) for side, e in self._engines.items()}

    def waiting_for(self, target: str) -> int:
        """Changes of the other side not yet mirrored to `target`."""
        return self._syncs[other_side(target)].backlog().entries

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()


def enter_stage(run_dir, stage: str, outboxes: Outboxes) -> float:
    """Set the flag, let the worker see it, and wait until the outboxes the stage mirrors
    from are empty (what `turnout flags set` drains around a move). Returns the wait."""
    from shims.mirror import active_targets

    set_flag(run_dir, "runs", stage, CANARY_PERCENT if stage == "canary" else None)
    time.sleep(0.6)  # > FLAGS_REFRESH: the worker serves `stage`
    started = time.monotonic()
    while any(outboxes.waiting_for(t) for t in active_targets(stage)):
        if time.monotonic() - started > MIRROR_WAIT:
            raise RuntimeError(f"{stage}: the outboxes did not drain in {MIRROR_WAIT:g}s")
        time.sleep(0.1)
    return time.monotonic() - started


def counters(url: str) -> dict[str, float]:
    """The monolith's shadow, mirror and fallback counters, by their labels."""
    text = requests.get(url + "/metrics", timeout=5).text
    found: dict[str, float] = {}
    for name in COUNTERS:
        for m in re.finditer(rf'^{name}\{{([^}}]*)\}} ([0-9.e+-]+)$', text, re.MULTILINE):
            key = counter_key(name, dict(re.findall(r'(\w+)="([^"]*)"', m.group(1))))
            found[key] = found.get(key, 0.0) + float(m.group(2))
    return found


def counter_key(name: str, labels: dict[str, str]) -> str:
    """`shadow_comparisons:runs.list_runs:match`, `mirror_writes:remote:ok`,
    `fallbacks:breaker_open`."""
    short = name.removeprefix("turnout_").removesuffix("_total")
    if short == "shadow_comparisons":
        return f"{short}:{labels.get('method')}:{labels.get('result')}"
    if short == "mirror_writes":
        return f"{short}:{labels.get('target')}:{labels.get('outcome')}"
    return f"{short}:{labels.get('reason')}"


def subtract(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


# ---------------------------------------------------------------- summary

def summarize(results: dict, waits: dict, rounds: int, duration: float,
              runners: list[Runner], idle: dict[str, dict[str, float]]) -> dict:
    stages = {stage: {w: side(rs, RATES[w], shadowed=stage == "shadow" and w == "read")
                      for w, rs in by_workload.items()}
              for stage, by_workload in results.items()}
    for stage, by_workload in stages.items():
        for workload, s in by_workload.items():
            base = stages["local"][workload]["total_cpu_us_per_req"]["median"]
            total = s["total_cpu_us_per_req"]["median"]
            s["ratio"] = round(total / base, 3) if base and total is not None else None
            s["round_ratios"] = spread(round_ratios(results[stage][workload],
                                                    results["local"][workload]))
    every = [r for by_workload in results.values() for rs in by_workload.values() for r in rs]
    errors = sum(sum(r["errors"].values()) for r in every)
    non_2xx = sum(v for r in every for k, v in r["statuses"].items() if not k.startswith("2"))
    measured_all = all(len(rs) == rounds and all(r["completed"] for r in rs)
                       for by_workload in results.values() for rs in by_workload.values())
    kept_up = all(s["kept_up"]["min"] >= MIN_KEPT_UP
                  for by_workload in stages.values() for s in by_workload.values())
    compared = stages["shadow"]["read"]["compared_share"]["min"] or 0.0
    result = {
        "id": ID, "title": "cost per stage: CPU per request, rps, latency, read and write",
        "method": f"{rounds} rounds, stage order alternating, x {duration}s per stage and "
                  "workload, open loop at " + " and ".join(
                      f"{RATES[w]:g} req/s for {w}s" for w in WORKLOADS) +
                  " over 8 keep-alive connections, API tokens of 2 readers / 2 writers "
                  f"(one each side of canary {CANARY_PERCENT:g}%); monolith and data service "
                  "1 gevent worker each on CPU 0; client on CPU 1",
        "rates": RATES, "idle_cpu_us_per_s": idle,
        "stages": stages, "errors": errors, "non_2xx": non_2xx,
        "mirror_wait_s": {stage: spread(w) for stage, w in waits.items()},
        "runners": [vars(r) for r in runners],
        "ratio": None,
        "target": f"none: a table (pass = every stage measured, all 2xx, every run served "
                  f">= {MIN_KEPT_UP:.0%} of its rate, >= {MIN_COMPARED:.0%} of shadows "
                  "compared in every shadow run)",
        "pass": measured_all and errors == 0 and non_2xx == 0 and kept_up
        and compared >= MIN_COMPARED,
        "measured": "total CPU x local: " + "; ".join(
            f"{w} " + " ".join(f"{stage} {fmt_ratio(stages[stage][w]['ratio'])}"
                               for stage in STAGES[1:]) for w in WORKLOADS)
        + f"; shadows compared {stages['shadow']['read']['compared_share']['median']:.1%}",
        "baseline_desc": "local: " + ", ".join(
            f"{w} {stages['local'][w]['total_cpu_us_per_req']['median']:.0f} µs"
            for w in WORKLOADS),
        "raw": results,
    }
    result["rows"] = _rows(result)
    result["table"] = "\n".join([table(f"{ID}: {result['title']} ({result['method']})",
                                       HEADER, result["rows"]), *_notes(result)])
    return result


def total_cpu(r: dict) -> float:
    return r["monolith_cpu_us_per_req"] + r["dataservice_cpu_us_per_req"]


def round_ratios(rs: list[dict], local: list[dict]) -> list[float]:
    """Each round's total CPU against local's of the same round."""
    return [total_cpu(r) / total_cpu(b) for r, b in zip(rs, local, strict=True) if total_cpu(b)]


def side(rs: list[dict], rate: float, shadowed: bool) -> dict:
    counted = {}
    for r in rs:
        for key, value in r["counters"].items():
            counted[key] = counted.get(key, 0.0) + value
    return {"rps": spread([r["rps"] for r in rs]),
            "kept_up": spread([r["rps"] / rate for r in rs]),
            "p50_ms": spread([r["p50_ms"] for r in rs]),
            "p99_ms": spread([r["p99_ms"] for r in rs]),
            "monolith_cpu_us_per_req": spread([r["monolith_cpu_us_per_req"] for r in rs]),
            "dataservice_cpu_us_per_req": spread([r["dataservice_cpu_us_per_req"] for r in rs]),
            "total_cpu_us_per_req": spread([total_cpu(r) for r in rs]),
            "compared_share": spread([compared_share(r) for r in rs] if shadowed else []),
            "served": sum(r["all_completed"] for r in rs),
            "errors": sum(sum(r["errors"].values()) for r in rs),
            "non_2xx": sum(v for r in rs for k, v in r["statuses"].items()
                           if not k.startswith("2")),
            "counters": counted}


def compared_share(r: dict) -> float:
    """Of one run's shadows (one per shadowed method per read served, warm-up included),
    the share compared, match or mismatch: the rest were dropped or still waiting."""
    methods = shadow_outcomes(r["counters"])
    shadows = r["all_completed"] * max(len(methods), 1)
    compared = sum(o.get("match", 0) + o.get("mismatch", 0) for o in methods.values())
    return compared / shadows if shadows else 0.0


def fmt_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def fmt_share(s: dict) -> str:
    """`-` where nothing is shadowed (canary routes, it does not shadow)."""
    if s["median"] is None:
        return "-"
    return f"{s['median']:.1%} [{s['min']:.1%}-{s['max']:.1%}]"


HEADER = ["stage", "workload", "offered rps", "rps", "p50 ms", "p99 ms",
          "monolith CPU µs/req", "data service CPU µs/req", "total CPU µs/req",
          "total x local", "shadows compared"]


def _rows(result: dict) -> list[list[str]]:
    rows = []
    for workload in WORKLOADS:
        for stage in STAGES:
            s = result["stages"][stage][workload]
            rows.append([f"canary {CANARY_PERCENT:g}%" if stage == "canary" else stage,
                         workload, f"{RATES[workload]:g}", med_range(s["rps"], 0),
                         med_range(s["p50_ms"]), med_range(s["p99_ms"]),
                         med_range(s["monolith_cpu_us_per_req"], 0),
                         med_range(s["dataservice_cpu_us_per_req"], 0),
                         med_range(s["total_cpu_us_per_req"], 0),
                         "baseline" if stage == "local" else fmt_ratio(s["ratio"]),
                         fmt_share(s["compared_share"])])
    return rows


def _notes(result: dict) -> list[str]:
    """What the counters saw: shadow outcomes of the shadow reads, mirrored writes and
    fallbacks per stage, the drain before each stage, and the failures."""
    stages = result["stages"]
    lines = []
    shadow = stages["shadow"]["read"]
    lines.append(f"shadow, {shadow['served']} reads (warm-up included): " + (
        "; ".join(_shadowed(method, outcomes, shadow["served"])
                  for method, outcomes in shadow_outcomes(shadow["counters"]).items())
        or "no shadow counted"))
    for stage in STAGES:
        mirrored = {k.split(":", 1)[1]: v for k, v in stages[stage]["write"]["counters"].items()
                    if k.startswith("mirror_writes:")}
        fallbacks = sum(v for w in WORKLOADS for k, v in stages[stage][w]["counters"].items()
                        if k.startswith("fallbacks:"))
        lines.append(f"{stage}: {stages[stage]['write']['served']} writes, mirrored "
                     + (", ".join(f"{k} {v:.0f}" for k, v in sorted(mirrored.items()))
                        or "none") + f"; fallbacks {fallbacks:.0f}; drained "
                     f"{result['mirror_wait_s'][stage]['max']:.1f}s at most before measuring")
    behind = [f"{stage} {w} {s['kept_up']['min']:.0%}" for stage, by_w in stages.items()
              for w, s in by_w.items() if s["kept_up"]["min"] < MIN_KEPT_UP]
    lines.append("every run served its offered rate" if not behind else
                 "fell behind the offered rate (worst run): " + ", ".join(behind))
    lines.append(f"idle, no load ({IDLE_PROBE:g}s per stage after the rounds), monolith + "
                 "data service µs/s and its share of a request at the offered rates: "
                 + "; ".join(_idle(stage, by_group)
                             for stage, by_group in result["idle_cpu_us_per_s"].items()))
    lines.append(f"errors {result['errors']}, non-2xx answers {result['non_2xx']}")
    return lines


def _idle(stage: str, by_group: dict[str, float]) -> str:
    total = sum(by_group.values())
    return (f"{stage} " + " + ".join(f"{v:,.0f}" for v in by_group.values())
            + " = " + ", ".join(f"{total / RATES[w]:,.0f} µs per {w}" for w in WORKLOADS))


def shadow_outcomes(counted: dict[str, float]) -> dict[str, dict[str, float]]:
    """{method: {outcome: count}} from the shadow_comparisons counters."""
    methods: dict[str, dict[str, float]] = {}
    for key, value in counted.items():
        name, _, rest = key.partition(":")
        if name == "shadow_comparisons":
            method, _, outcome = rest.rpartition(":")
            methods.setdefault(method, {})[outcome] = value
    return methods


def _shadowed(method: str, outcomes: dict[str, float], calls: int) -> str:
    """One shadow per call of the method (one per read); those not counted SETTLE seconds
    after the run were still waiting for an idle loop, and ran or were dropped after it."""
    compared = outcomes.get("match", 0) + outcomes.get("mismatch", 0)
    waiting = calls - sum(outcomes.values())
    return (f"{method} compared {compared:.0f} ({compared / max(calls, 1):.1%}): "
            + ", ".join(f"{k} {v:.0f}" for k, v in sorted(outcomes.items()))
            + f", still waiting {SETTLE:g}s after a run {waiting:.0f}")


def markdown(result: dict) -> str:
    return markdown_table(HEADER, result["rows"]) + "\n\n" + "\n".join(
        f"- {line}" for line in _notes(result))
