"""gunicorn hooks shared by every Turnout app (`gunicorn -c python:shims.gunicorn_conf`).

Only hooks live here; workers, binding and timeouts stay on the command line in
circus.ini where operators look for them. This module imports nothing that
touches sockets: the master loads it before any worker patches gevent.

The metrics directory is emptied by `turnout up` before circusd starts, not
here: `circusctl incr` and `reload` start a second master while the first still
serves, and wiping its live files would silently lose its samples.
"""

import os
import socket
import stat

from shims import gunicorn_response as head_with_body
from shims.heap import freeze_loaded_objects

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
FD_BIND = "fd://"


def on_starting(server):
    close_foreign_sockets(server.cfg.bind)
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)


def close_foreign_sockets(binds):
    """circus's `use_sockets` hands every watcher the sockets of all of them (it cannot
    choose): a master bound to `fd://N` closes every other inherited socket before it forks
    a worker, so an app that is broken into cannot accept another app's connections. Runs
    before gunicorn opens any socket of its own, and closes only listening sockets (gunicorn
already imported `socket`: this adds nothing the gevent patch could miss)."""
    own = {int(bind[len(FD_BIND):]) for bind in binds if bind.startswith(FD_BIND)}
    if not own:
        return  # gunicorn binds its own address: it inherited nothing it should keep
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else ():
        descriptor = int(name)
        if descriptor <= 2 or descriptor in own:
            continue
        try:
            if stat.S_ISSOCK(os.fstat(descriptor).st_mode) and _listening(descriptor):
                os.close(descriptor)
        except OSError:
            continue  # the listing's own descriptor, already closed


def _listening(descriptor):
    probe = socket.socket(fileno=descriptor)
    try:
        return bool(probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    finally:
        probe.detach()  # the descriptor stays open: the caller decides


def post_worker_init(worker):
    """The worker has loaded the app and serves nothing yet: its HTTP/1 answers go out as
    one write each (shims/gunicorn_response.py), and the loaded objects are frozen out of
    the garbage collector's full passes (shims/heap.py)."""
    head_with_body.install()
    frozen = freeze_loaded_objects()
    worker.log.debug("froze %d objects of the loaded app", frozen)


def child_exit(server, worker):
    """A dead worker's live gauges must stop counting; its counters stay in the totals."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
