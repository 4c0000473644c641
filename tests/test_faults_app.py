"""App-side faults through the complete stack: the app's exception comes out unchanged, the stack
never sends a response start of its own after the app's, the exception is logged once, and the
access log and the metrics record what really happened."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agentos_mw._asgi import ASGIApp, Message
from tests.driver import http_scope
from tests.hostile.stack import good_token, wrap

TOKEN = good_token("alice")
AUTH = [(b"authorization", f"Bearer {TOKEN}".encode())]


class Boom(Exception):
    pass


def statuses(registry: CollectorRegistry) -> dict[str, float]:
    """``http_requests_total`` summed per status label."""
    out: dict[str, float] = {}
    for metric in registry.collect():
        if metric.name == "http_requests":
            for sample in metric.samples:
                if sample.name == "http_requests_total":
                    label = sample.labels["status"]
                    out[label] = out.get(label, 0) + sample.value
    return out


class Server:
    """A server stand-in: records what reaches it, can disconnect and can fail ``send``."""

    def __init__(
        self,
        *,
        disconnect_after_chunks: int | None = None,
        send_fails_after_chunks: int | None = None,
        second_start_raises: bool = True,
    ) -> None:
        self.messages: list[Message] = []
        self.chunks = 0
        self.disconnect_after = disconnect_after_chunks
        self.fail_after = send_fails_after_chunks
        self.second_start_raises = second_start_raises
        self._gone = asyncio.Event()
        self._requested = False

    async def receive(self) -> Message:
        if not self._requested:
            self._requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.fail_after is not None and self.chunks >= self.fail_after:
            raise OSError("client went away")  # what uvicorn's ClientDisconnected is
        if message["type"] == "http.response.start" and any(
            m["type"] == "http.response.start" for m in self.messages
        ):
            self.messages.append(message)
            if self.second_start_raises:  # uvicorn and hypercorn raise on a second start
                raise RuntimeError("Expected ASGI message 'http.response.body'")
            return
        self.messages.append(message)
        if message["type"] == "http.response.body":
            self.chunks += 1
            if self.disconnect_after is not None and self.chunks >= self.disconnect_after:
                self._gone.set()
            if not message.get("more_body", False):
                self._gone.set()

    @property
    def starts(self) -> list[Message]:
        return [m for m in self.messages if m["type"] == "http.response.start"]


def streaming_app(
    chunks: int = 3, fail_at: int | None = None, wait_for_disconnect: bool = False
) -> ASGIApp:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for i in range(chunks):
            if i == fail_at:
                raise Boom("mid-stream")
            await send(
                {"type": "http.response.body", "body": b"data: %d\n\n" % i, "more_body": True}
            )
            if wait_for_disconnect:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # a well-behaved app stops when the client is gone
        await send({"type": "http.response.body", "body": b""})

    return app


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> Callable[[], list[logging.LogRecord]]:
    caplog.set_level(logging.INFO, logger="agentos_mw")
    return lambda: [r for r in caplog.records if r.name == "agentos_mw.access"]


def run(app: ASGIApp, server: Server, path: str = "/agents") -> None:
    asyncio.run(
        asyncio.wait_for(app(http_scope("GET", path, AUTH), server.receive, server.send), 5)
    )


def exc_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info]


def test_exception_before_the_response_starts(
    access: Callable[[], list[logging.LogRecord]], caplog: pytest.LogCaptureFixture
) -> None:
    error = Boom("before start")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise error

    registry = CollectorRegistry()
    server = Server()
    with pytest.raises(Boom) as raised:
        run(wrap(app, registry), server)
    assert raised.value is error  # not wrapped, not replaced
    assert server.messages == []  # the server answers 500 itself; the stack sends nothing
    (record,) = access()
    assert record.levelno == logging.ERROR and record.access["status"] == 500  # type: ignore[attr-defined]
    assert record.access["exception"] == "Boom"  # type: ignore[attr-defined]
    assert [r.exc_info[1] for r in exc_records(caplog)] == [error]  # type: ignore[index]
    assert statuses(registry) == {"5xx": 1}


@pytest.mark.parametrize("fail_at", [0, 2], ids=["after-start", "mid-stream"])
def test_exception_after_the_response_started(
    fail_at: int, access: Callable[[], list[logging.LogRecord]], caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    server = Server()
    with pytest.raises(Boom):
        run(wrap(streaming_app(fail_at=fail_at), registry), server)
    assert len(server.starts) == 1 and server.starts[0]["status"] == 200
    assert server.chunks == fail_at  # what the app sent got through, nothing was added
    (record,) = access()
    assert record.levelno == logging.ERROR and record.access["exception"] == "Boom"  # type: ignore[attr-defined]
    assert record.access["status"] == 200 and record.access["disconnected"] is False  # type: ignore[attr-defined]
    assert len(exc_records(caplog)) == 1
    # the client got a 200 header and a truncated body: that is a server error, not a success
    assert statuses(registry) == {"5xx": 1}


def test_client_disconnect_mid_stream(access: Callable[[], list[logging.LogRecord]]) -> None:
    registry = CollectorRegistry()
    server = Server(disconnect_after_chunks=1)
    run(wrap(streaming_app(chunks=100, wait_for_disconnect=True), registry), server)
    assert server.chunks == 1 and len(server.starts) == 1
    (record,) = access()
    assert record.levelno == logging.INFO and record.exc_info is None
    assert record.access["disconnected"] is True and record.access["status"] == 200  # type: ignore[attr-defined]
    assert statuses(registry) == {"499": 1}


def test_send_raising_after_disconnect_propagates_as_a_disconnect(
    access: Callable[[], list[logging.LogRecord]], caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    server = Server(send_fails_after_chunks=1)
    with pytest.raises(OSError, match="client went away"):
        run(wrap(streaming_app(chunks=5), registry), server)
    (record,) = access()
    assert record.levelno == logging.INFO and record.exc_info is None  # not an app error
    assert record.access["disconnected"] is True  # type: ignore[attr-defined]
    assert exc_records(caplog) == []
    assert statuses(registry) == {"499": 1}


def test_disconnect_before_the_response(access: Callable[[], list[logging.LogRecord]]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            server._gone.set()

    registry = CollectorRegistry()
    server = Server()
    run(wrap(app, registry), server)
    assert server.messages == []
    (record,) = access()
    assert record.access["status"] == 499 and record.access["disconnected"] is True  # type: ignore[attr-defined]
    assert statuses(registry) == {"499": 1}


@pytest.mark.parametrize("server_raises", [True, False])
def test_second_response_start_from_the_app(
    server_raises: bool,
    access: Callable[[], list[logging.LogRecord]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    registry = CollectorRegistry()
    server = Server(second_start_raises=server_raises)
    if server_raises:
        with pytest.raises(RuntimeError, match="Expected ASGI message"):
            run(wrap(app, registry), server)
        assert len(exc_records(caplog)) == 1
    else:
        run(wrap(app, registry), server)
    # the app's two starts reach the server as sent; the stack adds none of its own
    assert [m["status"] for m in server.starts] == [200, 500]
    assert len(access()) == 1


def test_rejected_request_never_reaches_the_app_and_has_one_start(
    access: Callable[[], list[logging.LogRecord]],
) -> None:
    called = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope)

    registry = CollectorRegistry()
    server = Server()
    scope = http_scope("GET", "/agents", [(b"authorization", b"Bearer forged.token.x")])
    asyncio.run(wrap(app, registry)(scope, server.receive, server.send))
    assert called == [] and len(server.starts) == 1 and server.starts[0]["status"] == 401
    assert access()[0].access["status"] == 401  # type: ignore[attr-defined]
    assert statuses(registry) == {"4xx": 1}


def test_cancelled_request_task_is_a_disconnect(
    access: Callable[[], list[logging.LogRecord]],
) -> None:
    """Servers cancel the request task when the client is gone (uvicorn on lost connections)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await asyncio.sleep(10)

    registry = CollectorRegistry()
    server = Server()

    async def main() -> None:
        task = asyncio.ensure_future(
            wrap(app, registry)(http_scope("GET", "/agents", AUTH), server.receive, server.send)
        )
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    (record,) = access()
    assert record.access["disconnected"] is True and record.exc_info is None  # type: ignore[attr-defined]
    assert statuses(registry) == {"499": 1}
