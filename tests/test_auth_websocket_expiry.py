"""A websocket session ends with its token: the first client message after ``exp`` closes it.

In-process with a controlled clock (what the app and the client each see), then over a real
uvicorn server with a token that expires two seconds after the handshake.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from agentos_mw.auth import JWTMiddleware
from agentos_mw.auth import session as session_module
from tests.driver import http_scope
from tests.test_auth_common import SECRET, bearer, claims, mint
from tests.uvicorn_thread import serving

EXPIRES = 1_000_000.0


class Echo:
    """Echoes text until the client leaves; records how the session ended for the app."""

    def __init__(self) -> None:
        self.ended: str | None = None
        self.late_send_error: str | None = None

    async def endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect as exc:
            self.ended = f"disconnect {exc.code}"
        try:  # an app pushing after the close must get the usual disconnect, not a crash
            await websocket.send_text("late")
        except (WebSocketDisconnect, RuntimeError) as exc:
            self.late_send_error = type(exc).__name__

    def app(self, **options: Any) -> JWTMiddleware:
        starlette = Starlette(routes=[WebSocketRoute("/ws", self.endpoint)])
        options.setdefault("verification_keys", [SECRET])
        return JWTMiddleware(starlette, **options)


async def run_session(
    app: Any, token: str, script: Iterable[tuple[float, str]], clock: SimpleNamespace
) -> list[dict[str, Any]]:
    """Connect, then send each text at its clock time; return what the server was told.
    ``script`` is read lazily: a generator may change the world between two messages."""
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await incoming.put({"type": "websocket.connect"})
    sent: list[dict[str, Any]] = []
    pending = iter(script)

    async def receive() -> dict[str, Any]:
        if incoming.empty():
            step = next(pending, None)
            if step is None:
                return {"type": "websocket.disconnect", "code": 1000}
            at, text = step
            clock.now = at
            return {"type": "websocket.receive", "text": text}
        return await incoming.get()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope(type="websocket", path="/ws", headers=bearer(token))
    await app(scope, receive, send)
    return sent


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    fake = SimpleNamespace(now=EXPIRES - 100)
    monkeypatch.setattr(session_module, "time", SimpleNamespace(time=lambda: fake.now))
    return fake


def token_expiring_at(exp: float) -> str:
    return mint(claims(exp=int(exp)))


@pytest.mark.anyio
async def test_first_client_message_after_expiry_closes_the_session(
    clock: SimpleNamespace,
) -> None:
    echo = Echo()
    token = mint(claims())  # valid now; the session clock is then moved past its exp
    exp = float(claims()["exp"])
    sent = await run_session(
        echo.app(leeway=5),
        token,
        [(exp - 10, "before"), (exp + 4, "within leeway"), (exp + 6, "after")],
        clock,
    )
    assert [m["type"] for m in sent] == [
        "websocket.accept",
        "websocket.send",
        "websocket.send",
        "websocket.close",
    ]
    assert [m.get("text") for m in sent[1:3]] == ["before", "within leeway"]
    assert sent[-1] == {"type": "websocket.close", "code": 1008, "reason": "Token expired"}
    assert echo.ended == "disconnect 1008"
    assert (
        echo.late_send_error is not None
    )  # Starlette's own disconnect, nothing reaches the client


@pytest.mark.anyio
async def test_expiry_can_be_turned_off(clock: SimpleNamespace) -> None:
    echo = Echo()
    exp = float(claims()["exp"])
    sent = await run_session(
        echo.app(websocket_expiry=False), mint(claims()), [(exp + 3600, "late")], clock
    )
    assert next(m.get("text") for m in sent if m["type"] == "websocket.send") == "late"
    assert echo.ended == "disconnect 1000"  # the client's own goodbye, not an expiry
    assert not any(m["type"] == "websocket.close" for m in sent)


@pytest.mark.anyio
async def test_tokens_without_exp_never_expire_a_session(
    clock: SimpleNamespace,
) -> None:
    echo = Echo()
    payload = claims()
    del payload["exp"]
    sent = await run_session(
        echo.app(required_claims=[]), mint(payload), [(EXPIRES * 10, "no exp")], clock
    )
    assert next(m.get("text") for m in sent if m["type"] == "websocket.send") == "no exp"
    assert echo.ended == "disconnect 1000"


class Revocations:
    """A revocation check whose answer the test flips; counts how often it is asked."""

    def __init__(self) -> None:
        self.revoked = False
        self.fail = False
        self.calls = 0

    async def __call__(self, claims: dict[str, Any]) -> bool:
        self.calls += 1
        if self.fail:
            raise ConnectionError("revocation store down")
        return self.revoked


@pytest.mark.anyio
async def test_a_revoked_token_closes_the_session_at_the_next_recheck(
    clock: SimpleNamespace,
) -> None:
    echo, revocations = Echo(), Revocations()
    start = clock.now
    app = echo.app(revocation_check=revocations, websocket_recheck_interval=30)

    def script() -> Iterator[tuple[float, str]]:
        yield (start + 1, "before")
        revocations.revoked = True  # revoked after the handshake and the first message
        yield (start + 10, "within the interval: not re-checked yet")
        yield (start + 31, "after")

    sent = await run_session(app, mint(claims()), script(), clock)
    texts = [m.get("text") for m in sent if m["type"] == "websocket.send"]
    assert texts == ["before", "within the interval: not re-checked yet"]
    assert sent[-1] == {"type": "websocket.close", "code": 1008, "reason": "Token has been revoked"}
    assert echo.ended == "disconnect 1008"
    assert revocations.calls == 2  # the handshake, then one re-check 30 s later


@pytest.mark.anyio
async def test_a_failing_revocation_store_keeps_an_open_session(
    clock: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    echo, revocations = Echo(), Revocations()
    start = clock.now
    app = echo.app(revocation_check=revocations, websocket_recheck_interval=5)

    def script() -> Iterator[tuple[float, str]]:
        yield (start + 1, "one")
        revocations.fail = True
        yield (start + 6, "two")

    with caplog.at_level("ERROR", logger="agentos_mw.auth"):
        sent = await run_session(app, mint(claims()), script(), clock)
    assert [m.get("text") for m in sent if m["type"] == "websocket.send"][:2] == ["one", "two"]
    assert echo.ended == "disconnect 1000"
    assert "websocket kept open" in caplog.text


def test_option_type_is_checked() -> None:
    with pytest.raises(TypeError, match="websocket_expiry"):
        Echo().app(websocket_expiry="yes")
    for bad in (0, -1, True, "30", float("nan")):
        with pytest.raises(ValueError, match="websocket_recheck_interval"):
            Echo().app(websocket_recheck_interval=bad)


websockets = pytest.importorskip("websockets")


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    with serving(Echo().app(leeway=0)) as (_server, port):
        yield port


def test_a_real_server_closes_the_session_when_the_token_expires(server_port: int) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async def main() -> None:
        exp = int(time.time()) + 2
        token = token_expiring_at(exp)
        async with connect(
            f"ws://127.0.0.1:{server_port}/ws",
            additional_headers={"authorization": f"Bearer {token}"},
        ) as ws:
            await ws.send("still valid")
            assert await asyncio.wait_for(ws.recv(), 5) == "still valid"
            await asyncio.sleep(max(0.0, exp - time.time()) + 0.2)
            await ws.send("expired")
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "Token expired")

    asyncio.run(main())
