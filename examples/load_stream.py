"""Load test of examples/stream_service.py, on this machine only (127.0.0.1).

    python examples/load_stream.py                      # starts its own service
    python examples/load_stream.py --port 8000          # a service already running
    python examples/load_stream.py --sessions 8 --frames 500 --duration 20

--sessions clients, each its own session on its own keep-alive connection,
send one frame per request, each waiting for the answer before the next
(as a streaming client would). Bounded: at most --frames requests per session
and --duration seconds in all. Reports latency per request (p50, p99, max,
in ms), the request rate and the errors.
"""

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np

HOST = "127.0.0.1"


def client(port, sid, frames, input_size, deadline, latencies, errors):
    rng = np.random.default_rng(abs(hash(sid)) % 2**32)
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        for k in range(frames):
            if time.monotonic() > deadline:
                break
            body = json.dumps(
                {"session": sid, "frame": rng.standard_normal(input_size).tolist(), "reset": k == 0}
            )
            t0 = time.perf_counter()
            conn.request("POST", "/step", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            latencies.append(time.perf_counter() - t0)
            if resp.status != 200:
                errors.append(f"{resp.status}: {data[:200]!r}")
        conn.request("POST", "/end", json.dumps({"session": sid}))
        conn.getresponse().read()
    except OSError as e:
        errors.append(repr(e))
    finally:
        conn.close()


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_ready(port, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("the service exited before it was ready")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=1)
            conn.request("GET", "/health")
            health = json.loads(conn.getresponse().read())
            conn.close()
            return health
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no service on {HOST}:{port} after {timeout} s")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, help="a running service on 127.0.0.1 (else start one)")
    p.add_argument("--sessions", type=int, default=4)
    p.add_argument("--frames", type=int, default=1000, help="requests per session, at most")
    p.add_argument("--duration", type=float, default=30.0, help="seconds, at most")
    p.add_argument("--input", type=int, default=40, help="input_size of the model")
    p.add_argument(
        "--service-args",
        default="--cell lstm --hidden 128",
        help="arguments for the service this script starts",
    )
    a = p.parse_args(argv)
    if not (0 < a.sessions <= 256 and 0 < a.frames <= 100_000 and 0 < a.duration <= 600):
        p.error("bounds: 1..256 sessions, 1..100000 frames, 0..600 seconds")

    proc, port = None, a.port
    if port is None:
        port = free_port()
        here = os.path.dirname(os.path.abspath(__file__))
        proc = subprocess.Popen(
            [
                sys.executable,
                os.path.join(here, "stream_service.py"),
                "--host",
                HOST,
                "--port",
                str(port),
                "--input",
                str(a.input),
            ]
            + a.service_args.split(),
            stdout=subprocess.DEVNULL,
        )
    try:
        health = wait_ready(port, proc)
        print(f"service: {health['model']} on {HOST}:{port}")
        latencies, errors = [], []
        deadline = time.monotonic() + a.duration
        threads = [
            threading.Thread(
                target=client,
                args=(port, f"load-{k}", a.frames, a.input, deadline, latencies, errors),
            )
            for k in range(a.sessions)
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    if not latencies:
        print("no requests completed", errors[:3])
        return 1
    ms = np.array(latencies) * 1e3
    print(
        f"{len(ms)} requests from {a.sessions} sessions in {wall:.2f} s: "
        f"{len(ms) / wall:.0f} requests/s"
    )
    print(
        f"latency ms: p50 {np.percentile(ms, 50):.3f}  p99 {np.percentile(ms, 99):.3f}  "
        f"max {ms.max():.3f}"
    )
    print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
