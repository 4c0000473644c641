"""Observability and hardening layers: µs/request each of ours adds, next to the alternatives.

All candidates wrap the same ``harness.make_app()`` and serve ``GET /agents`` (a JSON response).
Access records are *formatted* (the handler calls ``Formatter.format``) and then dropped, for
ours and for the BaseHTTPMiddleware logging recipe alike: we measure the middleware, not disk I/O.
"""

from __future__ import annotations

import logging
from typing import Any

from . import harness
from .seed_style import SeedLogging

# CI gate (quick mode): a ratio measured in the same run, robust to machine speed. The four
# layers together must cost well under one BaseHTTPMiddleware logging recipe; the issue's
# absolute budgets (GOALS_US) are checked and reported by the full run.
QUICK_GATE_FRACTION_OF_RECIPE = 0.4
FLOOR = "reference: pure ASGI + one logger.info() per request"
RECORD_FLOOR = "reference: pure ASGI + one cheapest stdlib record per request"
GOALS_US = {
    "RequestIDMiddleware": 3.0,
    "AccessLogMiddleware": 3.0,
    "MetricsMiddleware": 6.0,
    "SecurityHeadersMiddleware": 3.0,
    "all four (ours)": 10.0,
}


class FormatAndDrop(logging.Handler):
    """Formats every record (what a real handler must do) and writes it nowhere."""

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


def _sink(name: str) -> None:
    logger = logging.getLogger(name)
    logger.handlers[:] = [FormatAndDrop()]
    logger.propagate = False
    logger.setLevel(logging.INFO)


class LoggingFloor:
    """What any access log pays in the stdlib: a pure-ASGI layer that logs one formatted record
    (``logger.info``) after the app, and does nothing else."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.log = logging.getLogger("benchmarks.observability.floor")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
        self.log.info("%s %s", scope.get("method"), scope.get("path"))


class RecordFloor:
    """The least any access log that emits a stdlib record can cost: a pure-ASGI layer that,
    after the app, builds one record the cheapest way this package knows (no caller lookup, a
    constant message, no fields) and hands it to the logger. No timing, no wrapper, no text."""

    def __init__(self, app: Any) -> None:
        from agentos_mw.observability.records import make_record

        self.app = app
        self.log = logging.getLogger("benchmarks.observability.record_floor")
        self.make_record = make_record

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
        self.log.handle(self.make_record(self.log, logging.INFO, "-", None, {}))


def cases() -> dict[str, tuple[Any, dict[str, Any]]]:
    from asgi_correlation_id import CorrelationIdMiddleware
    from prometheus_client import CollectorRegistry
    from secure import Secure
    from secure.middleware import SecureASGIMiddleware
    from starlette_exporter import PrometheusMiddleware

    from agentos_mw.headers import SecurityHeadersMiddleware
    from agentos_mw.observability import (
        AccessLogMiddleware,
        MetricsMiddleware,
        RequestIDMiddleware,
    )

    _sink("agentos_mw.access")
    _sink("benchmarks.seed_style")
    _sink("benchmarks.observability.floor")
    _sink("benchmarks.observability.record_floor")
    scope = harness.make_scope("GET", "/agents")
    app = harness.make_app
    together = SecurityHeadersMiddleware(
        RequestIDMiddleware(
            AccessLogMiddleware(MetricsMiddleware(app(), registry=CollectorRegistry()))
        )
    )
    return {
        "baseline (no middleware)": (app(), scope),
        "RequestIDMiddleware": (RequestIDMiddleware(app()), scope),
        "AccessLogMiddleware": (AccessLogMiddleware(app()), scope),
        "MetricsMiddleware": (MetricsMiddleware(app(), registry=CollectorRegistry()), scope),
        "SecurityHeadersMiddleware": (SecurityHeadersMiddleware(app()), scope),
        "all four (ours)": (together, scope),
        FLOOR: (LoggingFloor(app()), scope),
        RECORD_FLOOR: (RecordFloor(app()), scope),
        "seed logging recipe (BaseHTTPMiddleware)": (SeedLogging(app()), scope),
        "asgi-correlation-id CorrelationIdMiddleware": (CorrelationIdMiddleware(app()), scope),
        "secure SecureASGIMiddleware": (
            SecureASGIMiddleware(app(), secure=Secure.with_default_headers()),
            scope,
        ),
        "starlette-exporter PrometheusMiddleware": (PrometheusMiddleware(app()), scope),
    }


def run(quick: bool) -> tuple[str, list[str]]:
    rows = harness.compare(
        cases(),
        baseline="baseline (no middleware)",
        rounds=15 if quick else 40,
        batch=200 if quick else 400,
    )
    seed = rows["seed logging recipe (BaseHTTPMiddleware)"]
    lines = [
        harness.table(rows, "Observability and security headers (GET /agents, JSON)"),
        "",
        "| ours | µs added | goal | vs seed logging recipe |",
        "|---|---:|---:|---:|",
    ]
    for name, goal in GOALS_US.items():
        row = rows[name]
        ratio = seed.added_us / row.added_us if row.added_us > 0 else float("inf")
        mark = "ok" if row.added_us <= goal else "over"
        lines.append(
            f"| {name} | {row.added_us:+.1f} | ≤ {goal:.0f} ({mark}) | {ratio:.0f}× less |"
        )
    lines += [
        "",
        "Measured: in-process µs/request on harness.make_app() (`GET /agents`), interleaved rounds; "
        "access records formatted by a handler and dropped (no I/O); each metrics case on its own "
        "CollectorRegistry (starlette-exporter on the global one).",
    ]
    floor = rows[FLOOR].added_us
    record_floor = rows[RECORD_FLOOR].added_us
    together = rows["all four (ours)"].added_us
    access = rows["AccessLogMiddleware"].added_us
    lines.append(
        f"Stdlib logging floors: one `logger.info()` per request {floor:+.1f} µs; one record built "
        f"without a caller lookup, constant message, handed to the same handler {record_floor:+.1f} µs "
        f"(the least any access log on stdlib logging can add). AccessLogMiddleware above that: "
        f"{access - record_floor:+.1f} µs; the four together above it: {together - record_floor:+.1f} µs."
    )
    failures = []
    if quick:
        if together > QUICK_GATE_FRACTION_OF_RECIPE * seed.added_us:
            failures.append(
                f"observability: the four together add {together:.1f} µs, more than "
                f"{QUICK_GATE_FRACTION_OF_RECIPE:.0%} of the BaseHTTPMiddleware logging recipe "
                f"({seed.added_us:.1f} µs) measured in the same run"
            )
    else:
        for name, goal in GOALS_US.items():
            if rows[name].added_us > goal:
                failures.append(
                    f"observability: {name} adds {rows[name].added_us:.1f} µs (issue goal ≤ {goal:.0f} µs)"
                )
    return "\n".join(lines), failures
