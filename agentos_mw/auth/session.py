"""Websocket sessions end with their token: no client message is delivered past ``exp``, nor
after the token was revoked.

The handshake is authenticated once, but a websocket can stay open for hours. When the client
sends a message after the token's expiry (plus the verifier's leeway), the message is dropped,
the connection is closed with code 1008 ("Token expired") and the app receives
``websocket.disconnect``; the client reconnects with a fresh token. With a revocation check
configured, client messages also re-ask it, at most once per ``recheck_interval`` seconds, and a
revoked token closes the session the same way ("Token has been revoked"). A failing check keeps
the session open (it was valid at the handshake; the failure is logged).

What the server pushes on its own (an agent run it was already streaming) is not cut, as with
a streamed HTTP response.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .._asgi import Message, Receive, Send
from . import errors

logger = logging.getLogger("agentos_mw.auth")

CLOSE_CODE = 1008
CLOSE_REASON = "Token expired"

StillValid = Callable[[], Awaitable[bool]]


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
    message arriving after ``deadline`` or, every ``recheck_interval`` seconds, once
    ``still_valid()`` says the token was revoked."""

    __slots__ = (
        "_receive",
        "_send",
        "deadline",
        "expired",
        "next_check",
        "recheck_interval",
        "still_valid",
    )

    def __init__(
        self,
        receive: Receive,
        send: Send,
        deadline: float | None,
        still_valid: StillValid | None = None,
        recheck_interval: float = 30.0,
    ) -> None:
        self._receive = receive
        self._send = send
        self.deadline = deadline
        self.still_valid = still_valid
        self.recheck_interval = recheck_interval
        self.next_check = time.time() + recheck_interval
        self.expired = False

    async def receive(self) -> Message:
        if self.expired:
            return {"type": "websocket.disconnect", "code": CLOSE_CODE}
        message = await self._receive()
        if message["type"] == "websocket.receive":
            now = time.time()
            if self.deadline is not None and now > self.deadline:
                return await self._close(CLOSE_REASON)
            if self.still_valid is not None and now >= self.next_check:
                self.next_check = now + self.recheck_interval
                if not await self._check():
                    return await self._close(errors.REVOKED)
        return message

    async def send(self, message: Message) -> None:
        if self.expired:
            if message["type"] == "websocket.close":
                return  # already closed: the app's own close after the disconnect is a no-op
            raise SessionExpired("websocket session closed: token expired or revoked")
        await self._send(message)

    async def _check(self) -> bool:
        assert self.still_valid is not None
        try:
            return await self.still_valid()
        except Exception as exc:  # the session was valid at the handshake: keep it open
            logger.error("revocation_check failed (%s); websocket kept open", type(exc).__name__)
            return True

    async def _close(self, reason: str) -> Message:
        self.expired = True
        await self._send({"type": "websocket.close", "code": CLOSE_CODE, "reason": reason})
        return {"type": "websocket.disconnect", "code": CLOSE_CODE}
