"""A small gevent HTTP/1.1 load generator on raw sockets, pinned to CPU 1.

Why not requests: a requests.Session call costs ~0.8 ms of client CPU, which
would make the client, not the server, the bottleneck (see
/work/shared/notes/runtime.md). wrk is not installed on this machine; this
client is ~100 lines and we control exactly what it measures.

Run as a separate process (`run_load(spec)` below starts
`python -m bench.loadgen` under `taskset -c 1` and reads one JSON line back),
so the gevent monkey-patching never touches the benchmark driver.

Spec (JSON on stdin):
    host, port            loopback only (127.0.0.1)
    requests              list of {"method", "path", "headers": {}, "body": str|null}
                          sent in round-robin order (a deterministic mix)
    concurrency           connections (one greenlet each)
    duration              seconds of measurement, after `warmup` seconds not measured
    max_requests          stop after this many measured requests (0 = no limit)
    rate                  0 = closed loop; else a total request rate (open loop, paced per
                          connection; latency counted from the scheduled send time, so a
                          slow server is not hidden by coordinated omission)
    keepalive             reuse connections (the server may still close them)
    timeout               per-request timeout, seconds
Result: completed, errors, status counts, rps, latency percentiles in ms.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIENT_CPU = 1


def run_load(spec: dict, *, cpu: int | None = CLIENT_CPU) -> dict:
    """Run one load in a child process pinned to `cpu` (if the machine has it)."""
    assert spec.get("host", "127.0.0.1") == "127.0.0.1", "loopback only"
    command = [sys.executable, "-m", "bench.loadgen"]
    if cpu is not None and cpu < os.cpu_count():
        command = ["taskset", "-c", str(cpu), *command]
    budget = float(spec.get("warmup", 0)) + float(spec["duration"]) + \
        float(spec.get("timeout", 10)) + 30
    done = subprocess.run(command, input=json.dumps(spec), capture_output=True, text=True,
                          cwd=ROOT, timeout=budget, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the client process

def _main() -> None:
    from gevent import monkey

    monkey.patch_all()
    spec = json.loads(sys.stdin.read())
    if os.cpu_count() > CLIENT_CPU:
        os.sched_setaffinity(0, {CLIENT_CPU})
    print(json.dumps(_generate(spec)))


class _Closed(Exception):
    pass


def _encode(request: dict, host: str, port: int, keepalive: bool) -> bytes:
    body = (request.get("body") or "").encode()
    headers = {"Host": f"{host}:{port}", "User-Agent": "turnout-bench",
               "Connection": "keep-alive" if keepalive else "close",
               **request.get("headers", {})}
    if body or request.get("method", "GET") in ("POST", "PUT", "PATCH"):
        headers["Content-Length"] = str(len(body))
    head = f"{request.get('method', 'GET')} {request['path']} HTTP/1.1\r\n" + \
        "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode() + body


def _read_response(sock, buffer: bytearray) -> tuple[int, bool]:
    """Read one response from sock; returns (status, server_keeps_connection)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise _Closed()
        buffer += chunk
    end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    del buffer[:end + 4]
    status = int(head[0].split()[1])
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    keep = fields.get("connection", "").lower() != "close" and head[0].startswith("HTTP/1.1")
    if "content-length" in fields:
        length = int(fields["content-length"])
        while len(buffer) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise _Closed()
            buffer += chunk
        del buffer[:length]
    elif fields.get("transfer-encoding", "").lower() == "chunked":
        while True:
            while b"\r\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    raise _Closed()
                buffer += chunk
            line_end = buffer.index(b"\r\n")
            size = int(bytes(buffer[:line_end]).split(b";")[0], 16)
            needed = line_end + 2 + size + 2
            while len(buffer) < needed:
                chunk = sock.recv(65536)
                if not chunk:
                    raise _Closed()
                buffer += chunk
            del buffer[:needed]
            if size == 0:
                break
    elif status not in (204, 304) and status >= 200:
        while True:  # body until close
            chunk = sock.recv(65536)
            if not chunk:
                break
        keep = False
    return status, keep


def _generate(spec: dict) -> dict:
    import socket
    import time

    import gevent

    host, port = spec.get("host", "127.0.0.1"), int(spec["port"])
    keepalive = bool(spec.get("keepalive", True))
    payloads = [_encode(r, host, port, keepalive) for r in spec["requests"]]
    concurrency = int(spec["concurrency"])
    warmup, duration = float(spec.get("warmup", 0)), float(spec["duration"])
    max_requests = int(spec.get("max_requests", 0))
    rate = float(spec.get("rate", 0))
    timeout = float(spec.get("timeout", 10))
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    counter = {"next": 0, "measured": 0}
    t0 = time.perf_counter()
    measure_from = t0 + warmup
    stop_at = measure_from + duration
    state = {"stop": False}

    def worker(index: int) -> None:
        sock, buffer = None, bytearray()
        interval = concurrency / rate if rate else 0.0
        scheduled = t0 + index * interval / max(concurrency, 1) if rate else 0.0
        while not state["stop"]:
            now = time.perf_counter()
            if now >= stop_at:
                break
            if rate:
                if scheduled > now:
                    gevent.sleep(scheduled - now)
                    if time.perf_counter() >= stop_at:
                        break
                started = scheduled
                scheduled += interval
            else:
                started = now
            payload = payloads[counter["next"] % len(payloads)]
            counter["next"] += 1
            try:
                with gevent.Timeout(timeout):
                    if sock is None:
                        sock = socket.create_connection((host, port))
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        buffer = bytearray()
                    sock.sendall(payload)
                    status, keep = _read_response(sock, buffer)
            except (gevent.Timeout, OSError, _Closed, ValueError) as exc:
                kind = "timeout" if isinstance(exc, gevent.Timeout) else type(exc).__name__
                if measure_from <= time.perf_counter() <= stop_at and not state["stop"]:
                    errors[kind] = errors.get(kind, 0) + 1
                if sock is not None:
                    sock.close()
                sock = None
                continue
            done = time.perf_counter()
            counter["all"] = counter.get("all", 0) + 1
            if not keep or not keepalive:
                sock.close()
                sock = None
            if measure_from <= done <= stop_at:  # completed in the window (as wrk counts)
                latencies.append(done - started)
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                counter["measured"] += 1
                if max_requests and counter["measured"] >= max_requests:
                    state["stop"] = True
                    state["stopped_at"] = done
        if sock is not None:
            sock.close()

    greenlets = [gevent.spawn(worker, i) for i in range(concurrency)]
    gevent.joinall(greenlets, timeout=warmup + duration + timeout + 5)
    gevent.killall(greenlets, timeout=2)
    elapsed = min(state.get("stopped_at", stop_at), stop_at) - measure_from
    latencies.sort()
    cpu = os.times()

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000, 3)

    return {"completed": len(latencies), "all_completed": counter.get("all", 0),
            "errors": errors, "statuses": statuses,
            "elapsed_s": round(elapsed, 3), "rps": round(len(latencies) / elapsed, 1)
            if elapsed > 0 else 0.0,
            "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "max_ms":
            round(latencies[-1] * 1000, 3) if latencies else None,
            "mean_ms": round(sum(latencies) / len(latencies) * 1000, 3) if latencies else None,
            "client_cpu_s": round(cpu.user + cpu.system, 2),
            "concurrency": concurrency, "rate": rate or None, "keepalive": keepalive}


if __name__ == "__main__":
    _main()
