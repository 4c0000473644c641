"""Plain Starlette behind secure_stack(): SSE streaming and a websocket, both authenticated.

Run:  AGENTOS_MW_SECRET=$(python -c "import secrets; print(secrets.token_urlsafe(32))") \
        uvicorn examples.starlette_stack:app --port 8000
Token: agentos-mw token --sub alice --scopes "agents:*:run agents:read" --secret "$AGENTOS_MW_SECRET"
Try:  curl -N -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/agents/a1/runs
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from agentos_mw import secure_stack

log = logging.getLogger("examples.starlette_stack")

# The key comes from the caller's configuration, explicitly; a random one keeps the example safe.
SECRET = os.environ.get("AGENTOS_MW_SECRET", "")
if not SECRET:
    SECRET = secrets.token_urlsafe(32)
    log.warning("AGENTOS_MW_SECRET is not set: using a random key; tokens minted elsewhere fail")


async def list_agents(request: Request) -> Response:
    return JSONResponse([{"id": "a1"}, {"id": "a2"}])


async def run_agent(request: Request) -> Response:
    agent_id = request.path_params["agent_id"]

    async def events() -> AsyncIterator[str]:
        for word in ("Hello", "from", agent_id):
            yield f"data: {word}\n\n"
            await asyncio.sleep(0.2)

    return StreamingResponse(events(), media_type="text/event-stream")


async def updates(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"user": websocket.state.user_id, "event": "subscribed"})
    await websocket.close()


app = Starlette(
    routes=[
        Route("/agents", list_agents),
        Route("/agents/{agent_id}/runs", run_agent, methods=["POST"]),
        WebSocketRoute("/ws/updates", updates),
    ],
    middleware=secure_stack(
        auth={"verification_keys": [SECRET], "algorithm": "HS256"},
        rbac={"scope_mappings": {"GET /ws/updates": []}},  # any valid token may subscribe
        rate_limit={"limits": ["120/minute", "10/second"]},
    ),
)
