"""A small streaming-inference HTTP service: one fastrnn Stream per client
session, one frame (or a few) per request. Standard library only
(http.server.ThreadingHTTPServer) besides numpy and fastrnn.

    python examples/stream_service.py --cell lstm --input 40 --hidden 128 --port 8000
    python examples/stream_service.py --model model.npz            # fr.load()-able file

    curl -s 127.0.0.1:8000/step -d '{"session": "a", "frame": [0.1, ...]}'
      -> {"session": "a", "output": [...]}              # the top layer's h, H floats
    curl -s 127.0.0.1:8000/step -d '{"session": "a", "frames": [[...], [...]], "reset": true}'
      -> {"session": "a", "outputs": [[...], [...]]}    # reset: start the session anew
    curl -s 127.0.0.1:8000/end -d '{"session": "a"}'     # forget the session
    curl -s 127.0.0.1:8000/health                        # {"sessions": 1, "model": "..."}

Each session's frames run through its own stream in arrival order: requests
of one session are serialised by that session's lock (a Stream refuses to be
used by two threads at once), requests of different sessions run in
parallel threads, and the step itself releases the GIL. Sessions idle for
--idle-timeout seconds are dropped, and the oldest idle one makes room when
--max-sessions are open. Errors are JSON {"error": ...} with status 400
(bad request), 404 (unknown path) or 413 (body too large).
"""

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

import fastrnn as fr

MAX_BODY = 1 << 20  # bytes per request
MAX_FRAMES = 1000  # frames per request


class Session:
    __slots__ = ("stream", "lock", "last_used")

    def __init__(self, stream):
        self.stream, self.lock, self.last_used = stream, threading.Lock(), time.monotonic()


class StreamService:
    """The sessions of one model: id -> Session, each with its own stream."""

    def __init__(self, model, max_sessions=1000, idle_timeout=300.0):
        self.model = model
        self.max_sessions, self.idle_timeout = max_sessions, idle_timeout
        self.sessions = {}
        self.lock = threading.Lock()

    def session(self, sid):
        now = time.monotonic()
        with self.lock:
            s = self.sessions.get(sid)
            if s is None:
                self._evict(now)
                s = self.sessions[sid] = Session(self.model.stream(batch_size=1))
            s.last_used = now
            return s

    def _evict(self, now):
        """Drop idle sessions; at the limit, the least recently used."""
        for sid in [k for k, s in self.sessions.items() if now - s.last_used > self.idle_timeout]:
            del self.sessions[sid]
        if len(self.sessions) >= self.max_sessions:
            del self.sessions[min(self.sessions, key=lambda k: self.sessions[k].last_used)]

    def step(self, request):
        """{"session", "frame" | "frames", "reset"?} -> {"session", "output" | "outputs"}."""
        sid = request.get("session")
        if not isinstance(sid, str) or not sid or len(sid) > 200:
            raise ValueError("session: expected a non-empty string id (at most 200 characters)")
        if ("frame" in request) == ("frames" in request):
            raise ValueError(
                "expected exactly one of 'frame' (one frame of input_size "
                "numbers) or 'frames' (a list of frames)"
            )
        many = "frames" in request
        x = np.asarray(request["frames" if many else "frame"], dtype=np.float64)
        if many and (x.ndim != 2 or not 0 < len(x) <= MAX_FRAMES):
            raise ValueError(
                f"frames: expected a list of 1..{MAX_FRAMES} frames, got shape {x.shape}"
            )
        s = self.session(sid)
        with s.lock:  # one request of a session at a time, in order
            if request.get("reset"):
                s.stream.reset()
            if many:
                y = s.stream.run(x)
                return {"session": sid, "outputs": y.tolist()}
            return {"session": sid, "output": s.stream.step(x).tolist()}

    def end(self, request):
        with self.lock:
            found = self.sessions.pop(request.get("session"), None) is not None
        return {"session": request.get("session"), "ended": found}

    def health(self):
        with self.lock:
            return {"sessions": len(self.sessions), "model": repr(self.model)}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per client
    disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK stall)
    server_version = "fastrnn-stream/0.1"

    def log_message(self, *args):  # quiet; a service would log somewhere real
        pass

    def _reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self._reply(200, self.server.service.health())
        else:
            self._reply(404, {"error": f"unknown path {self.path}"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            return self._reply(413, {"error": f"body larger than {MAX_BODY} bytes"})
        body = self.rfile.read(length)
        routes = {"/step": self.server.service.step, "/end": self.server.service.end}
        if self.path not in routes:
            return self._reply(404, {"error": f"unknown path {self.path}"})
        try:
            request = json.loads(body)
            if not isinstance(request, dict):
                raise ValueError("expected a JSON object")
            self._reply(200, routes[self.path](request))
        except (ValueError, TypeError) as e:  # bad JSON, shapes, dtypes: the client's
            self._reply(400, {"error": str(e)})


def make_server(model, host="127.0.0.1", port=0, **service_options):
    """A ThreadingHTTPServer serving `model` (port 0: a free one, see
    server.server_address); run it with serve_forever(), stop with shutdown()."""
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.service = StreamService(model, **service_options)
    return server


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a model file written by fastrnn's save (else a random one)")
    p.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm")
    p.add_argument("--input", type=int, default=40)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0: any free port (printed)")
    p.add_argument("--max-sessions", type=int, default=1000)
    p.add_argument("--idle-timeout", type=float, default=300.0)
    a = p.parse_args(argv)
    if a.model:
        model = fr.load(a.model)
    else:
        cls = {"lstm": fr.LSTM, "gru": fr.GRU, "rnn": fr.RNN}[a.cell]
        model = cls(a.input, a.hidden, num_layers=a.layers, seed=a.seed)
    server = make_server(
        model, a.host, a.port, max_sessions=a.max_sessions, idle_timeout=a.idle_timeout
    )
    host, port = server.server_address[:2]
    print(f"serving {model!r} on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
