"""A loopback Segment collector for the tests: gunzips `POST /v1/batch`, records the
events, and answers with scripted statuses (503…) to inject faults."""

import gzip
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Collector:
    def __init__(self, port: int = 0):
        self.events = []
        self.requests = 0
        self.script = []  # statuses answered first, in order; then 200
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer._lock:
                    outer.requests += 1
                    status = outer.script.pop(0) if outer.script else 200
                    if status == 200:
                        assert self.path == "/v1/batch"
                        assert self.headers["Content-Encoding"] == "gzip"
                        outer.events.extend(json.loads(gzip.decompress(body))["batch"])
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.events) >= n:
                    return True
            time.sleep(0.02)
        return False

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.stop()


def free_port() -> int:
    """A port nothing listens on (yet): connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
