from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, SimpleUser, UnauthenticatedUser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from agentos_mw._asgi import Message, Receive, Scope, Send
from agentos_mw.rbac import RBACMiddleware
from tests.driver import call, http_scope

SEEN: dict[str, Any] = {}


async def endpoint(request: Request) -> Response:
    SEEN.clear()
    SEEN.update(request.state._state)
    return JSONResponse({"ok": True})


async def stream(request: Request) -> Response:
    async def chunks() -> Any:
        for i in range(3):
            yield f"data: {i}\n\n".encode()

    return StreamingResponse(chunks(), media_type="text/event-stream")


async def ws_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.close()


def inner_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/agents", endpoint),
            Route("/agents/{agent_id}", endpoint),
            Route("/agents/{agent_id}/runs", stream, methods=["POST"]),
            Route("/sessions", endpoint),
            Route("/custom", endpoint),
            WebSocketRoute("/workflows/ws", ws_endpoint),
        ]
    )


def identity(scopes: Any, **state: Any) -> dict[str, Any]:
    return {"state": {"authenticated": True, "scopes": scopes, "user_id": "u1", **state}}


@pytest.mark.anyio
async def test_allowed_request_sets_agno_state_keys() -> None:
    app = RBACMiddleware(inner_app())
    result = await call(app, http_scope("GET", "/agents", **identity(["agents:a1:read"])))
    assert result.status == 200
    assert SEEN["authorization_enabled"] is True
    assert SEEN["admin_scope"] == "agent_os:admin"
    assert SEEN["required_scopes"] == ["agents:read"]
    assert SEEN["accessible_resource_ids"] == {"a1"}
    await call(app, http_scope("GET", "/agents/a1", **identity(["agents:a1:read"])))
    assert "accessible_resource_ids" not in SEEN  # listing routes only


@pytest.mark.anyio
async def test_insufficient_scope_is_403_with_fixed_body_and_challenge() -> None:
    app = RBACMiddleware(inner_app())
    result = await call(app, http_scope("POST", "/agents/a2/runs", **identity(["agents:a1:run"])))
    assert result.status == 403
    assert result.json() == {"detail": "Insufficient permissions. Required scope(s): agents:run"}
    assert (
        result.header("www-authenticate") == 'Bearer error="insufficient_scope", scope="agents:run"'
    )
    assert result.header("content-type") == "application/json"
    assert int(result.header("content-length") or 0) == len(result.body)


@pytest.mark.anyio
async def test_no_identity_is_401_without_error_attribute() -> None:
    app = RBACMiddleware(inner_app(), realm="agentos")
    result = await call(app, http_scope("GET", "/sessions"))
    assert result.status == 401
    assert result.json() == {"detail": "Not authenticated"}
    assert result.header("www-authenticate") == 'Bearer realm="agentos"'
    denied = await call(
        app, http_scope("GET", "/sessions", state={"authenticated": False, "scopes": []})
    )
    assert denied.status == 401


@pytest.mark.anyio
async def test_scopes_from_starlette_auth_credentials() -> None:
    app = RBACMiddleware(inner_app())
    scope = http_scope(
        "GET", "/sessions", auth=AuthCredentials(["sessions:read"]), user=SimpleUser("u")
    )
    assert (await call(app, scope)).status == 200
    scope = http_scope(
        "GET", "/sessions", auth=AuthCredentials(["agents:read"]), user=SimpleUser("u")
    )
    assert (await call(app, scope)).status == 403
    scope = http_scope("GET", "/sessions", auth=AuthCredentials(), user=UnauthenticatedUser())
    assert (await call(app, scope)).status == 401


@pytest.mark.anyio
async def test_space_separated_scope_string_in_state() -> None:
    app = RBACMiddleware(inner_app())
    scope = http_scope("GET", "/sessions", **identity("agents:read sessions:read"))
    assert (await call(app, scope)).status == 200


@pytest.mark.anyio
async def test_head_is_checked_like_get_on_a_starlette_route() -> None:
    app = RBACMiddleware(inner_app())
    assert (await call(app, http_scope("HEAD", "/sessions", **identity([])))).status == 403
    assert (
        await call(app, http_scope("HEAD", "/sessions", **identity(["sessions:read"])))
    ).status == 200


@pytest.mark.anyio
async def test_unmapped_allow_and_deny() -> None:
    allow = RBACMiddleware(inner_app())
    assert (await call(allow, http_scope("GET", "/custom", **identity([])))).status == 200
    deny = RBACMiddleware(inner_app(), unmapped="deny")
    result = await call(deny, http_scope("GET", "/custom", **identity(["agents:read"])))
    assert result.status == 403
    assert (
        result.header("www-authenticate")
        == 'Bearer error="insufficient_scope", scope="agent_os:admin"'
    )
    assert (
        await call(deny, http_scope("GET", "/custom", **identity(["agent_os:admin"])))
    ).status == 200


@pytest.mark.anyio
async def test_mounted_app_keeps_its_map() -> None:
    outer = Starlette(routes=[Mount("/api", app=RBACMiddleware(inner_app()))])
    assert (await call(outer, http_scope("GET", "/api/sessions", **identity([])))).status == 403
    ok = await call(outer, http_scope("GET", "/api/sessions", **identity(["sessions:read"])))
    assert ok.status == 200
    # uvicorn --root-path: root_path set, path includes it
    app = RBACMiddleware(inner_app())
    scope = http_scope("GET", "/sessions", root_path="/api", **identity([]))
    assert (await call(app, scope)).status == 403


@pytest.mark.anyio
async def test_path_prefix_when_wrapping_the_outer_app() -> None:
    outer = Starlette(routes=[Mount("/api", app=inner_app()), Route("/sessions", endpoint)])
    app = RBACMiddleware(outer, path_prefix="/api", unmapped="deny")
    assert (await call(app, http_scope("GET", "/api/sessions", **identity([])))).status == 403
    assert (
        await call(app, http_scope("GET", "/api/sessions", **identity(["sessions:read"])))
    ).status == 200
    # outside the prefix nothing is mapped: unmapped="deny" applies
    assert (
        await call(app, http_scope("GET", "/sessions", **identity(["sessions:read"])))
    ).status == 403
    with pytest.raises(ValueError):
        RBACMiddleware(outer, path_prefix="/api/")


@pytest.mark.anyio
async def test_excluded_paths_and_cors_preflight_pass() -> None:
    app = RBACMiddleware(inner_app(), excluded_route_paths=["/sessions"], unmapped="deny")
    assert (await call(app, http_scope("GET", "/sessions"))).status == 200
    preflight = http_scope("OPTIONS", "/custom", [(b"access-control-request-method", b"GET")])
    result = await call(app, preflight)
    assert result.status != 401 and result.status != 403


@pytest.mark.anyio
async def test_websocket_handshake_is_checked_as_get() -> None:
    app = RBACMiddleware(inner_app(), scope_mappings={"GET /workflows/ws": ["workflows:read"]})
    denied = await call(app, http_scope("GET", "/workflows/ws", type="websocket", **identity([])))
    assert denied.messages == [{"type": "websocket.close", "code": 1008, "reason": ""}]
    with_ext = http_scope(
        "GET",
        "/workflows/ws",
        type="websocket",
        **identity([]),
        extensions={"websocket.http.response": {}},
    )
    result = await call(app, with_ext)
    assert result.status == 403
    ok = await call(
        app, http_scope("GET", "/workflows/ws", type="websocket", **identity(["workflows:read"]))
    )
    assert ok.messages[0]["type"] == "websocket.accept"


@pytest.mark.anyio
async def test_lifespan_passes_untouched() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    wrapped = RBACMiddleware(app, unmapped="deny")
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    await wrapped(scope, receive, send)
    assert seen == [scope] and "state" not in scope


@pytest.mark.anyio
async def test_streaming_response_passes_chunk_by_chunk() -> None:
    app = RBACMiddleware(inner_app())
    result = await call(app, http_scope("POST", "/agents/a1/runs", **identity(["agents:a1:run"])))
    bodies = [
        m["body"] for m in result.messages if m["type"] == "http.response.body" and m.get("body")
    ]
    assert bodies == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]


@pytest.mark.anyio
async def test_works_via_add_middleware() -> None:
    app = inner_app()
    app.add_middleware(RBACMiddleware, unmapped="deny")
    assert (
        await call(app, http_scope("GET", "/sessions", **identity(["sessions:read"])))
    ).status == 200
    assert (
        await call(app, http_scope("GET", "/custom", **identity(["sessions:read"])))
    ).status == 403


WRAPPED = RBACMiddleware(inner_app(), unmapped="deny")


@given(
    path=st.text(max_size=60).map(lambda p: "/" + p),
    method=st.sampled_from(["GET", "HEAD", "POST", "DELETE", "PATCH", "BREW"]),
    state=st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(["authenticated", "scopes", "admin_scope"]),
            st.one_of(
                st.booleans(),
                st.none(),
                st.text(max_size=20),
                st.lists(st.text(max_size=20), max_size=4),
            ),
        ),
    ),
)
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.anyio
async def test_any_request_gets_an_answer_never_an_exception(
    path: str, method: str, state: dict[str, Any] | None
) -> None:
    extra: dict[str, Any] = {} if state is None else {"state": dict(state)}
    result = await call(WRAPPED, http_scope(method, path, **extra))
    assert result.status in (200, 401, 403, 404, 405)
