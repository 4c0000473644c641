"""A minimal in-process ASGI driver for tests: exact control over scope, messages and timing.

TestClient and httpx's ASGITransport hide details the middlewares care about (raw header bytes,
missing ``client``, message order, websocket denial), so tests drive apps through this instead.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentos_mw._asgi import ASGIApp, Message


@dataclass
class Result:
    messages: list[Message] = field(default_factory=list)

    @property
    def start(self) -> Message:
        for message in self.messages:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                return message
        raise AssertionError(f"no response start in {self.messages!r}")

    @property
    def status(self) -> int:
        return int(self.start["status"])

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(bytes(k), bytes(v)) for k, v in self.start.get("headers", [])]

    def header(self, name: str) -> str | None:
        key = name.lower().encode()
        for k, v in self.headers:
            if k == key:
                return v.decode("latin-1")
        return None

    def header_all(self, name: str) -> list[str]:
        key = name.lower().encode()
        return [v.decode("latin-1") for k, v in self.headers if k == key]

    @property
    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"")
            for m in self.messages
            if m["type"] in ("http.response.body", "websocket.http.response.body")
        )

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def starts(self) -> int:
        return sum(1 for m in self.messages if m["type"] == "http.response.start")


def http_scope(
    method: str = "GET",
    path: str = "/",
    headers: Iterable[tuple[bytes | str, bytes | str]] = (),
    *,
    query_string: bytes = b"",
    root_path: str = "",
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    scheme: str = "http",
    type: str = "http",
    **extra: Any,
) -> dict[str, Any]:
    raw = [
        (
            k.encode("latin-1") if isinstance(k, str) else k,
            v.encode("latin-1") if isinstance(v, str) else v,
        )
        for k, v in headers
    ]
    scope: dict[str, Any] = {
        "type": type,
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme if type == "http" else ("wss" if scheme == "https" else "ws"),
        "path": root_path + path,
        "raw_path": (root_path + path).encode("utf-8", "surrogateescape"),
        "root_path": root_path,
        "query_string": query_string,
        "headers": raw,
        "client": client,
        "server": ("testserver", 80),
        "extensions": {},
    }
    if type == "websocket":
        del scope["method"]
    scope.update(extra)
    return scope


async def call(app: ASGIApp, scope: dict[str, Any], body: bytes = b"") -> Result:
    """Run one request or websocket handshake and collect everything the app sends.

    Like a real server, ``receive`` blocks after the request body until the response is over
    (then reports ``http.disconnect``), so streaming responses are not cut short.
    """
    result = Result()
    sent_request = False
    finished = asyncio.Event()

    async def receive() -> Message:
        nonlocal sent_request
        if scope["type"] == "websocket":
            if not sent_request:
                sent_request = True
                return {"type": "websocket.connect"}
            return {"type": "websocket.disconnect", "code": 1000}
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        result.messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            finished.set()

    try:
        await app(scope, receive, send)
    finally:
        finished.set()
    return result
