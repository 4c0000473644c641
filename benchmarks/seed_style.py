"""The same features written as BaseHTTPMiddleware, the way the AgentOS docs' recipes write them.

These are the comparison points for ``secure_stack()``: per-IP rate limiting with a dict of
deques, request logging that times ``call_next``, a request-id header and security headers set on
the response object. Written here for the benchmark; they are not part of the library.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict, deque
from typing import Any

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("benchmarks.seed_style")


class SeedRateLimit(BaseHTTPMiddleware):
    def __init__(self, app: Any, requests_per_minute: int = 10**9) -> None:
        super().__init__(app)
        self.limit = requests_per_minute
        self.history: dict[str, deque[float]] = defaultdict(deque)

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        ip = request.client.host if request.client else "unknown"
        now = time.time()
        seen = self.history[ip]
        while seen and now - seen[0] > 60:
            seen.popleft()
        if len(seen) >= self.limit:
            return JSONResponse({"detail": "Rate limit exceeded"}, status_code=429)
        seen.append(now)
        response = await call_next(request)
        response.headers["X-RateLimit-Limit"] = str(self.limit)
        response.headers["X-RateLimit-Remaining"] = str(self.limit - len(seen))
        return response


class SeedLogging(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        start = time.time()
        response = await call_next(request)
        duration = time.time() - start
        log.info(
            "%s %s -> %s in %.4fs", request.method, request.url.path, response.status_code, duration
        )
        response.headers["X-Process-Time"] = f"{duration:.4f}"
        return response


class SeedRequestID(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = request_id
        response = await call_next(request)
        response.headers["X-Request-ID"] = request_id
        return response


class SeedSecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
        return response
