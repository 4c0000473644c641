"""JWTMiddleware end to end: request state, Starlette auth objects, paths, hooks, cache,
websockets, streaming, the RBAC hand-off, and the "never a 5xx" promise."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agentos_mw.auth import JWTMiddleware, JWTUser
from tests.driver import call, http_scope
from tests.test_auth_common import SECRET, Recorder, bearer, claims, make, mint


@pytest.mark.anyio
async def test_state_keys_match_the_design_contract() -> None:
    mw, app = make(dependencies_claims=["tenant"], session_state_claims=["prefs"])
    token = mint(claims(aud="os-1", tenant="acme", prefs={"lang": "en"}))
    assert (await call(mw, http_scope("GET", "/agents", bearer(token)))).status == 200
    state = app.state
    assert state["authenticated"] is True
    assert state["user_id"] == "user-1"
    assert state["session_id"] == "sess-1"
    assert state["scopes"] == ["agents:read"]
    assert state["claims"]["sub"] == "user-1"
    assert state["token"] == token
    assert state["audience"] == "os-1"
    assert state["dependencies"] == {"tenant": "acme"}
    assert state["session_state"] == {"prefs": {"lang": "en"}}
    assert state["authorization_enabled"] is False
    assert state["admin_scope"] == "agent_os:admin"
    user = app.last["user"]
    assert isinstance(user, JWTUser) and user.is_authenticated and user.identity == "user-1"
    assert app.last["auth"].scopes == ["agents:read"]


@pytest.mark.anyio
async def test_an_endpoint_mutating_nested_state_cannot_change_the_next_request() -> None:
    """The verified token is cached: what one request does to its state (an agent updating
    ``session_state``, say) must not reach the next request made with the same token."""
    mw, app = make(dependencies_claims=["tenant"], session_state_claims=["prefs"])
    token = mint(
        claims(
            aud=["os-1", "os-2"],
            tenant={"id": "acme", "plans": ["pro"]},
            prefs={"lang": "en", "tags": ["a"]},
        )
    )
    await call(mw, http_scope("GET", "/agents", bearer(token)))
    first = app.state
    first["session_state"]["prefs"]["lang"] = "fr"
    first["session_state"]["prefs"]["tags"].append("injected")
    first["dependencies"]["tenant"]["plans"].append("enterprise")
    first["claims"]["prefs"]["lang"] = "de"
    first["audience"].append("evil")
    await call(mw, http_scope("GET", "/agents", bearer(token)))
    second = app.state
    assert second is not first
    assert second["session_state"] == {"prefs": {"lang": "en", "tags": ["a"]}}
    assert second["dependencies"] == {"tenant": {"id": "acme", "plans": ["pro"]}}
    assert second["claims"]["prefs"] == {"lang": "en", "tags": ["a"]}
    assert second["audience"] == ["os-1", "os-2"]


@pytest.mark.anyio
async def test_existing_state_is_kept() -> None:
    mw, app = make()
    scope = http_scope("GET", "/x", bearer(mint()), state={"request_id": "r-1"})
    await call(mw, scope)
    assert app.state["request_id"] == "r-1" and app.state["user_id"] == "user-1"


@pytest.mark.anyio
async def test_claim_paths_and_scope_shapes() -> None:
    mw, app = make(
        scopes_claim="realm_access.roles",
        user_id_claim="https://example.com/uid",
        session_id_claim="ctx.session",
    )
    token = mint(
        claims(
            realm_access={"roles": ["agents:run", 7, "", "agents:read"]},
            **{"https://example.com/uid": "auth0|42"},
            ctx={"session": "s-9"},
        )
    )
    await call(mw, http_scope("GET", "/x", bearer(token)))
    assert app.state["scopes"] == ["agents:run", "agents:read"]
    assert app.state["user_id"] == "auth0|42"
    assert app.state["session_id"] == "s-9"

    oauth, app2 = make(scopes_claim="scope")
    await call(oauth, http_scope("GET", "/x", bearer(mint(claims(scope="openid  agents:read ")))))
    assert app2.state["scopes"] == ["openid", "agents:read"]

    merged, app3 = make(scopes_claim=["scope", "scopes"])
    await call(
        merged, http_scope("GET", "/x", bearer(mint(claims(scope="a b", scopes=["b", "c"]))))
    )
    assert app3.state["scopes"] == ["a", "b", "c"]

    odd, app4 = make()
    await call(odd, http_scope("GET", "/x", bearer(mint(claims(scopes={"a": 1}, sub=None)))))
    assert app4.state["scopes"] == [] and app4.state["user_id"] is None


@pytest.mark.anyio
async def test_starlette_request_user_and_requires_work() -> None:
    @requires("agents:read")
    async def read(request: Request) -> Response:
        return JSONResponse({"user": request.user.display_name, "scopes": request.auth.scopes})

    @requires("agents:write")
    async def write(request: Request) -> Response:
        return JSONResponse({})

    async def public(request: Request) -> Response:
        return JSONResponse({"authenticated": request.user.is_authenticated})

    app = Starlette(
        routes=[Route("/read", read), Route("/write", write), Route("/health", public)],
        middleware=[Middleware(JWTMiddleware, verification_keys=[SECRET])],
    )
    ok = await call(app, http_scope("GET", "/read", bearer(mint())))
    assert ok.status == 200 and ok.json() == {"user": "user-1", "scopes": ["agents:read"]}
    assert (await call(app, http_scope("GET", "/write", bearer(mint())))).status == 403
    health = await call(app, http_scope("GET", "/health"))
    assert health.json() == {"authenticated": False}


@pytest.mark.anyio
async def test_default_excluded_paths_and_root_path() -> None:
    mw, _ = make()
    for path in (
        "/",
        "/health",
        "/info",
        "/docs",
        "/redoc",
        "/openapi.json",
        "/docs/oauth2-redirect",
        "/health/",
    ):
        assert (await call(mw, http_scope("GET", path))).status == 200, path
    assert (await call(mw, http_scope("GET", "/agents"))).status == 401
    mounted = http_scope("GET", "/health", root_path="/api")
    assert (await call(mw, mounted)).status == 200


@pytest.mark.anyio
async def test_custom_excluded_paths_replace_the_defaults() -> None:
    mw, _ = make(excluded_route_paths=["/public/**", "GET /status", "/items/*"])
    assert (await call(mw, http_scope("GET", "/public/a/b"))).status == 200
    assert (await call(mw, http_scope("GET", "/status"))).status == 200
    assert (await call(mw, http_scope("POST", "/status"))).status == 401
    assert (await call(mw, http_scope("GET", "/items/1"))).status == 200
    assert (await call(mw, http_scope("GET", "/items/1/x"))).status == 401
    assert (await call(mw, http_scope("GET", "/health"))).status == 401
    with pytest.raises(TypeError):
        make(excluded_route_paths="/public")


@pytest.mark.anyio
async def test_cors_preflight_and_lifespan_pass_untouched() -> None:
    mw, app = make()
    preflight = http_scope(
        "OPTIONS",
        "/agents",
        [("origin", "https://a.example"), ("access-control-request-method", "POST")],
    )
    assert (await call(mw, preflight)).status == 200
    assert "state" not in app.last
    assert (await call(mw, http_scope("OPTIONS", "/agents"))).status == 401  # not a preflight
    lifespan = {"type": "lifespan", "asgi": {"version": "3.0"}}

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        raise AssertionError("nothing sent")

    await mw(lifespan, receive, send)
    assert app.last is lifespan and "state" not in lifespan


@pytest.mark.anyio
async def test_optional_auth_paths() -> None:
    mw, app = make(optional_auth_paths=["/feed", "/public/**"])
    anonymous = await call(mw, http_scope("GET", "/feed"))
    assert anonymous.status == 200
    assert app.state["authenticated"] is False and app.state["user_id"] is None
    assert not app.last["user"].is_authenticated
    signed_in = await call(mw, http_scope("GET", "/public/x", bearer(mint())))
    assert signed_in.status == 200 and app.state["user_id"] == "user-1"
    bad = await call(mw, http_scope("GET", "/feed", bearer("x.y.z")))
    assert bad.status == 401  # a bad token is an error even where a token is optional


@pytest.mark.anyio
async def test_revocation_check_is_consulted_on_every_request() -> None:
    revoked: set[str] = set()
    seen: list[dict[str, Any]] = []

    async def check(token_claims: dict[str, Any]) -> bool:
        seen.append(token_claims)
        return token_claims.get("jti") in revoked

    mw, _ = make(revocation_check=check)
    token = mint(claims(jti="t-1"))
    assert (await call(mw, http_scope("GET", "/x", bearer(token)))).status == 200
    assert (await call(mw, http_scope("GET", "/x", bearer(token)))).status == 200  # cached
    revoked.add("t-1")
    result = await call(mw, http_scope("GET", "/x", bearer(token)))
    assert result.status == 401 and result.json() == {"detail": "Token has been revoked"}
    assert len(seen) == 3 and seen[0]["jti"] == "t-1"


@pytest.mark.anyio
async def test_revocation_backend_failure_fails_closed() -> None:
    async def broken(token_claims: dict[str, Any]) -> bool:
        raise ConnectionError("redis down at 10.0.0.7")

    mw, _ = make(revocation_check=broken)
    result = await call(mw, http_scope("GET", "/x", bearer(mint())))
    assert result.status == 503
    assert result.json() == {"detail": "Token revocation check unavailable"}


@pytest.mark.anyio
async def test_on_auth_hook_sync_async_and_veto() -> None:
    def tenant(token_claims: dict[str, Any], state: dict[str, Any]) -> None:
        state["tenant"] = token_claims.get("org")

    mw, app = make(on_auth=tenant)
    await call(mw, http_scope("GET", "/x", bearer(mint(claims(org="acme")))))
    assert app.state["tenant"] == "acme"

    async def verified_only(token_claims: dict[str, Any], state: dict[str, Any]) -> bool:
        return bool(token_claims.get("email_verified"))

    strict, _ = make(on_auth=verified_only)
    assert (
        await call(strict, http_scope("GET", "/x", bearer(mint(claims(email_verified=True)))))
    ).status == 200
    refused = await call(strict, http_scope("GET", "/x", bearer(mint())))
    assert refused.status == 401 and refused.json() == {"detail": "Invalid token"}
    with pytest.raises(TypeError):
        make(on_auth="nope")


@pytest.mark.anyio
async def test_cache_skips_verification_for_a_reused_token(monkeypatch: pytest.MonkeyPatch) -> None:
    mw, _ = make()
    calls = 0
    original = mw._verifier.verify

    async def counting(token: bytes) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return await original(token)

    monkeypatch.setattr(mw._verifier, "verify", counting)
    token = mint()
    for _ in range(3):
        assert (await call(mw, http_scope("GET", "/x", bearer(token)))).status == 200
    assert calls == 1
    mw.clear_cache()
    await call(mw, http_scope("GET", "/x", bearer(token)))
    assert calls == 2

    uncached, _ = make(cache_size=0)
    monkeypatch.setattr(uncached._verifier, "verify", counting)
    for _ in range(2):
        await call(uncached, http_scope("GET", "/x", bearer(token)))
    assert calls == 4


@pytest.mark.anyio
async def test_cache_entries_end_at_the_token_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    mw, _ = make(leeway=0)
    verified: list[bytes] = []
    original = mw._verifier.verify

    async def spy(token: bytes) -> dict[str, Any]:
        verified.append(token)
        return await original(token)

    monkeypatch.setattr(mw._verifier, "verify", spy)
    token = mint(claims(exp=int(time.time()) + 30))
    await call(mw, http_scope("GET", "/x", bearer(token)))
    await call(mw, http_scope("GET", "/x", bearer(token)))
    assert len(verified) == 1
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 31)  # the cache's clock passes exp
    await call(mw, http_scope("GET", "/x", bearer(token)))
    assert len(verified) == 2  # re-verified (and PyJWT, on its own clock, decides)


@pytest.mark.anyio
async def test_expired_token_is_rejected_after_being_cached() -> None:
    mw, _ = make(leeway=0)
    token = mint(claims(exp=int(time.time()) + 1))
    assert (await call(mw, http_scope("GET", "/x", bearer(token)))).status == 200
    await anyio.sleep(2.1)
    result = await call(mw, http_scope("GET", "/x", bearer(token)))
    assert result.status == 401 and result.json() == {"detail": "Token has expired"}


@pytest.mark.anyio
async def test_cache_is_bounded_and_state_is_per_request() -> None:
    mw, app = make(cache_size=2)
    tokens = [mint(claims(sub=f"u{i}")) for i in range(4)]
    for token in tokens:
        await call(mw, http_scope("GET", "/x", bearer(token)))
    assert len(mw._cache) == 2
    await call(mw, http_scope("GET", "/x", bearer(tokens[-1])))
    app.state["scopes"].append("agents:admin")
    app.state["claims"]["sub"] = "mallory"
    await call(mw, http_scope("GET", "/x", bearer(tokens[-1])))
    assert app.state["scopes"] == ["agents:read"] and app.state["claims"]["sub"] == "u3"
    with pytest.raises(ValueError):
        make(cache_size=-1)


@pytest.mark.anyio
async def test_websocket_handshake_is_authenticated() -> None:
    mw, app = make(token_source="both")
    ok = await call(mw, http_scope(type="websocket", path="/ws", headers=bearer(mint())))
    assert ok.messages[0]["type"] == "websocket.accept"
    assert app.state["user_id"] == "user-1"

    denied = await call(mw, http_scope(type="websocket", path="/ws"))
    assert denied.messages == [{"type": "websocket.close", "code": 1008, "reason": ""}]

    with_ext = http_scope(type="websocket", path="/ws", extensions={"websocket.http.response": {}})
    result = await call(mw, with_ext)
    assert result.status == 401 and result.json() == {
        "detail": "Authorization header or authentication cookie missing"
    }


@pytest.mark.anyio
async def test_websocket_cookie_auth_needs_a_trusted_origin() -> None:
    mw, _ = make(token_source="cookie")
    cookie = ("cookie", f"access_token={mint()}")
    host = ("host", "app.example.com")
    same = await call(
        mw,
        http_scope(
            type="websocket",
            path="/ws",
            headers=[cookie, host, ("origin", "http://app.example.com")],
        ),
    )
    assert same.messages[0]["type"] == "websocket.accept"
    hijack = await call(
        mw,
        http_scope(
            type="websocket", path="/ws", headers=[cookie, host, ("origin", "https://evil.example")]
        ),
    )
    assert hijack.messages[0] == {"type": "websocket.close", "code": 1008, "reason": ""}


@pytest.mark.anyio
async def test_websocket_query_token_only_when_enabled() -> None:
    query = f"token={mint()}".encode()
    off, _ = make()
    assert (await call(off, http_scope(type="websocket", path="/ws", query_string=query))).messages[
        0
    ]["type"] == "websocket.close"
    on, _app = make(websocket_query_token=True)
    accepted = await call(on, http_scope(type="websocket", path="/ws", query_string=query))
    assert accepted.messages[0]["type"] == "websocket.accept"
    access = f"access_token={mint()}".encode()
    assert (await call(on, http_scope(type="websocket", path="/ws", query_string=access))).messages[
        0
    ]["type"] == "websocket.accept"
    # never for plain HTTP
    assert (await call(on, http_scope("GET", "/x", query_string=query))).status == 401
    both = f"token={mint()}&access_token=other.tok.en".encode()
    assert (await call(on, http_scope(type="websocket", path="/ws", query_string=both))).messages[
        0
    ]["type"] == "websocket.close"


@pytest.mark.anyio
async def test_streaming_responses_pass_chunk_by_chunk() -> None:
    async def stream(request: Request) -> Response:
        async def events() -> Any:
            for i in range(3):
                yield f"data: {i}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app = Starlette(
        routes=[Route("/runs", stream, methods=["POST"])],
        middleware=[Middleware(JWTMiddleware, verification_keys=[SECRET])],
    )
    result = await call(app, http_scope("POST", "/runs", bearer(mint())))
    bodies = [
        m["body"] for m in result.messages if m["type"] == "http.response.body" and m.get("body")
    ]
    assert bodies == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]


@pytest.mark.anyio
async def test_agno_constructor_names_are_accepted() -> None:
    mw = JWTMiddleware(
        Recorder(),
        verification_keys=[SECRET],
        jwks_file=None,
        algorithm="HS256",
        validate=True,
        authorization=False,
        token_source="header",
        token_header_key="Authorization",
        cookie_name="access_token",
        scopes_claim="scopes",
        user_id_claim="sub",
        session_id_claim="session_id",
        audience_claim="aud",
        audience=None,
        verify_audience=False,
        issuer=None,
        dependencies_claims=[],
        session_state_claims=[],
        scope_mappings=None,
        excluded_route_paths=None,
        admin_scope="root",
    )
    result = await call(mw, http_scope("GET", "/x", bearer(mint())))
    assert result.status == 200


@pytest.mark.anyio
async def test_authorization_hands_off_to_rbac() -> None:
    pytest.importorskip("agentos_mw.rbac")
    mw, app = make(authorization=True)
    admin = mint(claims(scopes=["agent_os:admin"]))
    assert (await call(mw, http_scope("GET", "/agents", bearer(admin)))).status == 200
    assert app.state["authorization_enabled"] is True
    reader = mint(claims(scopes=["sessions:read"]))
    assert (await call(mw, http_scope("GET", "/agents/a1", bearer(reader)))).status == 403
    # scope_mappings alone switches authorization on (Agno semantics)
    mapped, _ = make(scope_mappings={"GET /reports": ["reports:read"]})
    assert (await call(mapped, http_scope("GET", "/reports", bearer(mint())))).status == 403
    granted = mint(claims(scopes=["reports:read"]))
    assert (await call(mapped, http_scope("GET", "/reports", bearer(granted)))).status == 200


_HEADER_NAMES = st.sampled_from(
    [b"authorization", b"cookie", b"origin", b"host", b"sec-fetch-site"]
)


@settings(max_examples=250, deadline=None)
@given(
    st.lists(st.tuples(_HEADER_NAMES, st.binary(max_size=200)), max_size=5),
    st.sampled_from(["GET", "POST", "OPTIONS"]),
    st.sampled_from(["header", "cookie", "both"]),
    st.binary(max_size=100),
)
def test_no_header_or_cookie_bytes_cause_an_exception_or_5xx(
    headers: list[tuple[bytes, bytes]], method: str, source: str, query: bytes
) -> None:
    mw, _ = make(token_source=source, websocket_query_token=True, optional_auth_paths=["/opt"])
    for scope in (
        http_scope(method, "/agents", query_string=query),
        http_scope(method, "/opt", query_string=query),
        http_scope(type="websocket", path="/ws", query_string=query),
    ):
        scope["headers"] = headers
        result = anyio.run(call, mw, scope)
        first = result.messages[0]
        if first["type"] == "websocket.close":
            assert first["code"] == 1008
        elif first["type"] != "websocket.accept":
            assert result.status < 500


@pytest.mark.anyio
async def test_revocation_list_from_the_ratelimit_package_plugs_in() -> None:
    ratelimit = pytest.importorskip("agentos_mw.ratelimit")
    revocations = ratelimit.RevocationList()
    mw, _ = make(revocation_check=revocations)
    exp = int(time.time()) + 600
    token = mint(claims(jti="j-1", exp=exp))
    assert (await call(mw, http_scope("GET", "/x", bearer(token)))).status == 200
    await revocations.revoke_token("j-1", until=exp)
    result = await call(mw, http_scope("GET", "/x", bearer(token)))
    assert result.status == 401 and result.json() == {"detail": "Token has been revoked"}
