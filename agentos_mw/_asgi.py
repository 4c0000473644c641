"""Shared ASGI plumbing: types, header helpers, the one error responder, send wrapping.

Every middleware in the package answers rejections through :func:`send_error` so that the
body shape (``{"detail": ...}``), headers and websocket denial behave the same everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

#: ``websocket.close`` code for a policy violation (RFC 6455 §7.4.1).
WS_POLICY_VIOLATION = 1008

_ERROR_BODY_CACHE: dict[str, bytes] = {}
_ERROR_BODY_CACHE_MAX = 256


def header_values(scope: Scope, name: bytes) -> list[bytes]:
    """All values of request header ``name`` (lowercase bytes, as ASGI servers deliver them)."""
    return [value for key, value in scope.get("headers") or () if key == name]


def first_header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of request header ``name``, or ``None``."""
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value)
    return None


def checked_method(scope: Scope) -> str | None:
    """The method an access check applies to: the HTTP method, ``"GET"`` for a websocket
    handshake, or ``None`` when the scope passes unchecked (lifespan, and CORS preflights, which
    carry no credentials by design)."""
    scope_type = scope["type"]
    if scope_type == "http":
        method: str = scope["method"]
        if method == "OPTIONS" and first_header(scope, b"access-control-request-method"):
            return None
        return method
    if scope_type == "websocket":
        return "GET"
    return None


def get_state(scope: Scope) -> dict[str, Any]:
    """``scope["state"]``, created when absent; Starlette exposes it as ``request.state``."""
    state = scope.get("state")
    if state is None:
        state = scope["state"] = {}
    return state


def is_safe_header_value(value: bytes) -> bool:
    """True when ``value`` may be sent as a header value: no CR, LF or NUL, no leading space."""
    return not (13 in value or 10 in value or 0 in value)  # CR, LF, NUL


def latin1_header(value: str) -> bytes | None:
    """Encode a header value built from user data, or ``None`` when it cannot be sent safely."""
    try:
        encoded = value.encode("latin-1")
    except UnicodeEncodeError:
        return None
    return encoded if is_safe_header_value(encoded) else None


def error_body(detail: str) -> bytes:
    """The JSON body ``{"detail": detail}``; fixed messages are encoded once and reused."""
    body = _ERROR_BODY_CACHE.get(detail)
    if body is None:
        body = json.dumps({"detail": detail}).encode()
        if len(_ERROR_BODY_CACHE) < _ERROR_BODY_CACHE_MAX:
            _ERROR_BODY_CACHE[detail] = body
    return body


async def send_error(
    scope: Scope,
    send: Send,
    status: int,
    detail: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer the request with ``status`` and ``{"detail": detail}``.

    For websockets the handshake is denied with the ``websocket.http.response`` extension when the
    server offers it (the client then sees the real status and body), else closed with 1008.
    ``detail`` must be a fixed message: never library exception text or configuration values.
    """
    body = error_body(detail)
    response_headers: RawHeaders = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    if scope["type"] == "websocket":
        if "websocket.http.response" in (scope.get("extensions") or {}):
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": response_headers,
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION, "reason": ""})
        return
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})


def add_response_headers(message: Message, extra: Iterable[tuple[bytes, bytes]]) -> None:
    """Append ``extra`` to an ``http.response.start`` message's headers (a new list, never in place
    on a tuple the app may reuse)."""
    message["headers"] = [*message.get("headers", ()), *extra]


def on_response_start(send: Send, callback: Callable[[Message], None]) -> Send:
    """Wrap ``send`` so ``callback`` can edit the ``http.response.start`` message; every other
    message, body chunks included, is forwarded unchanged and unbuffered."""

    async def send_wrapper(message: Message) -> None:
        if message["type"] == "http.response.start":
            callback(message)
        await send(message)

    return send_wrapper
