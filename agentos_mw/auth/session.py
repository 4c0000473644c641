"""Websocket sessions end with their token: no client message is delivered past ``exp``.

The handshake is authenticated once, but a websocket can stay open for hours. When the client
sends a message after the token's expiry (plus the verifier's leeway), the message is dropped,
the connection is closed with code 1008 ("Token expired") and the app receives
``websocket.disconnect``; the client reconnects with a fresh token. What the server pushes on
its own (an agent run it was already streaming) is not cut, as with a streamed HTTP response.
"""

from __future__ import annotations

import time
from typing import Any

from .._asgi import Message, Receive, Send

CLOSE_CODE = 1008
CLOSE_REASON = "Token expired"


def deadline_of(claims: dict[str, Any], leeway: float) -> float | None:
    """When a session authenticated by ``claims`` ends (epoch seconds), or None without ``exp``."""
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        return float(exp) + leeway
    return None


class SessionExpired(OSError):
    """Raised by ``send`` after the session was closed for expiry, as servers raise an
    ``OSError`` for a closed connection (Starlette turns it into ``WebSocketDisconnect``)."""


class ExpiringSession:
    """``receive``/``send`` for a websocket app that close the session at the first client
    message arriving after ``deadline``."""

    __slots__ = ("_receive", "_send", "deadline", "expired")

    def __init__(self, receive: Receive, send: Send, deadline: float) -> None:
        self._receive = receive
        self._send = send
        self.deadline = deadline
        self.expired = False

    async def receive(self) -> Message:
        if self.expired:
            return {"type": "websocket.disconnect", "code": CLOSE_CODE}
        message = await self._receive()
        if message["type"] == "websocket.receive" and time.time() > self.deadline:
            self.expired = True
            await self._send(
                {"type": "websocket.close", "code": CLOSE_CODE, "reason": CLOSE_REASON}
            )
            return {"type": "websocket.disconnect", "code": CLOSE_CODE}
        return message

    async def send(self, message: Message) -> None:
        if self.expired:
            if message["type"] == "websocket.close":
                return  # already closed: the app's own close after the disconnect is a no-op
            raise SessionExpired("websocket session closed: token expired")
        await self._send(message)
