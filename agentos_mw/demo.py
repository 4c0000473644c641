"""A demo agent API in AgentOS's shape, behind the full :func:`secure_stack`.

Used by ``agentos-mw demo``: agents, teams, workflows and sessions routes, an SSE run endpoint
and a websocket, so every layer (401, 403, 429, streaming, websocket auth) can be tried with curl.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from .stack import secure_stack

AGENTS = {"a1": "Web research agent", "a2": "Finance agent", "a3": "Support agent"}
TEAMS = {"t1": "Research team"}
WORKFLOWS = {"w1": "Daily digest"}
RUN_LIMIT = "3/minute"
EVENT_DELAY = 0.3  # seconds between streamed events, so curl -N shows them arrive

DEMO_USERS: dict[str, list[str]] = {
    "admin": ["agent_os:admin"],
    "reader": ["agents:read", "teams:read", "workflows:read", "sessions:read"],
    "runner": ["agents:a1:read", "agents:a1:run"],
}


def _visible(request: Request, items: dict[str, str]) -> list[dict[str, str]]:
    allowed = getattr(request.state, "accessible_resource_ids", None)
    return [
        {"id": key, "name": name}
        for key, name in items.items()
        if allowed is None or "*" in allowed or key in allowed
    ]


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def list_agents(request: Request) -> Response:
    return JSONResponse(_visible(request, AGENTS))


async def get_agent(request: Request) -> Response:
    agent_id = request.path_params["agent_id"]
    if agent_id not in AGENTS:
        return JSONResponse({"detail": "Agent not found"}, status_code=404)
    return JSONResponse({"id": agent_id, "name": AGENTS[agent_id]})


async def run_agent(request: Request) -> Response:
    agent_id = request.path_params["agent_id"]
    if agent_id not in AGENTS:
        return JSONResponse({"detail": "Agent not found"}, status_code=404)
    user = request.state.user_id

    async def events() -> AsyncIterator[bytes]:
        for step in ("thinking", "searching", "answering"):
            payload = json.dumps({"agent": agent_id, "user": user, "event": step})
            yield f"data: {payload}\n\n".encode()
            await asyncio.sleep(EVENT_DELAY)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def list_teams(request: Request) -> Response:
    return JSONResponse(_visible(request, TEAMS))


async def list_workflows(request: Request) -> Response:
    return JSONResponse(_visible(request, WORKFLOWS))


async def list_sessions(request: Request) -> Response:
    return JSONResponse([{"session_id": "s1", "user_id": request.state.user_id}])


async def live(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"hello": websocket.state.user_id})
    async for message in websocket.iter_text():
        await websocket.send_json({"echo": message[:1000]})


ROUTES = [
    Route("/health", health),
    Route("/agents", list_agents),
    Route("/agents/{agent_id}", get_agent),
    Route("/agents/{agent_id}/runs", run_agent, methods=["POST"]),
    Route("/teams", list_teams),
    Route("/workflows", list_workflows),
    Route("/sessions", list_sessions),
    WebSocketRoute("/ws", live),
]


def create_demo_app(secret: str, redis_url: str | None = None) -> Starlette:
    """The demo API protected by ``secure_stack()`` with HS256 tokens signed by ``secret``."""
    store: Any = None
    if redis_url:
        from .ratelimit import RedisStore

        store = RedisStore(url=redis_url)
    rate_limit: dict[str, Any] = {
        "limits": ["120/minute"],
        "route_limits": {"POST /agents/*/runs": RUN_LIMIT},
    }
    if store is not None:
        rate_limit["store"] = store
    middleware = secure_stack(
        auth={"verification_keys": [secret], "algorithm": "HS256"},
        rbac={"scope_mappings": {"GET /ws": []}},
        rate_limit=rate_limit,
    )
    return Starlette(routes=ROUTES, middleware=middleware)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def demo_token(secret: str, user: str, ttl: int = 3600) -> str:
    now = int(time.time())
    claims = {"sub": user, "scopes": DEMO_USERS[user], "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm="HS256")
