"""secure_stack()/apply_stack(): order, validation, and the layers working together."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agentos_mw import (
    AccessLogMiddleware,
    JWTMiddleware,
    MetricsMiddleware,
    RateLimitMiddleware,
    RequestIDMiddleware,
    SecurityHeadersMiddleware,
    apply_stack,
    secure_stack,
)
from tests.driver import call, http_scope

SECRET = "stack-test-secret-0123456789abcdef0123456789"


def token(scopes: list[str], sub: str = "u1") -> str:
    return jwt.encode(
        {"sub": sub, "scopes": scopes, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256"
    )


def auth_options() -> dict[str, Any]:
    return {"verification_keys": [SECRET], "algorithm": "HS256"}


def test_order_is_outermost_first() -> None:
    from prometheus_client import CollectorRegistry

    stack = secure_stack(
        cors={"allow_origins": ["https://ui.example"]},
        auth=auth_options(),
        rate_limit={"limits": ["10/minute"]},
        metrics={"registry": CollectorRegistry()},
    )
    assert [m.cls for m in stack] == [
        CORSMiddleware,
        SecurityHeadersMiddleware,
        RequestIDMiddleware,
        AccessLogMiddleware,
        MetricsMiddleware,
        JWTMiddleware,
        RateLimitMiddleware,
    ]
    jwt_kwargs = stack[5].kwargs
    assert jwt_kwargs["authorization"] is True and jwt_kwargs["unmapped"] == "deny"
    assert stack[6].kwargs["key"] == "user"


def test_layers_can_be_left_out() -> None:
    stack = secure_stack(security_headers=False, request_id=None, access_log=False)
    assert stack == []
    assert [m.cls for m in secure_stack(access_log=False, request_id=False)] == [
        SecurityHeadersMiddleware
    ]


def test_unsafe_or_wrong_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="allow_origins"):
        secure_stack(cors={"allow_origins": ["*"], "allow_credentials": True})
    with pytest.raises(ValueError, match="auth"):
        secure_stack(rbac={"scope_mappings": {"GET /x": ["x:read"]}})
    with pytest.raises(TypeError):
        secure_stack(access_log="yes")  # type: ignore[arg-type]


async def agents(request: Request) -> Response:
    return JSONResponse({"user": request.state.user_id})


async def stream(request: Request) -> Response:
    async def chunks() -> Any:
        for i in range(3):
            yield f"data: {i}\n\n".encode()

    return StreamingResponse(chunks(), media_type="text/event-stream")


ROUTES = [Route("/agents", agents), Route("/agents/{agent_id}/runs", stream, methods=["POST"])]


@pytest.mark.anyio
async def test_rejections_carry_the_outer_layers_headers() -> None:
    app = Starlette(
        routes=ROUTES,
        middleware=secure_stack(
            cors={"allow_origins": ["https://ui.example"], "allow_credentials": True},
            auth=auth_options(),
        ),
    )
    result = await call(app, http_scope("GET", "/agents", [("origin", "https://ui.example")]))
    assert result.status == 401
    assert result.header("x-content-type-options") == "nosniff"
    assert result.header("x-request-id")
    assert result.header("access-control-allow-origin") == "https://ui.example"
    forbidden = await call(
        app,
        http_scope(
            "POST", "/agents/a1/runs", [("authorization", f"Bearer {token(['agents:read'])}")]
        ),
    )
    assert forbidden.status == 403
    assert "insufficient_scope" in (forbidden.header("www-authenticate") or "")


@pytest.mark.anyio
async def test_unmapped_routes_are_denied_by_default() -> None:
    async def secret(request: Request) -> Response:
        return JSONResponse({"secret": True})

    app = Starlette(
        routes=[Route("/internal/secret", secret)], middleware=secure_stack(auth=auth_options())
    )
    reader = [("authorization", f"Bearer {token(['agents:read'])}")]
    assert (await call(app, http_scope("GET", "/internal/secret", reader))).status == 403
    admin = [("authorization", f"Bearer {token(['agent_os:admin'])}")]
    assert (await call(app, http_scope("GET", "/internal/secret", admin))).status == 200


@pytest.mark.anyio
async def test_stream_passes_chunk_by_chunk_through_everything() -> None:
    app = Starlette(
        routes=ROUTES,
        middleware=secure_stack(auth=auth_options(), rate_limit={"limits": ["100/minute"]}),
    )
    headers = [("authorization", f"Bearer {token(['agents:*:run'])}")]
    result = await call(app, http_scope("POST", "/agents/a1/runs", headers))
    assert result.status == 200
    chunks = [
        m["body"] for m in result.messages if m["type"] == "http.response.body" and m.get("body")
    ]
    assert chunks == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]
    assert result.starts == 1
    assert result.header("x-accel-buffering") == "no"


@pytest.mark.anyio
async def test_rate_limit_is_per_user_behind_auth() -> None:
    app = Starlette(
        routes=ROUTES,
        middleware=secure_stack(auth=auth_options(), rate_limit={"limits": ["2/minute"]}),
    )
    alice = [("authorization", f"Bearer {token(['agents:read'], sub='alice')}")]
    bob = [("authorization", f"Bearer {token(['agents:read'], sub='bob')}")]
    statuses = [(await call(app, http_scope("GET", "/agents", alice))).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert (await call(app, http_scope("GET", "/agents", bob))).status == 200  # same IP, other user


@pytest.mark.anyio
async def test_apply_stack_on_starlette_and_on_a_bare_callable() -> None:
    app = Starlette(routes=ROUTES)
    assert apply_stack(app, auth=auth_options()) is app
    assert (await call(app, http_scope("GET", "/agents"))).status == 401

    async def raw(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped = apply_stack(raw)
    result = await call(wrapped, http_scope("GET", "/"))
    assert result.status == 200 and result.header("x-request-id")
