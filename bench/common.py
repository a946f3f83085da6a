"""Shared pieces: statistics, tables, result files, and a seeded monolith + data service setup."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.servers import Server, clean_env

RESULTS = Path(__file__).resolve().parent / "results"
BENCH_USER = "bench@runnerly.dev"
BENCH_PASSWORD = "bench-password-1"  # nosec B105 - a throwaway benchmark account
BENCH_MONTH = (2024, 3)  # the month the bench user's runs are in
RUNS_IN_MONTH = 10
TOKEN_ISSUER = "turnout-tokendealer"
ALL_SCOPES = " ".join(f"{c}:{k}" for c in ("accounts", "runs", "sync", "strava", "reports")
                      for k in ("read", "write"))


# ---------------------------------------------------------------- statistics

def spread(values: list[float]) -> dict[str, Any]:
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0, "runs": []}
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else [ordered[0]] * 3
    return {"median": round(statistics.median(ordered), 4), "min": round(ordered[0], 4),
            "max": round(ordered[-1], 4), "iqr": [round(q[0], 4), round(q[2], 4)],
            "n": len(ordered), "runs": [round(v, 4) for v in values]}


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def med_range(s: dict, digits: int = 1) -> str:
    return f"{fmt(s['median'], digits)} [{fmt(s['min'], digits)}-{fmt(s['max'], digits)}]"


def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) for row in cells[1:]]
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [[fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                     ["| " + " | ".join(r) + " |" for r in cells])


def write_result(result: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{result['id']}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    return path


# ---------------------------------------------------------------- tokens

@dataclass
class Tokens:
    jwks_path: Path
    token: str

    @property
    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_tokens(directory: Path) -> Tokens:
    """A signing key made for this run, its JWKS file, and one long-lived dealer-style token
    for the data service (the same token for the router and for hand-written calls)."""
    import uuid

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    path = directory / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "bench", "alg": "RS256",
                                          "use": "sig"}]}))
    now = int(time.time())
    token = jwt.encode({"iss": TOKEN_ISSUER, "sub": "monolith", "aud": "dataservice",
                        "iat": now, "nbf": now, "exp": now + 6 * 3600,
                        "jti": str(uuid.uuid4()), "scope": ALL_SCOPES},
                       key, algorithm="RS256", headers={"kid": "bench"})
    return Tokens(jwks_path=path, token=token)


# ---------------------------------------------------------------- data

def seed_database(url: str) -> int:
    """The bench runner and RUNS_IN_MONTH runs in BENCH_MONTH. Returns the user id."""
    from monolith.accounts.service import LocalAccounts
    from monolith.db import create_schema, make_engine, make_sessions
    from monolith.runs.service import LocalRuns
    from contracts.accounts import Profile, SignUp
    from contracts.runs import RunInput

    engine = make_engine(url)
    create_schema(engine)
    sessions = make_sessions(engine)
    user = LocalAccounts(sessions, hash_method="pbkdf2:sha256:1000").sign_up(
        SignUp(email=BENCH_USER, password=BENCH_PASSWORD,
               profile=Profile(first_name="Bench", last_name="Runner")))
    runs = LocalRuns(sessions)
    year, month = BENCH_MONTH
    for day in range(1, RUNS_IN_MONTH + 1):
        runs.add_run(user.id, RunInput(name=f"Run {day}", distance=5000.0 + day * 100,
                                       start_date=dt.datetime(year, month, day, 7, 0),
                                       elapsed_time=1500 + day * 30, average_heartrate=150.0,
                                       total_elevation_gain=20.0))
    engine.dispose()
    return user.id


def copy_to_dataservice(run_dir: Path) -> None:
    """Copy every user and run, ids included, as `turnout data copy runs` would."""
    from monolith.db import create_schema, make_engine
    from monolith.runs.sync import LocalRunsSync
    from monolith.wiring import REGISTRY
    from shims.cli.data import copy
    from shims.mirror import Channel

    source = make_engine(f"sqlite:///{run_dir / 'monolith.db'}")
    target = make_engine(f"sqlite:///{run_dir / 'dataservice.db'}")
    create_schema(target)
    copy(Channel("runs", "remote", LocalRunsSync(source), LocalRunsSync(target)),
         REGISTRY["runs"].data.tables)
    source.dispose()
    target.dispose()


def set_flag(run_dir: Path, feature: str, mode: str, percent: float | None = None) -> None:
    from monolith.wiring import FEATURES
    from shims.flags.store import SqlFlagStore

    store = SqlFlagStore.from_url(f"sqlite:///{run_dir / 'flags.db'}", FEATURES)
    store.create_schema()
    store.set(feature, mode, percent, actor="bench")
    store.engine.dispose()


@dataclass
class Setup:
    """A run directory with seeded monolith and data service databases and a token."""

    root: Path
    run_dir: Path
    tokens: Tokens
    user_id: int
    servers: list[Server] = field(default_factory=list)

    def monolith_env(self, dataservice_url: str, **extra: str) -> dict[str, str]:
        return clean_env(TURNOUT_RUN_DIR=self.run_dir, TURNOUT_DATASERVICE_URL=dataservice_url,
                         TURNOUT_TOKEN_JWKS_URL=self.tokens.jwks_path,
                         TURNOUT_PASSWORD_HASH_METHOD="pbkdf2:sha256:1000",
                         BENCH_TOKEN=self.tokens.token, BENCH_USER_ID=self.user_id, **extra)

    def dataservice_env(self) -> dict[str, str]:
        return clean_env(TURNOUT_RUN_DIR=self.run_dir,
                         TURNOUT_TOKEN_JWKS_URL=self.tokens.jwks_path,
                         TURNOUT_PASSWORD_HASH_METHOD="pbkdf2:sha256:1000")

    def start(self, server: Server) -> Server:
        self.servers.append(server)
        return server.wait_ready()

    def stop_all(self) -> None:
        while self.servers:
            self.servers.pop().stop()


def make_setup(root: Path, tokens: Tokens) -> Setup:
    run_dir = root / "run"
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    user_id = seed_database(f"sqlite:///{run_dir / 'monolith.db'}")
    copy_to_dataservice(run_dir)
    set_flag(run_dir, "runs", "local")
    return Setup(root=root, run_dir=run_dir, tokens=tokens, user_id=user_id)


# ---------------------------------------------------------------- load with server CPU

def cpu_seconds(pids: list[int]) -> float:
    """On-CPU seconds of every thread of `pids`, from /proc/<pid>/task/*/schedstat (ns;
    utime + stime come in 10 ms ticks, a coarse grain for a few hundred requests), or
    psutil's utime + stime where the kernel keeps no schedstat. One clock for every call
    (chosen by the machine, not by the process), and a process gone counts nothing."""
    if _has_schedstat():
        return sum(_schedstat_ns(pid) for pid in pids) / 1e9
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


@functools.cache
def _has_schedstat() -> bool:
    return Path("/proc/self/schedstat").exists()


def _schedstat_ns(pid: int) -> int:
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):  # a thread just ended
            total += int(stat.read_text().split()[0])
    return total


def load(spec: dict, cpu_groups: dict[str, list[int]] | None = None) -> dict:
    """run_load plus the CPU time each group of server processes spent meanwhile, per
    request served (warm-up included): unlike rps, barely moved by other processes that
    compete for the same core."""
    from bench.loadgen import run_load

    cpu_groups = cpu_groups or {}
    before = {name: cpu_seconds(pids) for name, pids in cpu_groups.items()}
    result = run_load(spec)
    served = max(result["all_completed"], 1)
    for name, pids in cpu_groups.items():
        spent = cpu_seconds(pids) - before[name]
        result[f"{name}_cpu_us_per_req"] = round(spent * 1e6 / served, 1)
    return result
