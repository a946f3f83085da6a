"""A worker's heap after the app is loaded: frozen, so full collections stop pausing requests.

A gevent worker serves every request on one loop, and CPython's cyclic garbage collector
runs in whatever request happens to allocate past its threshold: a full (generation 2)
collection walks every tracked object, and a loaded monolith has ~136,000 of them (Flask,
SQLAlchemy, the contracts, OpenTelemetry), almost all alive until the worker exits. B4
measured one such collection at 66-69 ms, a request held for 80 ms behind it, about every
35 s at 100 req/s (docs/benchmarks.md, "B4 (issue 12)").

`gc.freeze()` moves every object alive at that moment to a permanent generation the
collector never walks again, so a full collection only visits what the worker made since.
It is called once, when the app is loaded and before the first request
(shims/gunicorn_conf.py: `post_worker_init`), after one full collection so the garbage of
importing is freed rather than kept forever. Without `--preload` each worker loads the app
itself after the fork, so this happens in the worker, not in the master.
"""

from __future__ import annotations

import gc


def freeze_loaded_objects() -> int:
    """Collects once, then freezes what is left; returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
