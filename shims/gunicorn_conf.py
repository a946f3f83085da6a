"""gunicorn hooks shared by every Turnout app (`gunicorn -c python:shims.gunicorn_conf`).

Only hooks live here; workers, binding and timeouts stay on the command line in
circus.ini where operators look for them. This module imports nothing that
touches sockets: the master loads it before any worker patches gevent.

The metrics directory is emptied by `turnout up` before circusd starts, not
here: `circusctl incr` and `reload` start a second master while the first still
serves, and wiping its live files would silently lose its samples.
"""

import os

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def on_starting(server):
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        os.makedirs(directory, exist_ok=True)


def child_exit(server, worker):
    """A dead worker's live gauges must stop counting; its counters stay in the totals."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
