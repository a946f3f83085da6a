"""The whole suite as `tox -e py311` runs it, in the time two cores allow.

Two pytest processes side by side: the layers that start no processes (unit, kit, contract,
functional, about 13 minutes on one core), and the integration layer (about 22 minutes, most
of it waiting on its stacks), which must hold on a busy machine anyway. Run one after the
other, the layers took 31 minutes. Each run keeps its own coverage file; one report is
printed from all of them at the end.

pytest-xdist would do the splitting, but its execnet workers serve their channel from a
thread that stops working once conftest has gevent patch `threading` (an INTERNALERROR at the
first test), and gevent must patch first. Hence two plain pytest processes.

With arguments, it is plain `pytest --cov ARGS` (e.g. `scripts/test -e py311 -- tests/unit`).
"""

from __future__ import annotations

import os
import subprocess  # nosec B404: runs pytest and coverage from this environment only
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIDE_BY_SIDE = (("tests/unit", "tests/kit", "tests/contract", "tests/functional"),
                ("tests/integration",))
# The slowest integration tests named in every run: they set the CI's length.
OPTIONS = ((), ("--durations=15",))
COVERAGE_FILES = (".coverage.layers", ".coverage.integration")


def pytest(paths: tuple[str, ...], coverage_file: str, *extra: str,
           **options) -> subprocess.Popen:
    env = {**os.environ, "COVERAGE_FILE": str(ROOT / coverage_file)}
    command = [sys.executable, "-m", "pytest", "--cov", "--cov-report=", *extra, *paths]
    return subprocess.Popen(command, cwd=ROOT, env=env, **options)  # nosec B603


def side_by_side() -> list[int]:
    """Both halves at once, each one's output kept in a file and printed whole when both
    are done, so the two reports do not interleave."""
    with tempfile.TemporaryDirectory() as logs:
        outputs = [Path(logs, f"layers-{i}.log") for i in range(len(SIDE_BY_SIDE))]
        runs = []
        halves = zip(SIDE_BY_SIDE, COVERAGE_FILES, OPTIONS, outputs, strict=True)
        for paths, coverage_file, options, output in halves:
            with output.open("wb") as sink:
                runs.append(pytest(paths, coverage_file, *options, stdout=sink,
                                   stderr=subprocess.STDOUT))
        codes = [run.wait() for run in runs]
        for output in outputs:
            sys.stdout.write(output.read_text(errors="replace"))
            sys.stdout.flush()
    return codes


def coverage(*args: str) -> int:
    return subprocess.call([sys.executable, "-m", "coverage", *args], cwd=ROOT)  # nosec B603


def main(argv: list[str]) -> int:
    if argv:
        return subprocess.call([sys.executable, "-m", "pytest", "--cov",  # nosec B603
                                "--cov-report=term-missing:skip-covered", *argv], cwd=ROOT)
    codes = side_by_side()
    coverage("combine", "--quiet", *COVERAGE_FILES)
    coverage("report", "--show-missing", "--skip-covered")
    # pytest's exit code 5 (nothing collected) is a failure too: a layer went missing.
    return next((code for code in codes if code != 0), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
