"""A second Turnout stack serving load on other ports, to prove the fault tests on a busy
machine (issue 8: "run the suite once while a second Turnout stack serves load").

    .venv/bin/python tests/integration/busy_stack.py --seconds 900 [--clients 25]

Starts its own stack under circusd (free loopback ports, a temporary run directory, runs in
`canary 50` so both sides write and mirror), drives it with the fault tests' load generator
for at most `--seconds`, prints the load average every 30 s, then stops everything it started.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(HERE.parent), str(ROOT)]

from gevent import monkey  # noqa: E402

monkey.patch_all()

import gevent  # noqa: E402
from conftest import PORT_NAMES  # noqa: E402
from support import free_port  # noqa: E402
from traffic import Traffic, sign_up  # noqa: E402


def turnout(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "shims.cli", *args], env=env, cwd=ROOT,
                   check=True, timeout=180)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=900.0)
    parser.add_argument("--clients", type=int, default=25)
    args = parser.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="turnout-busy-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TURNOUT_")}
    env.update({name: str(free_port()) for name in PORT_NAMES})
    env.update(TURNOUT_RUN_DIR=str(run_dir), TURNOUT_PYTHON=sys.executable,
               PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "scripts.demo_data"], env=env, cwd=ROOT, check=True,
                   timeout=180)
    turnout(env, "up", "--wait", "120")
    try:
        url = f"http://127.0.0.1:{env['TURNOUT_MONOLITH_PORT']}"
        turnout(env, "flags", "set", "runs", "dualwrite")
        runners = sign_up(url, 50)  # on both sides before either side answers for them
        for step in (("shadow",), ("canary", "--percent", "50")):
            turnout(env, "flags", "set", "runs", *step)
        started = time.monotonic()
        with Traffic(url, runners, clients=args.clients) as traffic:
            while time.monotonic() - started < args.seconds:
                gevent.sleep(30)
                print(f"busy stack: {time.monotonic() - started:.0f}s, load average "
                      f"{os.getloadavg()[0]:.2f}; {traffic.summary()}", flush=True)
        print(f"busy stack done: {traffic.summary()}", flush=True)
    finally:
        turnout(env, "down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
