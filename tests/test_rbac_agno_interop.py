"""RBAC in front of a real Agno AgentOS app (no model calls, no network).

JWTMiddleware(authorization=True) verifies the token and hands the request to RBACMiddleware;
AgentOS's own GET /agents filters its list by ``request.state.accessible_resource_ids``.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

pytest.importorskip("agno.os")
pytest.importorskip("python_multipart", reason="AgentOS's routers need python-multipart")
jwt = pytest.importorskip("jwt")

from agno.agent import Agent  # noqa: E402
from agno.os import AgentOS  # noqa: E402
from agno.os.scopes import get_default_scope_mappings, get_required_scopes_for_route  # noqa: E402

from agentos_mw.auth import JWTMiddleware  # noqa: E402
from agentos_mw.rbac import RBACMiddleware, RBACPolicy  # noqa: E402
from tests.agno_offline import OfflineModel  # noqa: E402

KEY = "interop-secret-key-long-enough-for-hs256-tokens"


@pytest.fixture(scope="module")
def agentos_app() -> Any:
    agents = [
        Agent(id=agent_id, name=agent_id.upper(), model=OfflineModel()) for agent_id in ("a1", "a2")
    ]
    return AgentOS(agents=agents, telemetry=False).get_app()


def jwt_stack(app: Any) -> Any:
    return JWTMiddleware(app, verification_keys=[KEY], algorithm="HS256", authorization=True)


def bearer(*scopes: str) -> dict[str, str]:
    claims = {"sub": "user-1", "scopes": list(scopes), "exp": int(time.time()) + 600}
    return {"Authorization": "Bearer " + jwt.encode(claims, KEY, algorithm="HS256")}


async def request(
    app: Any, method: str, path: str, headers: dict[str, str], **kw: Any
) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://agentos"
    ) as client:
        return await client.request(method, path, headers=headers, **kw)


@pytest.mark.anyio
async def test_listing_agents_with_one_per_agent_scope_returns_only_that_agent(
    agentos_app: Any,
) -> None:
    app = jwt_stack(agentos_app)
    response = await request(app, "GET", "/agents", bearer("agents:a1:read"))
    assert response.status_code == 200
    assert [agent["id"] for agent in response.json()] == ["a1"]
    everyone = await request(app, "GET", "/agents", bearer("agents:read"))
    assert sorted(agent["id"] for agent in everyone.json()) == ["a1", "a2"]


@pytest.mark.anyio
async def test_running_another_agent_is_denied(agentos_app: Any) -> None:
    app = jwt_stack(agentos_app)
    response = await request(
        app, "POST", "/agents/a2/runs", bearer("agents:a1:run"), data={"message": "hi"}
    )
    assert response.status_code == 403
    assert response.json() == {"detail": "Insufficient permissions. Required scope(s): agents:run"}
    assert (await request(app, "GET", "/agents/a2", bearer("agents:a1:read"))).status_code == 403
    assert (await request(app, "GET", "/agents/a1", bearer("agents:a1:read"))).status_code == 200


@pytest.mark.anyio
async def test_standalone_rbac_behind_any_identity_layer(agentos_app: Any) -> None:
    rbac = RBACMiddleware(agentos_app, unmapped="deny", excluded_route_paths=["/health"])

    async def identity(scope: Any, receive: Any, send: Any) -> None:
        scope.setdefault("state", {}).update(
            authenticated=True, user_id="u1", scopes=["agents:a2:read"]
        )
        await rbac(scope, receive, send)

    listed = await request(identity, "GET", "/agents", {})
    assert [agent["id"] for agent in listed.json()] == ["a2"]
    assert (await request(identity, "GET", "/health", {})).status_code == 200
    assert (await request(identity, "GET", "/info", {})).status_code == 403  # unmapped, deny


def test_every_agentos_route_is_mapped_like_agno_or_is_a_documented_gap(agentos_app: Any) -> None:
    """Walk the real app's routes: where Agno's map requires scopes we require the same; where
    it requires none, we either map the route (a run route Agno forgot) or leave it unmapped."""
    agno_map = get_default_scope_mappings()
    policy = RBACPolicy()
    gaps = []
    for path, operations in agentos_app.openapi()["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "id-1", path)
        for method in operations:
            method = method.upper()
            expected = get_required_scopes_for_route(agno_map, method, concrete)
            got = policy.required_scopes(method, concrete)
            if expected:
                assert got == tuple(expected), (method, path)
            elif got:
                gaps.append(f"{method} {path}")
    assert "POST /agents/{agent_id}/runs/{run_id}/resume" in gaps
