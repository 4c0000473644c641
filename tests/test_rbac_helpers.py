from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.requests import Request

from agentos_mw.rbac import RBACMiddleware, RequireScopes, accessible_ids, has_scope


def request(scopes: Any = None, **state: Any) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [],
        "state": {},
    }
    if scopes is not None:
        scope["state"] = {"authenticated": True, "scopes": scopes, **state}
    return Request(scope)


def test_has_scope_exact_global_wildcard_admin() -> None:
    assert has_scope(request(["agents:a1:run"]), "agents:a1:run")
    assert not has_scope(request(["agents:a1:run"]), "agents:a2:run")
    assert not has_scope(request(["agents:a1:run"]), "agents:run")
    assert has_scope(request(["agents:a1:run"]), "agents:run", resource_id="a1")
    assert not has_scope(request(["agents:a1:run"]), "agents:run", resource_id="a2")
    assert has_scope(request(["agents:*:run"]), "agents:a2:run")
    assert has_scope(request(["agents:run"]), "agents:a2:run")
    assert has_scope(request(["agent_os:admin"]), "anything:at:all")
    assert has_scope(request(["root"], admin_scope="root"), "agents:read")
    assert has_scope(request(["ops"], admin_scopes=("root", "ops")), "agents:read")
    assert not has_scope(request(["agent_os:admin"], admin_scope="root"), "agents:read")
    assert has_scope(request(["system:read"]), "config:read")
    assert not has_scope(request(), "agents:read")
    assert not has_scope(request(["Agents:Read"]), "agents:read")


def test_accessible_ids() -> None:
    assert accessible_ids(
        request(["agents:a1:read", "agents:a2:read", "agents:a3:run"]), "agents"
    ) == {"a1", "a2"}
    assert accessible_ids(request(["agents:a3:run"]), "agents", "run") == {"a3"}
    assert accessible_ids(request(["agents:*:read"]), "agents") == {"*"}
    assert accessible_ids(request(["agents:read"]), "agents") == {"*"}
    assert accessible_ids(request(["agent_os:admin"]), "teams") == {"*"}
    assert accessible_ids(request(["teams:t1:read"]), "agents") == set()
    assert accessible_ids(request(), "agents") == set()
    assert accessible_ids(request("agents:a1:read agents:a2:read"), "agents") == {"a1", "a2"}


def test_require_scopes_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError):
        RequireScopes()
    with pytest.raises(ValueError):
        RequireScopes("has space")
    with pytest.raises(ValueError):
        RequireScopes("agents:read", realm="a\r\nX-Injected: 1")


@pytest.mark.anyio
async def test_require_scopes_as_a_fastapi_dependency() -> None:
    fastapi = pytest.importorskip("fastapi")
    app = fastapi.FastAPI()

    @app.post(
        "/agents/{agent_id}/tools",
        dependencies=[fastapi.Depends(RequireScopes("agents:run", resource_id_param="agent_id"))],
    )
    async def tools(agent_id: str) -> dict[str, str]:
        return {"agent": agent_id}

    @app.get(
        "/reports", dependencies=[fastapi.Depends(RequireScopes("reports:read", "billing:read"))]
    )
    async def reports() -> list[str]:
        return []

    def with_scopes(scopes: list[str] | None) -> Any:
        async def identity(scope: Any, receive: Any, send: Any) -> None:
            if scopes is not None:
                scope.setdefault("state", {}).update(authenticated=True, scopes=scopes)
            await app(scope, receive, send)

        return identity

    async def post(scopes: list[str] | None, path: str, method: str = "POST") -> httpx.Response:
        transport = httpx.ASGITransport(app=with_scopes(scopes))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path)

    assert (await post(["agents:a1:run"], "/agents/a1/tools")).status_code == 200
    denied = await post(["agents:a1:run"], "/agents/a2/tools")
    assert denied.status_code == 403
    assert denied.json() == {"detail": "Insufficient permissions. Required scope(s): agents:run"}
    assert (
        denied.headers["www-authenticate"]
        == 'Bearer error="insufficient_scope", scope="agents:run"'
    )
    anonymous = await post(None, "/agents/a1/tools")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="api"'
    assert (await post(["reports:read"], "/reports", "GET")).status_code == 403
    assert (await post(["reports:read", "billing:read"], "/reports", "GET")).status_code == 200


@pytest.mark.anyio
async def test_endpoint_helpers_agree_with_the_middleware() -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def list_agents(request: Request) -> JSONResponse:
        ids = accessible_ids(request, "agents")
        agents = ["a1", "a2", "a3"]
        return JSONResponse([a for a in agents if "*" in ids or a in ids])

    from tests.driver import call, http_scope

    app = RBACMiddleware(Starlette(routes=[Route("/agents", list_agents)]))
    scope = http_scope(
        "GET", "/agents", state={"authenticated": True, "scopes": ["agents:a2:read"]}
    )
    assert (await call(app, scope)).json() == ["a2"]
