"""A real Agno AgentOS app with agentos_mw's JWTMiddleware in place of Agno's own.

Built fully offline: an Agent with a model object that refuses to be called (no provider SDK,
no network), Agno's in-memory database, telemetry off. Requests go through httpx's ASGI
transport, so the full FastAPI stack of AgentOS runs.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

agno = pytest.importorskip("agno")
httpx = pytest.importorskip("httpx")

from agno.agent import Agent  # noqa: E402
from agno.db.in_memory import InMemoryDb  # noqa: E402
from agno.os import AgentOS  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402

from agentos_mw.auth import JWTMiddleware  # noqa: E402
from tests.agno_offline import OfflineModel  # noqa: E402
from tests.test_auth_common import SECRET, claims, mint  # noqa: E402


def agent_os_app(**middleware_options: Any) -> FastAPI:
    base = FastAPI()

    @base.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        state = request.state
        return {
            "user_id": state.user_id,
            "session_id": state.session_id,
            "scopes": state.scopes,
            "dependencies": state.dependencies,
            "session_state": state.session_state,
            "request_user": request.user.identity,
        }

    agent_os = AgentOS(
        id="os-interop",
        agents=[Agent(id="support", name="Support", model=OfflineModel())],
        db=InMemoryDb(),
        base_app=base,
        telemetry=False,
    )
    app = agent_os.get_app()
    app.add_middleware(JWTMiddleware, verification_keys=[SECRET], **middleware_options)
    return app


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    app = agent_os_app(dependencies_claims=["tenant"], session_state_claims=["plan"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://os") as c:
        yield c


def auth(**overrides: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(claims(**overrides))}"}


@pytest.mark.anyio
async def test_agentos_routes_require_a_token_and_accept_ours(client: Any) -> None:
    missing = await client.get("/agents")
    assert missing.status_code == 401
    assert missing.json() == {"detail": "Authorization header missing"}
    assert missing.headers["www-authenticate"] == 'Bearer realm="api"'
    listed = await client.get("/agents", headers=auth())
    assert listed.status_code == 200
    assert [agent["id"] for agent in listed.json()] == ["support"]
    expired = await client.get("/agents", headers=auth(exp=int(time.time()) - 60))
    assert expired.status_code == 401 and expired.json() == {"detail": "Token has expired"}


@pytest.mark.anyio
async def test_health_stays_public(client: Any) -> None:
    assert (await client.get("/health")).status_code == 200


@pytest.mark.anyio
async def test_create_session_binds_user_id_from_the_token(client: Any) -> None:
    response = await client.post(
        "/sessions?type=agent",
        json={"user_id": "someone-else", "agent_id": "support"},
        headers=auth(sub="user-42"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["user_id"] == "user-42"


@pytest.mark.anyio
async def test_request_state_reaches_routes_on_the_agentos_app(client: Any) -> None:
    response = await client.get(
        "/whoami", headers=auth(sub="user-7", tenant="acme", plan={"tier": "pro"}, scopes="a b")
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "user_id": "user-7",
        "session_id": "sess-1",
        "scopes": ["a", "b"],
        "dependencies": {"tenant": "acme"},
        "session_state": {"plan": {"tier": "pro"}},
        "request_user": "user-7",
    }


@pytest.mark.anyio
async def test_authorization_uses_the_agentos_scope_map() -> None:
    pytest.importorskip("agentos_mw.rbac")
    app = agent_os_app(authorization=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://os") as c:
        admin = await c.get("/agents/support", headers=auth(scopes=["agent_os:admin"]))
        assert admin.status_code == 200, admin.text
        denied = await c.get("/agents/support", headers=auth(scopes=["sessions:read"]))
        assert denied.status_code == 403
