"""Request IDs, access logs and Prometheus metrics: pure ASGI, streaming-aware."""

from __future__ import annotations

from .access_log import AccessLogMiddleware
from .metrics import MetricsMiddleware, metrics_app
from .request_id import RequestIDLogFilter, RequestIDMiddleware, get_request_id

__all__ = [
    "AccessLogMiddleware",
    "MetricsMiddleware",
    "RequestIDLogFilter",
    "RequestIDMiddleware",
    "get_request_id",
    "metrics_app",
]
