"""A real server: uvicorn with ``lifespan="on"`` serving the complete stack on loopback.

Startup and shutdown handlers run (a middleware touching lifespan would make uvicorn skip them
silently), requests are served and refused over real sockets, SSE streams arrive chunk by chunk,
the websocket handshake is authenticated, and the server shuts down cleanly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from agentos_mw import secure_stack
from tests.hostile.stack import Seen, good_token, make_app, stack_options
from tests.uvicorn_thread import serving

websockets = pytest.importorskip("websockets")


class Served:
    def __init__(self, seen: Seen, server: uvicorn.Server, port: int) -> None:
        self.seen = seen
        self.server = server
        self.base = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}/ws"


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    seen = Seen()
    inner = make_app(seen)
    app = Starlette(
        routes=inner.routes,
        middleware=secure_stack(**stack_options(CollectorRegistry())),
        lifespan=inner.router.lifespan_context,
    )
    with serving(app, lifespan="on") as (server, port):
        yield Served(seen, server, port)
    assert seen.shutdown == 1, "shutdown handler did not run"


def test_startup_ran_before_serving(served: Served) -> None:
    assert served.seen.startup == 1 and served.seen.shutdown == 0


def test_requests_are_served_and_refused(served: Served) -> None:
    token = good_token("alice")
    with httpx.Client(base_url=served.base, timeout=5) as client:
        ok = client.get("/agents", headers={"authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json() == {"user": "alice"}
        assert ok.headers["x-content-type-options"] == "nosniff"
        assert ok.headers["x-request-id"] and ok.headers["ratelimit-policy"]
        missing = client.get("/agents")
        assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith(
            "Bearer"
        )
        forged = client.get("/agents", headers={"authorization": "Bearer a.b.c"})
        assert forged.status_code == 401
        assert client.get("/health").status_code == 200
        preflight = client.options(
            "/agents",
            headers={"origin": "https://ui.example", "access-control-request-method": "GET"},
        )
        assert preflight.status_code == 200
        # hostile bytes on a real socket: h11 or the stack refuses them, the server stays up
        weird = client.get(
            "/agents", headers={"authorization": b"Bearer \xff\xfe", "x-request-id": b"\xe9"}
        )
        assert weird.status_code in (400, 401)
        assert client.get("/health").status_code == 200


def test_sse_arrives_chunk_by_chunk(served: Served) -> None:
    token = good_token("alice")
    with (
        httpx.Client(base_url=served.base, timeout=5) as client,
        client.stream(
            "POST", "/agents/a1/runs", headers={"authorization": f"Bearer {token}"}
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        events = [line for line in response.iter_lines() if line]
    assert events == ["data: 0", "data: 1", "data: 2"]


def test_websocket_handshake_is_authenticated(served: Served) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    async def main() -> None:
        token = good_token("alice")
        async with connect(
            served.ws, additional_headers={"authorization": f"Bearer {token}"}
        ) as ws:
            assert await asyncio.wait_for(ws.recv(), 5) == "hello"
        async with connect(f"{served.ws}?access_token={token}") as ws:
            assert await asyncio.wait_for(ws.recv(), 5) == "hello"
        for headers in ({}, {"authorization": "Bearer forged.token.sig"}):
            with pytest.raises(InvalidStatus) as denied:
                async with connect(served.ws, additional_headers=headers):
                    pass
            assert denied.value.response.status_code in (401, 403)
        weak = good_token("bob", ["agents:read"])  # no ws:connect scope: RBAC says 403
        with pytest.raises(InvalidStatus) as denied:
            async with connect(served.ws, additional_headers={"authorization": f"Bearer {weak}"}):
                pass
        assert denied.value.response.status_code == 403

    asyncio.run(main())
    assert served.seen.users.count(None) == 0


def test_many_concurrent_requests_leave_the_server_healthy(served: Served) -> None:
    token = good_token("carol")

    async def main() -> list[int]:
        async with httpx.AsyncClient(base_url=served.base, timeout=10) as client:

            async def one(i: int) -> int:
                headers: dict[str, Any] = {}
                if i % 3:
                    headers["authorization"] = f"Bearer {token}"
                return (await client.get("/agents", headers=headers)).status_code

            return await asyncio.gather(*(one(i) for i in range(150)))

    statuses = asyncio.run(main())
    assert sorted(set(statuses)) == [200, 401]
    assert statuses.count(401) == 50
