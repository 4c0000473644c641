"""Writing your own pure-ASGI middleware with agentos_mw's helpers.

The AgentOS docs write request logging and rate limiting as ``BaseHTTPMiddleware`` subclasses:
that costs ~85 µs per layer (benchmarks/bench_baseline.py) and times only until the first byte
of a streamed run. The same two ideas as plain ASGI classes, measuring the whole stream and
answering errors in the shared ``{"detail": ...}`` shape.

Run:  uvicorn examples.custom_middleware:app --port 8000
Try:  curl -i http://127.0.0.1:8000/agents          (x-process-time header; log line on stderr)
      for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code} ' http://127.0.0.1:8000/agents; done
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentos_mw import ClientIPResolver, on_response_start, route_path, send_error
from agentos_mw.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("example.requests")


class RequestTimingMiddleware:
    """Logs method, path, status and the duration up to the LAST body chunk."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan and websockets pass untouched
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        def stamp(message: Message) -> None:
            nonlocal status
            status = message["status"]
            elapsed = f"{(time.perf_counter() - started) * 1000:.2f}ms".encode()
            message["headers"] = [*message.get("headers", ()), (b"x-process-time", elapsed)]

        try:
            await self.app(scope, receive, on_response_start(send, stamp))
        finally:
            total = (time.perf_counter() - started) * 1000
            log.info("%s %r -> %s in %.2f ms", scope["method"], route_path(scope), status, total)


class FixedWindowLimit:
    """At most ``per_minute`` requests per client per calendar minute, memory bounded.

    For production use agentos_mw.RateLimitMiddleware (GCRA, Redis, IETF headers); this shows
    the shape: decide before calling the app, reject through the shared error responder.
    """

    def __init__(self, app: ASGIApp, per_minute: int = 5, max_clients: int = 10_000) -> None:
        self.app = app
        self.per_minute = per_minute
        self.max_clients = max_clients
        self.client_ip = ClientIPResolver()  # pass trusted_proxies=[...] behind a proxy
        self.counts: OrderedDict[tuple[str, int], int] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = (self.client_ip(scope) or "unknown", int(time.time() // 60))
        count = self.counts.pop(key, 0) + 1
        self.counts[key] = count  # most recent last
        while len(self.counts) > self.max_clients:
            self.counts.popitem(last=False)
        if count > self.per_minute:
            retry_after = str(60 - int(time.time()) % 60).encode()
            await send_error(
                scope, send, 429, "Rate limit exceeded", [(b"retry-after", retry_after)]
            )
            return
        await self.app(scope, receive, send)


async def agents(request: Request) -> Response:
    return JSONResponse([{"id": "a1"}])


logging.basicConfig(level=logging.INFO)
app = FixedWindowLimit(RequestTimingMiddleware(Starlette(routes=[Route("/agents", agents)])))
