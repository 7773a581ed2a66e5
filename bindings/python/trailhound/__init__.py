"""Trailhound for Python: a thin, idiomatic layer over the generated UniFFI module.

    from trailhound import Trailhound
    th = Trailhound.setup(write_key="KEY", endpoint="https://collector.example.com",
                          data_dir="/var/lib/myapp/trailhound")
    th.track("Song Played", {"title": "Nachtmusik", "seconds": 215})
    th.shutdown()

Properties and traits are plain dicts of str keys to None, bool, int, float, str, list,
tuple or dict (nested). Anything else raises TypeError before the call reaches Rust, and
nothing else is lost. Every decision (queueing, batching, retries) is made in Rust.
"""

from __future__ import annotations

import http.client
import math
import ssl
import typing
import urllib.parse

import trailhound_ffi as _ffi
from trailhound_ffi import (  # noqa: F401  (re-exported)
    AppInfo,
    Config,
    ContextInfo,
    DeviceConditions,
    DropReason,
    EndpointStats,
    EventType,
    HttpRequest,
    HttpResponse,
    Network,
    Notification,
    PlanMode,
    PlanViolation,
    PlanViolationCount,
    PolicyOverrides,
    Stats,
    TrailhoundError,
    Value,
)

__all__ = [
    "Trailhound", "TrailhoundError", "Config", "PolicyOverrides", "ContextInfo", "AppInfo",
    "DeviceConditions", "Network", "Notification", "DropReason", "HttpRequest",
    "HttpResponse", "Stats", "EventType", "HttpClientTransport", "to_value", "from_value",
    "PlanMode", "PlanViolation", "PlanViolationCount", "EndpointStats",
]

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def to_value(obj: typing.Any, path: str = "properties") -> Value:
    """Converts a Python value to a `Value`; raises TypeError/ValueError naming `path`."""
    # bool before int: True is an int in Python, and must stay a boolean on the wire.
    if obj is None:
        return Value.NULL()
    if isinstance(obj, bool):
        return Value.BOOL(obj)
    if isinstance(obj, int):
        if not _I64_MIN <= obj <= _I64_MAX:
            raise ValueError(f"{path}: integer {obj} does not fit in 64 bits")
        return Value.INT(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"{path}: {obj} is not a finite number")
        return Value.DOUBLE(obj)
    if isinstance(obj, str):
        return Value.TEXT(obj)
    if isinstance(obj, dict):
        return Value.OBJECT(_to_map(obj, path))
    if isinstance(obj, (list, tuple)):
        return Value.ARRAY([to_value(e, f"{path}[{i}]") for i, e in enumerate(obj)])
    raise TypeError(
        f"{path}: unsupported type {type(obj).__name__}; use None, bool, int, float, "
        "str, list, tuple or dict"
    )


def _to_map(obj: typing.Any, path: str) -> dict[str, Value]:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise TypeError(f"{path}: expected a dict, got {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        if not isinstance(k, str):
            raise TypeError(f"{path}: key {k!r} is a {type(k).__name__}, not a str")
        out[k] = to_value(v, f"{path}.{k}")
    return out


def from_value(v: Value) -> typing.Any:
    """Converts a `Value` back to plain Python."""
    if v.is_NULL():
        return None
    if v.is_OBJECT():
        return {k: from_value(e) for k, e in v.v.items()}
    if v.is_ARRAY():
        return [from_value(e) for e in v.v]
    return v.v


_EVENT_FIELDS = [
    ("message_id", "messageId"), ("timestamp", "timestamp"),
    ("anonymous_id", "anonymousId"), ("user_id", "userId"), ("event", "event"),
    ("name", "name"), ("group_id", "groupId"), ("previous_id", "previousId"),
]


def _event_to_dict(e: _ffi.Event) -> dict:
    d = {"type": e.kind.name.lower()}
    for attr, key in _EVENT_FIELDS:
        d[key] = getattr(e, attr)
    d["properties"] = None if e.properties is None else from_value(Value.OBJECT(e.properties))
    d["traits"] = None if e.traits is None else from_value(Value.OBJECT(e.traits))
    d["context"] = from_value(Value.OBJECT(e.context))
    return d


def _dict_to_event(d: dict, original: _ffi.Event) -> _ffi.Event:
    if not isinstance(d, dict):
        raise TypeError(f"a plugin must return a dict or None, not {type(d).__name__}")
    kw = {attr: d.get(key) for attr, key in _EVENT_FIELDS}
    props, traits = d.get("properties"), d.get("traits")
    return _ffi.Event(
        kind=original.kind,
        properties=None if props is None else _to_map(props, "properties"),
        traits=None if traits is None else _to_map(traits, "traits"),
        context=_to_map(d.get("context") or {}, "context"),
        **kw,
    )


class HttpClientTransport:
    """A transport on the standard library's `http.client`, for `transport=`.

    Never follows a redirect: a 3xx is returned as the answer, which the core takes for a
    misconfigured endpoint (uploads pause, nothing is marked delivered). Following one
    would send the write key and the events wherever `Location` points; `urllib.request`
    follows them, so do not build a transport on it. HTTPS verifies certificates with
    `context` (the default context: the system's CA store, hostname checked). A network
    error raises, which the core retries with backoff.
    """

    def __init__(self, timeout: float = 30.0, context: typing.Optional[ssl.SSLContext] = None):
        self._timeout = timeout
        self._context = context if context is not None else ssl.create_default_context()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        url = urllib.parse.urlsplit(request.url)
        if url.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                url.hostname, url.port, timeout=self._timeout, context=self._context
            )
        elif url.scheme == "http":
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=self._timeout)
        else:
            raise ValueError(f"unsupported URL scheme {url.scheme!r}")
        try:
            path = url.path or "/"
            if url.query:
                path += "?" + url.query
            conn.request("POST", path, body=bytes(request.body), headers=dict(request.headers))
            resp = conn.getresponse()
            resp.read()  # drained, so that the status line and headers are complete
            return HttpResponse(status=resp.status, retry_after=resp.getheader("Retry-After"))
        finally:
            conn.close()

    def __repr__(self) -> str:
        return f"HttpClientTransport(timeout={self._timeout})"


class _Transport(_ffi.HttpTransport):
    def __init__(self, send: typing.Callable[[HttpRequest], typing.Any]):
        self._send = send

    def send(self, request: HttpRequest) -> HttpResponse:
        r = self._send(request)
        if isinstance(r, HttpResponse):
            return r
        if isinstance(r, int):
            return HttpResponse(status=r, retry_after=None)
        raise TypeError(f"a transport must return an int status or HttpResponse, not {r!r}")


class _Plugin(_ffi.EventPlugin):
    def __init__(self, fn: typing.Callable[[dict], typing.Optional[dict]]):
        self._fn = fn

    def process(self, event: _ffi.Event) -> typing.Optional[_ffi.Event]:
        out = self._fn(_event_to_dict(event))
        return None if out is None else _dict_to_event(out, event)


class _Listener(_ffi.DeliveryListener):
    def __init__(self, fn: typing.Callable[[Notification], None]):
        self._fn = fn

    def on_notification(self, notification: Notification) -> None:
        self._fn(notification)


def _millis(seconds: float) -> int:
    """Seconds as FFI milliseconds (a signed 64-bit integer): negative or NaN is 0, beyond
    64 bits (or infinity) is the maximum, which Rust clamps to its longest timeout."""
    if math.isnan(seconds) or seconds <= 0:
        return 0
    if math.isinf(seconds) or seconds * 1000 >= _I64_MAX:
        return _I64_MAX
    return int(seconds * 1000)


_PLAN_MODES = {
    "off": PlanMode.OFF,
    "report": PlanMode.REPORT,
    "enforce": PlanMode.ENFORCE,
    "enforce_strip": PlanMode.ENFORCE_STRIP,
}


def _plan_mode(mode: typing.Union[PlanMode, str, None]) -> typing.Optional[PlanMode]:
    """A `PlanMode`, or its name as the core's policy spells it."""
    if mode is None or isinstance(mode, PlanMode):
        return mode
    if isinstance(mode, str) and mode in _PLAN_MODES:
        return _PLAN_MODES[mode]
    raise ValueError(f"plan_mode {mode!r}: expected one of {', '.join(_PLAN_MODES)}")


class Trailhound:
    """A running client. Safe to use from many threads at once."""

    _shared: typing.Optional["Trailhound"] = None

    def __init__(self, client: _ffi.TrailhoundClient):
        self._client = client

    @classmethod
    def setup(
        cls,
        write_key: str,
        endpoint: str,
        data_dir: str,
        *,
        policy: typing.Optional[PolicyOverrides] = None,
        context: typing.Optional[ContextInfo] = None,
        conditions: typing.Optional[DeviceConditions] = None,
        transport: typing.Optional[typing.Callable[[HttpRequest], typing.Any]] = None,
        plugins: typing.Sequence[typing.Callable[[dict], typing.Optional[dict]]] = (),
        listeners: typing.Sequence[typing.Callable[[Notification], None]] = (),
        jitter_seed: typing.Optional[int] = None,
        plan: typing.Optional[str] = None,
        plan_file: typing.Optional[str] = None,
        plan_mode: typing.Union[PlanMode, str, None] = None,
        fallback_endpoints: typing.Sequence[str] = (),
        shared: bool = False,
    ) -> "Trailhound":
        """Starts a client. `transport(request)` returns a status or an HttpResponse and
        raises for a network error; `plugin(event_dict)` returns the event or None to
        drop it; `listener(notification)` hears deliveries, drops, failures and tracking
        plan violations. `plan` is a tracking plan's JSON text, `plan_file` its path (one
        of them); `plan_mode` a `PlanMode` or its name (`"off"`, `"report"`, the default,
        `"enforce"`, `"enforce_strip"`). A bad plan raises `TrailhoundError.Plan`.

        `fallback_endpoints` are tried in order after `endpoint` (at most 3 with the default
        `max_endpoints` of 4; each checked like `endpoint`, duplicates refused: a bad one
        raises `TrailhoundError.Config`). Each endpoint has a circuit breaker: a batch that
        fails on one goes to the next at once; listeners hear `Notification.ENDPOINT_OPENED`
        and `ENDPOINT_CLOSED`, and `stats().endpoints` has each one's state."""
        if isinstance(fallback_endpoints, str):
            # A lone string would be taken letter by letter.
            raise TypeError("fallback_endpoints: expected a list of URLs, not a str")
        config = Config(
            write_key=write_key, endpoint=endpoint, data_dir=str(data_dir), policy=policy,
            context=context, conditions=conditions, jitter_seed=jitter_seed,
            plan_json=plan, plan_file=None if plan_file is None else str(plan_file),
            plan_mode=_plan_mode(plan_mode),
            fallback_endpoints=[str(e) for e in fallback_endpoints],
        )
        client = _ffi.TrailhoundClient(
            config,
            None if transport is None else _Transport(transport),
            [_Plugin(p) for p in plugins],
            [_Listener(listener) for listener in listeners],
        )
        th = cls(client)
        if shared:
            cls._shared = th
        return th

    @classmethod
    def shared(cls) -> "Trailhound":
        """The client set up with `shared=True`."""
        if cls._shared is None:
            raise RuntimeError("Trailhound.setup(..., shared=True) has not been called")
        return cls._shared

    def track(self, event: str, properties: typing.Optional[dict] = None) -> None:
        self._client.track(event, _to_map(properties, "properties"))

    def identify(self, user_id: typing.Optional[str], traits: typing.Optional[dict] = None) -> None:
        self._client.identify(user_id, _to_map(traits, "traits"))

    def screen(self, name: str, properties: typing.Optional[dict] = None) -> None:
        self._client.screen(name, _to_map(properties, "properties"))

    def page(self, name: str, properties: typing.Optional[dict] = None) -> None:
        self._client.page(name, _to_map(properties, "properties"))

    def group(self, group_id: str, traits: typing.Optional[dict] = None) -> None:
        self._client.group(group_id, _to_map(traits, "traits"))

    def alias(self, new_user_id: str) -> None:
        self._client.alias(new_user_id)

    def flush(self, wait: typing.Optional[float] = None) -> typing.Optional[Stats]:
        """Sends now; with `wait` (seconds), blocks until that flush is over and returns
        the stats."""
        if wait is None:
            self._client.flush()
            return None
        return self._client.flush_blocking(_millis(wait))

    def reset(self) -> None:
        self._client.reset()

    def opt_out(self) -> None:
        self._client.opt_out()

    def opt_in(self) -> None:
        self._client.opt_in()

    @property
    def opted_out(self) -> bool:
        return self._client.is_opted_out()

    def set_device_conditions(self, conditions: DeviceConditions) -> None:
        self._client.set_device_conditions(conditions)

    def app_foregrounded(self) -> None:
        self._client.app_foregrounded()

    def app_backgrounded(self) -> None:
        self._client.app_backgrounded()

    @property
    def anonymous_id(self) -> str:
        return self._client.anonymous_id()

    @property
    def user_id(self) -> typing.Optional[str]:
        return self._client.user_id()

    def stats(self) -> Stats:
        return self._client.stats()

    def invalid_calls(self) -> int:
        return self._client.invalid_calls()

    def shutdown(self, timeout: float = 2.0) -> None:
        self._client.shutdown(_millis(timeout))

    def __enter__(self) -> "Trailhound":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
