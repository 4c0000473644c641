"""Agno compatibility and the holes RBAC closes, each checked against Agno itself.

Every behavioural test runs twice: on agentos_mw and on Agno 3.1.10's own decision functions or
middleware. Compatibility tests must pass on both. Hole tests are marked ``xfail(strict=True)``
for Agno: they fail on Agno's behaviour (and the suite notices if Agno ever closes the hole).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from agentos_mw.rbac import RBACMiddleware, RBACPolicy, granted_scopes
from tests.driver import call, http_scope

agno_scopes = pytest.importorskip("agno.os.scopes")
jwt = pytest.importorskip("jwt")

Allows = Callable[..., bool]


def ours(
    method: str,
    path: str,
    scopes: list[str],
    user_map: Mapping[str, Sequence[str]] | None = None,
    **options: Any,
) -> bool:
    policy = RBACPolicy(user_map, **options)
    return policy.decide(method, path, granted_scopes(scopes)).allowed


def agno(
    method: str,
    path: str,
    scopes: list[str],
    user_map: Mapping[str, Sequence[str]] | None = None,
    **options: Any,
) -> bool:
    mappings = (
        agno_scopes.get_default_scope_mappings()
    )  # what JWTMiddleware(authorization=True) uses
    mappings.update(user_map or {})
    return bool(agno_scopes.check_route_scopes(scopes, mappings, method, path).allowed)


HOLE = pytest.mark.xfail(strict=True, reason="hole in Agno 3.1.10")
BOTH = [pytest.param(ours, id="agentos_mw"), pytest.param(agno, id="agno")]
CLOSED = [pytest.param(ours, id="agentos_mw"), pytest.param(agno, id="agno", marks=HOLE)]


# --- compatibility: the same answers as Agno --------------------------------------------------


@pytest.mark.parametrize("allows", BOTH)
def test_compatible_per_resource_wildcard_admin_and_legacy(allows: Allows) -> None:
    assert allows("POST", "/agents/web-agent/runs", ["agents:web-agent:run"])
    assert not allows("POST", "/agents/other/runs", ["agents:web-agent:run"])
    assert allows("POST", "/teams/t1/runs", ["teams:*:run"])
    assert allows("GET", "/workflows/w1", ["workflows:read"])
    assert allows("DELETE", "/sessions", ["agent_os:admin"])
    assert allows("GET", "/config", ["system:read"])
    assert not allows("GET", "/config", ["agents:read"])
    assert allows("GET", "/sessions", [], {"GET /sessions": []})  # [] = no scope needed


@pytest.mark.parametrize("allows", BOTH)
def test_compatible_listing_fallback(allows: Allows) -> None:
    assert allows("GET", "/agents", ["agents:a1:read"])
    assert not allows("POST", "/agents", ["agents:a1:write"])


# --- holes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("allows", CLOSED)
def test_hole_unmapped_route_open_to_any_token(allows: Allows) -> None:
    # An endpoint nobody mapped: with unmapped="deny" it fails closed (Agno has no such setting).
    assert not allows("POST", "/admin/reindex", ["agents:read"], unmapped="deny")


@pytest.mark.parametrize("allows", CLOSED)
def test_hole_agentos_run_routes_missing_from_agnos_map(allows: Allows) -> None:
    # Real AgentOS routes the default map forgets: resuming another agent's run.
    assert not allows("POST", "/agents/a2/runs/r1/resume", ["agents:a1:run"])
    assert not allows("POST", "/teams/t2/sessions/s1/fork", ["teams:t1:run"])


@pytest.mark.parametrize("allows", CLOSED)
def test_hole_head_needs_no_scope(allows: Allows) -> None:
    assert not allows("HEAD", "/sessions", ["agents:read"])


@pytest.mark.parametrize("allows", CLOSED)
def test_hole_specific_custom_pattern_shadowed_by_default(allows: Allows) -> None:
    user_map = {"GET /agents/*/secrets": ["secrets:read"]}
    assert not allows("GET", "/agents/a1/secrets", ["agents:read"], user_map)
    assert allows("GET", "/agents/a1/secrets", ["secrets:read"], user_map)


@pytest.mark.parametrize("allows", CLOSED)
def test_hole_agnos_docs_example_custom_scope_never_satisfied(allows: Allows) -> None:
    user_map = {"GET /agents": ["custom:agents:list"]}
    assert allows("GET", "/agents", ["custom:agents:list"], user_map)


# --- the same holes through the real middlewares -----------------------------------------------

KEY = "test-secret-key-that-is-long-enough-for-hs256!"


def token(scopes: list[str]) -> tuple[bytes, bytes]:
    claims = {"sub": "u1", "scopes": scopes, "exp": int(time.time()) + 600}
    return (b"authorization", b"Bearer " + jwt.encode(claims, KEY, algorithm="HS256").encode())


async def ok(request: Request) -> Response:
    return JSONResponse({"secret": True})


def api() -> Starlette:
    return Starlette(routes=[Route("/sessions", ok), Route("/agents/{agent_id}/secrets", ok)])


def agno_stack(app: Any, **options: Any) -> Any:
    from agno.os.middleware.jwt import JWTMiddleware as AgnoJWT

    return AgnoJWT(app, verification_keys=[KEY], algorithm="HS256", authorization=True, **options)


def our_stack(app: Any, **options: Any) -> Any:
    """Our RBAC behind a test-only identity layer that trusts the (test) token's scopes."""
    rbac = RBACMiddleware(app, **options)

    async def identity(scope: Any, receive: Any, send: Any) -> None:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                claims = jwt.decode(value.split(b" ", 1)[1], KEY, algorithms=["HS256"])
                scope.setdefault("state", {}).update(
                    authenticated=True, scopes=claims["scopes"], user_id=claims["sub"]
                )
        await rbac(scope, receive, send)

    return identity


@pytest.mark.anyio
@pytest.mark.parametrize("stack", [our_stack, pytest.param(agno_stack, marks=HOLE)])
async def test_hole_head_runs_the_get_handler_without_scope(stack: Callable[..., Any]) -> None:
    inner = api()
    app = stack(inner)
    result = await call(app, http_scope("HEAD", "/sessions", [token(["agents:read"])], app=inner))
    assert result.status == 403


@pytest.mark.anyio
@pytest.mark.parametrize("stack", [our_stack, pytest.param(agno_stack, marks=HOLE)])
async def test_hole_map_stops_matching_under_a_mount_prefix(stack: Callable[..., Any]) -> None:
    # The middleware wraps the outer app, which mounts the API under /api.
    options = {"path_prefix": "/api"} if stack is our_stack else {}
    outer = Starlette(routes=[Mount("/api", app=api())])
    app = stack(outer, **options)
    result = await call(
        app, http_scope("GET", "/api/sessions", [token(["agents:read"])], app=outer)
    )
    assert result.status == 403


@pytest.mark.anyio
@pytest.mark.parametrize("stack", [our_stack, pytest.param(agno_stack, marks=HOLE)])
async def test_hole_shadowed_pattern_through_the_middleware(stack: Callable[..., Any]) -> None:
    inner = api()
    app = stack(inner, scope_mappings={"GET /agents/*/secrets": ["secrets:read"]})
    scope = http_scope("GET", "/agents/a1/secrets", [token(["agents:read"])], app=inner)
    result = await call(app, scope)
    assert result.status == 403
