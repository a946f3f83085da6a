"""Reading a live process's `/metrics` (Prometheus text), for the tests under circusd."""

from __future__ import annotations

import requests

BREAKER_STATES = {0: "closed", 1: "half_open", 2: "open"}


def metric(url: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include the given ones."""
    total = 0.0
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def runs_breaker(url: str) -> str:
    """The runs breaker as /metrics tells it for every live worker: the worst of them."""
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith('turnout_breaker_state{feature="runs"}'):
            return BREAKER_STATES[int(float(line.rsplit(" ", 1)[1]))]
    return "closed"  # never changed state in any live worker
