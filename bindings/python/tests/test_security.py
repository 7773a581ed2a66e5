"""The write key stays out of string forms; no transport follows a redirect."""

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import trailhound_ffi as ffi
from trailhound import Config, HttpClientTransport, HttpRequest, HttpResponse, Trailhound

KEY = "sekrit-write-key-4711"
BASIC = base64.b64encode(f"{KEY}:".encode()).decode()


def assert_no_key(text):
    assert "sekrit" not in text, text
    assert BASIC not in text, text


def test_config_repr_and_str_have_no_key():
    """The generated Config's repr() and str() are Rust's redacting Debug and Display."""
    c = Config(write_key=KEY, endpoint="https://c.example", data_dir="/d")
    for text in (repr(c), str(c), f"{c}", f"{c!r}", repr([c])):
        assert_no_key(text)
    assert "https://c.example" in str(c)
    assert c.write_key == KEY


def test_request_repr_and_str_have_no_authorization():
    """A request prints its URL and body size, never its headers."""
    r = HttpRequest(url="https://c.example/v1/batch", headers={"Authorization": f"Basic {BASIC}"}, body=b"x")
    for text in (repr(r), str(r)):
        assert_no_key(text)
        assert "Authorization" not in text
    assert "https://c.example/v1/batch" in str(r)


def test_real_request_logged_by_a_transport_has_no_key(tmp_path):
    """The request the core really builds, printed by a transport: no key."""
    logged = []

    def transport(req):
        assert req.headers["Authorization"] == f"Basic {BASIC}"
        logged.append(repr(req))
        logged.append(str(req))
        return 200

    th = Trailhound.setup(KEY, "https://c.example", str(tmp_path), transport=transport)
    th.track("a")
    assert th.flush(wait=5).delivered == 1
    th.shutdown()
    assert len(logged) == 2
    for text in logged:
        assert_no_key(text)


class Redirector:
    """Answers POST /v1/batch with `status` and Location: /landing; /landing says 200."""

    def __init__(self):
        self.status = 301
        self.batch_hits = 0
        self.landing_hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                if self.path == "/v1/batch":
                    outer.batch_hits += 1
                    self.send_response(outer.status)
                    self.send_header("Location", f"http://127.0.0.1:{outer.port}/landing")
                else:
                    outer.landing_hits += 1
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = _answer
            do_GET = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def redirector():
    r = Redirector()
    yield r
    r.stop()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_http_client_transport_returns_redirect_status(redirector, status):
    """The 3xx is the answer, with nothing sent to the Location."""
    redirector.status = status
    req = HttpRequest(url=redirector.url + "/v1/batch", headers={"Content-Encoding": "gzip"}, body=b"\x01")
    resp = HttpClientTransport(timeout=10)(req)
    assert isinstance(resp, HttpResponse)
    assert resp.status == status
    assert redirector.batch_hits == 1
    assert redirector.landing_hits == 0


def test_client_with_redirecting_endpoint_delivers_nothing(redirector, tmp_path):
    """Through the client: a redirecting endpoint delivers nothing, anywhere."""
    redirector.status = 302
    th = Trailhound.setup("key", redirector.url, str(tmp_path), transport=HttpClientTransport(timeout=10))
    th.track("a")
    assert th.flush(wait=5).delivered == 0
    th.shutdown()
    assert redirector.batch_hits >= 1  # retries may follow; none of them redirected
    assert redirector.landing_hits == 0


def test_hostile_timeouts_are_clamped(tmp_path):
    """NaN, negative, infinite and huge waits and shutdown timeouts neither raise nor hang."""
    th = Trailhound.setup("key", "https://c.example", str(tmp_path), transport=lambda r: 200)
    th.track("a")
    for wait in (float("nan"), -1.0, float("inf"), 1e300):
        stats_or_timeout = None
        try:
            stats_or_timeout = th.flush(wait=wait)
        except ffi.TrailhoundError.Timeout:
            pass
        if stats_or_timeout is not None:
            assert stats_or_timeout.delivered in (0, 1)
    th.shutdown(timeout=float("inf"))
