"""An app served as circus.ini serves every Turnout app: gunicorn's gevent workers with the
kit's hooks (`-c python:shims.gunicorn_conf`) and the same arguments, on the lowest gunicorn
and gevent the kit supports as on the newest."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import requests
from gunicorn_processes import Server, stop, wait_healthy
from support import ROOT, free_port


def test_gunicorn_serves_an_app_with_the_kits_hooks_and_metrics_directory(tmp_path):
    metrics_dir = tmp_path / "metrics"  # not there yet: the on_starting hook makes it
    port = free_port()
    environ = {key: value for key, value in os.environ.items() if not key.startswith("TURNOUT_")}
    environ.update(PYTHONPATH=str(ROOT), PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    log_path = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "-c", "python:shims.gunicorn_conf",
               "-k", "gevent", "-w", "2", "--no-control-socket", "--keep-alive", "10",
               "--graceful-timeout", "5", "-b", f"127.0.0.1:{port}", "tests.kit.notes_wsgi:app"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=environ, stdout=log,
                                   stderr=subprocess.STDOUT)
    server = Server("notes", f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_healthy([server])
        assert metrics_dir.is_dir()
        for _ in range(4):  # across both workers, most likely
            assert requests.get(f"{server.url}/healthz", timeout=5).json()["service"] == "notes"
        scraped = requests.get(f"{server.url}/metrics", timeout=5)
        assert scraped.status_code == 200, server.log()
        assert "turnout_flag_store_readable" in scraped.text  # gathered from the directory
        assert list(metrics_dir.glob("*.db")), "no worker wrote its samples"
    finally:
        stop([server])
    assert process.returncode == 0, server.log()


FREEZE_IN_A_WORKER = """
import gc, json, logging, types
import tests.kit.notes_wsgi  # the app, loaded as a worker loads it
from shims.gunicorn_conf import post_worker_init

post_worker_init(types.SimpleNamespace(log=logging.getLogger("worker")))
from gunicorn.http import wsgi
print(json.dumps({"frozen": gc.get_freeze_count(), "walked": len(gc.get_objects()),
                  "head_with_body": getattr(wsgi.Response, "turnout_head_with_body", False)}))
"""


def test_a_worker_freezes_the_loaded_app_out_of_full_collections():
    """A full collection walks every tracked object; a loaded app's ~100,000 objects cost
    a request 66-69 ms in B4 (shims/heap.py). After the hook only what the worker makes
    from then on is walked."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("TURNOUT_")}
    environ.update(PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", FREEZE_IN_A_WORKER], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60, check=True)
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["frozen"] > 20_000, counts  # the app and its libraries
    assert counts["walked"] < counts["frozen"] / 20, counts
    assert counts["head_with_body"], "the worker's answers go out as one write each"
