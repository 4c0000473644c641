"""Prometheus metrics per route template, streaming-aware, on ``prometheus-client``.

Series (``prefix`` defaults to ``http``):

* ``<prefix>_requests_total{method,route,status}``: finished requests;
* ``<prefix>_request_duration_seconds{method,route,status}``: to the last body chunk;
* ``<prefix>_time_to_first_byte_seconds{method,route,status}``: to the first body byte;
* ``<prefix>_requests_in_progress``: requests currently running (multiprocess: ``livesum``).

Labels stay bounded whatever clients send: ``route`` is the matched route's template (or
``unmatched_label``), ``method`` is a known HTTP method or ``other``, ``status`` is a class
(``2xx``...), ``5xx`` when the app raised before its response completed (even after sending a
200 start), or ``499`` when the client went away before the response completed.
``prometheus_client`` is imported when the middleware is built, so ``agentos_mw`` imports without
the ``prometheus`` extra.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
import weakref
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

from .._asgi import ASGIApp, Message, Receive, Scope, Send, on_response_start
from ..paths import PathSet, route_path
from .route import RouteLabeler, route_template

_perf = time.perf_counter
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
_STATUS = {n: f"{n}xx" for n in range(1, 6)}
_CHILDREN_MAX = 10_000
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
_REQUESTS_DOC = "HTTP requests finished."
_DURATION_DOC = "Time from request start to the last response body chunk."
_TTFB_DOC = "Time from request start to the first response body byte."
_INSTALL = "MetricsMiddleware needs prometheus-client: pip install 'agentos-mw[prometheus]'"

# One set of collectors per (registry, prefix): Starlette may build the middleware stack more
# than once, and registering the same names twice in one registry is an error.
_collectors: weakref.WeakKeyDictionary[Any, dict[tuple[str, tuple[float, ...]], Any]] = (
    weakref.WeakKeyDictionary()
)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(_INSTALL) from exc
    return prometheus_client


class _Series:
    """One ``(method, route, status)`` series in single-process mode: plain numbers.

    Updated without a lock: the middleware runs on one event loop thread per process, and
    nothing awaits between the reads and writes of an update. (Several event loops in threads of
    one process sharing a registry could lose an increment now and then; prometheus-client's own
    metrics, used in multiprocess mode, lock every update.)
    """

    __slots__ = ("count", "created", "duration", "duration_sum", "ttfb", "ttfb_sum")

    def __init__(self, size: int) -> None:
        self.count = 0
        self.created = time.time()
        self.duration = [0] * size  # per bucket (not cumulative), +Inf last
        self.duration_sum = 0.0
        self.ttfb = [0] * size
        self.ttfb_sum = 0.0


class _LocalCollector:
    """Exposes the :class:`_Series` as prometheus-client metric families at scrape time, with
    the samples prometheus-client's ``Counter``/``Histogram`` would give (``_created`` too)."""

    def __init__(
        self, prefix: str, buckets: tuple[float, ...], series: dict[tuple[str, str, str], _Series]
    ) -> None:
        self._core = importlib.import_module("prometheus_client.metrics_core")
        self._metrics = importlib.import_module("prometheus_client.metrics")
        self._samples = importlib.import_module("prometheus_client.samples")
        go = importlib.import_module("prometheus_client.utils").floatToGoString
        self._le = (*(go(b) for b in buckets), "+Inf")
        self._series = series
        self._families = (
            (f"{prefix}_requests", _REQUESTS_DOC, "counter"),
            (f"{prefix}_request_duration_seconds", _DURATION_DOC, "histogram"),
            (f"{prefix}_time_to_first_byte_seconds", _TTFB_DOC, "histogram"),
        )

    def describe(self) -> list[Any]:
        return [self._core.Metric(name, doc, kind) for name, doc, kind in self._families]

    def collect(self) -> list[Any]:
        sample = self._samples.Sample
        created = self._metrics._use_created
        requests, duration, ttfb = self.describe()
        for (method, route, status), series in list(self._series.items()):
            labels = {"method": method, "route": route, "status": status}
            requests.samples.append(sample(requests.name + "_total", labels, float(series.count)))
            if created:
                requests.samples.append(sample(requests.name + "_created", labels, series.created))
            for family, counts, total in (
                (duration, series.duration, series.duration_sum),
                (ttfb, series.ttfb, series.ttfb_sum),
            ):
                name = family.name
                acc = 0.0
                for le, count in zip(self._le, list(counts), strict=True):
                    acc += count
                    family.samples.append(sample(name + "_bucket", {**labels, "le": le}, acc))
                family.samples.append(sample(name + "_count", labels, acc))
                family.samples.append(sample(name + "_sum", labels, total))
                if created:
                    family.samples.append(sample(name + "_created", labels, series.created))
        return [requests, duration, ttfb]


class _Collectors:
    def __init__(self, pc: Any, registry: Any, prefix: str, buckets: tuple[float, ...]) -> None:
        labels = ("method", "route", "status")
        values = importlib.import_module("prometheus_client.values")
        #: Single process: requests and timings are counted in plain :class:`_Series` read by
        #: :class:`_LocalCollector` at scrape time (no lock, no per-bucket loop per request);
        #: the gauge reads the length of ``in_flight`` (atomic append/pop, an order of magnitude
        #: cheaper than the gauge's locked ``inc``/``dec``). Multiprocess mode keeps
        #: prometheus-client's metrics throughout: the values must reach the shared files.
        self.local: dict[tuple[str, str, str], _Series] | None = None
        self.in_flight: list[None] | None = None
        self.buckets = buckets
        if values.ValueClass is values.MutexValue:
            self.local = {}
            registry.register(_LocalCollector(prefix, buckets, self.local))
        else:
            self.requests = pc.Counter(
                f"{prefix}_requests_total", _REQUESTS_DOC, labels, registry=registry
            )
            self.duration = pc.Histogram(
                f"{prefix}_request_duration_seconds",
                _DURATION_DOC,
                labels,
                buckets=buckets,
                registry=registry,
            )
            self.ttfb = pc.Histogram(
                f"{prefix}_time_to_first_byte_seconds",
                _TTFB_DOC,
                labels,
                buckets=buckets,
                registry=registry,
            )
        self.in_progress = pc.Gauge(
            f"{prefix}_requests_in_progress",
            "HTTP requests being handled.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        if self.local is not None:
            in_flight: list[None] = []
            self.in_progress.set_function(lambda: len(in_flight))
            self.in_flight = in_flight


def _get_collectors(pc: Any, registry: Any, prefix: str, buckets: tuple[float, ...]) -> Any:
    per_registry = _collectors.setdefault(registry, {})
    found = per_registry.get((prefix, buckets))
    if found is None:
        found = per_registry[(prefix, buckets)] = _Collectors(pc, registry, prefix, buckets)
    return found


def metrics_app(registry: Any = None, *, disable_compression: bool = False) -> ASGIApp:
    """An ASGI app serving the registry in the Prometheus text format (prometheus-client's own).

    With ``PROMETHEUS_MULTIPROC_DIR`` set and no registry given, it aggregates every worker.
    """
    pc = _prometheus()
    if registry is None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess = importlib.import_module("prometheus_client.multiprocess")
            registry = pc.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = pc.REGISTRY
    exposition: ASGIApp = pc.make_asgi_app(
        registry=registry, disable_compression=disable_compression
    )

    def lowercase(message: Message) -> None:
        message["headers"] = [(bytes(k).lower(), v) for k, v in message.get("headers") or ()]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # prometheus-client asserts on anything else
            return
        # prometheus-client sends "Content-Type"; ASGI servers and our contract want lowercase.
        await exposition(scope, receive, on_response_start(send, lowercase))

    return app


class MetricsMiddleware:
    """Count and time HTTP requests per method, route template and status class.

    ``registry``: a ``prometheus_client.CollectorRegistry`` (default: the global one).
    ``path``: serve the metrics at this route path (``GET``/``HEAD``; not itself measured).
    ``exclude_paths``: patterns not measured. ``routes``: templates for apps that do not record
    their routes in the scope (bare ASGI). ``buckets``: histogram buckets in seconds.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: Any = None,
        prefix: str = "http",
        path: str | None = None,
        exclude_paths: Iterable[str] = (),
        routes: Iterable[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        unmatched_label: str = "<unmatched>",
        disconnect_status: str = "499",
    ) -> None:
        pc = _prometheus()
        if registry is None:
            registry = pc.REGISTRY
        if not isinstance(prefix, str) or not prefix.replace("_", "a").isalnum():
            raise ValueError(f"invalid metric prefix: {prefix!r}")
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise ValueError("path must start with '/'")
        bucket_tuple = tuple(float(b) for b in buckets)
        if not bucket_tuple or list(bucket_tuple) != sorted(set(bucket_tuple)):
            raise ValueError("buckets must be a non-empty increasing sequence")
        self.app = app
        self.registry = registry
        self._m = _get_collectors(pc, registry, prefix, bucket_tuple)
        self._in_progress = self._m.in_progress
        self._in_flight: list[None] | None = self._m.in_flight
        self._local: dict[tuple[str, str, str], _Series] | None = self._m.local
        self._bounds = bucket_tuple
        self._route = RouteLabeler(routes, unmatched=unmatched_label)
        self._route_patterns = self._route.has_patterns
        self._unmatched = self._route.unmatched
        self.path = path.rstrip("/") or "/" if path else None
        self._metrics_app = metrics_app(registry) if path else None
        exclude = PathSet(exclude_paths)
        self._exclude: PathSet | None = exclude if len(exclude) else None
        self.disconnect_status = str(disconnect_status)
        self._children: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}

    def _new_series(self, key: tuple[str, str, str]) -> _Series:
        assert self._local is not None
        series = self._local[key] = _Series(len(self._bounds) + 1)
        return series

    def _series(self, method: str, route: str, status: str) -> tuple[Any, Any, Any]:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            if len(self._children) >= _CHILDREN_MAX:
                self._children.clear()  # cannot happen with bounded labels; a safety net
            m = self._m
            children = self._children[key] = (
                m.requests.labels(method, route, status),
                m.duration.labels(method, route, status),
                m.ttfb.labels(method, route, status),
            )
        return children

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._metrics_app is not None or self._exclude is not None:
            path = route_path(scope)
            if (
                self._metrics_app is not None
                and (path.rstrip("/") or "/") == self.path
                and scope.get("method") in ("GET", "HEAD")
            ):
                await self._metrics_app(scope, receive, send)
                return
            if self._exclude is not None and path in self._exclude:
                await self.app(scope, receive, send)
                return
        start = _perf()
        root_path: str = scope.get("root_path") or ""
        status = 0
        first = 0.0
        end = 0.0
        complete = False
        disconnected = False

        async def receive_wrapper() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect" and not complete:
                disconnected = True
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, first, end, complete, disconnected
            mtype = message["type"]
            if mtype == "http.response.start":
                status = message["status"]
            elif not first and (message.get("body") or not message.get("more_body", False)):
                first = _perf()
            try:
                await send(message)
            except OSError:
                disconnected = True
                raise
            if mtype != "http.response.start" and not message.get("more_body", False):
                end = _perf()
                complete = True

        in_flight = self._in_flight
        if in_flight is not None:
            in_flight.append(None)
        else:
            self._in_progress.inc()
        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                disconnected = True  # servers cancel the request task when the client is gone
            elif not complete and not disconnected:
                status = 500  # a started response cut short by the app's error failed: not a 2xx
            raise
        finally:
            if in_flight is not None:
                in_flight.pop()
            else:
                self._in_progress.dec()
            now = end if end and first else _perf()  # a clock read only when one is missing
            method = scope.get("method") or "GET"
            if method not in _METHODS:
                method = "other"
            if disconnected and not complete:
                label = self.disconnect_status
            else:
                label = _STATUS.get(status // 100) or ("other" if status else "5xx")
            if self._route_patterns:
                route = self._route(scope, root_path)
            else:  # RouteLabeler without patterns, one call instead of three
                template = route_template(scope, root_path)
                route = self._unmatched if template is None else template
            elapsed = (end or now) - start
            to_first = (first or now) - start
            local = self._local
            if local is not None:
                key = (method, route, label)
                series = local.get(key)
                if series is None:
                    series = self._new_series(key)
                series.count += 1
                series.duration[bisect_left(self._bounds, elapsed)] += 1
                series.duration_sum += elapsed
                series.ttfb[bisect_left(self._bounds, to_first)] += 1
                series.ttfb_sum += to_first
            else:
                total, duration, ttfb = self._series(method, route, label)
                total.inc()
                duration.observe(elapsed)
                ttfb.observe(to_first)
