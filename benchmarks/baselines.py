"""Reference layers every comparison needs: no-op BaseHTTPMiddleware and no-op pure-ASGI layers."""

from __future__ import annotations

from typing import Any

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response


class NoopBaseHTTP(BaseHTTPMiddleware):
    """The cheapest possible BaseHTTPMiddleware: what one such layer costs before doing anything."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        return await call_next(request)


class NoopPure:
    """The cheapest pure-ASGI layer that wraps send (as every header-adding middleware must)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Any) -> None:
            await send(message)

        await self.app(scope, receive, send_wrapper)


async def raw_app(scope: Any, receive: Any, send: Any) -> None:
    """A raw ASGI app: the floor under every figure."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


def wrap(app: Any, layer: Any, times: int) -> Any:
    for _ in range(times):
        app = layer(app)
    return app
