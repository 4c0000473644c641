"""Every example in examples/ does what its docstring promises, driven in-process.

Each test imports the example afresh (environment set first, as a user would export it), so no
state leaks between tests and configuration read at import time is exercised.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.driver import Result, call, http_scope

SECRET = "examples-secret-" + "k" * 40


def load(name: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    """Import ``examples.<name>`` anew with ``env`` set (and AGENTOS_MW_SECRET unless given)."""
    env.setdefault("AGENTOS_MW_SECRET", SECRET)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    module_name = f"examples.{name}"
    monkeypatch.delitem(sys.modules, module_name, raising=False)
    module = importlib.import_module(module_name)
    monkeypatch.delitem(sys.modules, module_name, raising=False)
    return module


def token(scopes: Any, key: Any = SECRET, alg: str = "HS256", **claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": "alice", "scopes": scopes, "iat": now, "exp": now + 600, **claims}
    return jwt.encode(payload, key, algorithm=alg)


def bearer(value: str) -> tuple[str, str]:
    return ("authorization", f"Bearer {value}")


# --- custom_middleware.py -------------------------------------------------------------------


@pytest.mark.anyio
async def test_custom_middleware_times_logs_and_limits(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    example = load("custom_middleware", monkeypatch)
    caplog.set_level(logging.INFO, logger="example.requests")
    first = await call(example.app, http_scope("GET", "/agents"))
    assert first.status == 200 and first.json() == [{"id": "a1"}]
    assert (first.header("x-process-time") or "").endswith("ms")
    assert any("'/agents' -> 200" in r.getMessage() for r in caplog.records)
    statuses = [(await call(example.app, http_scope("GET", "/agents"))).status for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    limited = await call(example.app, http_scope("GET", "/agents"))
    assert limited.json() == {"detail": "Rate limit exceeded"}
    assert 1 <= int(limited.header("retry-after") or 0) <= 60
    other_client = http_scope("GET", "/agents", client=("10.0.0.9", 1234))
    assert (await call(example.app, other_client)).status == 200


@pytest.mark.anyio
async def test_custom_timing_logs_after_the_last_chunk_of_a_stream(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    example = load("custom_middleware", monkeypatch)
    caplog.set_level(logging.INFO, logger="example.requests")
    sent: list[str] = []

    async def streaming(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for chunk in (b"data: 1\n\n", b"data: 2\n\n"):
            sent.append("chunk")
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        sent.append("end")
        await send({"type": "http.response.body", "body": b""})

    class Marker(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            sent.append("log")

    marker = Marker()
    logging.getLogger("example.requests").addHandler(marker)
    try:
        result = await call(example.RequestTimingMiddleware(streaming), http_scope("GET", "/s"))
    finally:
        logging.getLogger("example.requests").removeHandler(marker)
    assert result.body == b"data: 1\n\ndata: 2\n\n" and result.header("x-process-time")
    assert sent == ["chunk", "chunk", "end", "log"]


# --- starlette_stack.py ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_starlette_stack_auth_rbac_headers_and_sse(monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("starlette_stack", monkeypatch)
    missing = await call(example.app, http_scope("GET", "/agents"))
    assert missing.status == 401
    assert missing.header("x-content-type-options") == "nosniff"  # headers on errors too
    assert missing.header("x-request-id")

    reader = bearer(token(["agents:read"]))
    listed = await call(example.app, http_scope("GET", "/agents", [reader]))
    assert listed.status == 200 and [a["id"] for a in listed.json()] == ["a1", "a2"]
    assert listed.header("ratelimit-policy")

    denied = await call(example.app, http_scope("POST", "/agents/a1/runs", [reader]))
    assert denied.status == 403

    runner = bearer(token(["agents:*:run"]))
    run = await call(example.app, http_scope("POST", "/agents/a1/runs", [runner]))
    assert run.status == 200
    assert (run.header("content-type") or "").startswith("text/event-stream")
    chunks = [m["body"] for m in run.messages if m["type"] == "http.response.body" and m["body"]]
    assert chunks == [b"data: Hello\n\n", b"data: from\n\n", b"data: a1\n\n"]  # not buffered


@pytest.mark.anyio
async def test_starlette_stack_websocket_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("starlette_stack", monkeypatch)
    extensions = {"websocket.http.response": {}}
    denied = await call(
        example.app, http_scope("GET", "/ws/updates", type="websocket", extensions=extensions)
    )
    assert denied.status == 401
    assert not any(m["type"] == "websocket.accept" for m in denied.messages)

    headers = [bearer(token([]))]
    accepted = await call(
        example.app, http_scope("GET", "/ws/updates", headers, type="websocket", extensions={})
    )
    kinds = [m["type"] for m in accepted.messages]
    assert kinds[0] == "websocket.accept"
    sent = next(m for m in accepted.messages if m["type"] == "websocket.send")
    assert json.loads(sent["text"]) == {"user": "alice", "event": "subscribed"}


@pytest.mark.anyio
async def test_starlette_stack_rate_limits_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("starlette_stack", monkeypatch)
    alice = http_scope("GET", "/agents", [bearer(token(["agents:read"]))])
    statuses = [(await call(example.app, dict(alice))).status for _ in range(11)]
    assert statuses[:10] == [200] * 10 and statuses[10] == 429
    bob = http_scope("GET", "/agents", [bearer(token(["agents:read"], sub="bob"))])
    assert (await call(example.app, bob)).status == 200  # keyed by user, not by address


def test_starlette_stack_without_secret_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("AGENTOS_MW_SECRET", raising=False)
    caplog.set_level(logging.WARNING)
    example = load("starlette_stack", monkeypatch, AGENTOS_MW_SECRET="")
    assert len(example.SECRET) >= 32 and example.SECRET != SECRET
    assert any("AGENTOS_MW_SECRET" in r.getMessage() for r in caplog.records)


# --- jwt_cookies.py -------------------------------------------------------------------------

LOGIN = json.dumps({"username": "demo", "password": "demo-password"}).encode()


async def login(app: Any, body: bytes = LOGIN, scheme: str = "http") -> Result:
    scope = http_scope("POST", "/login", [("content-type", "application/json")], scheme=scheme)
    return await call(app, scope, body)


def cookie_of(result: Result) -> str:
    set_cookie = result.header("set-cookie") or ""
    return set_cookie.split(";", 1)[0]  # "access_token=<jwt>"


@pytest.mark.anyio
async def test_jwt_cookies_login_sets_a_hardened_cookie(monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("jwt_cookies", monkeypatch)
    wrong = json.dumps({"username": "demo", "password": "nope"}).encode()
    assert (await login(example.app, wrong)).status == 401
    unknown = json.dumps({"username": "eve", "password": ""}).encode()
    assert (await login(example.app, unknown)).status == 401
    assert (await login(example.app, b"not json")).status == 400

    ok = await login(example.app)
    assert ok.status == 200
    attributes = [a.strip().lower() for a in (ok.header("set-cookie") or "").split(";")]
    assert {"httponly", "samesite=lax", "path=/", "max-age=3600"} <= set(attributes)
    assert "secure" not in attributes  # plain http: a Secure cookie would never come back
    claims = jwt.decode(cookie_of(ok).split("=", 1)[1], SECRET, algorithms=["HS256"])
    assert claims["sub"] == "demo" and claims["exp"] - claims["iat"] == 3600

    https = await login(example.app, scheme="https")
    assert "secure" in [a.strip().lower() for a in (https.header("set-cookie") or "").split(";")]


@pytest.mark.anyio
async def test_jwt_cookies_cookie_authenticates_and_csrf_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = load("jwt_cookies", monkeypatch)
    cookie = ("cookie", cookie_of(await login(example.app)))
    assert (await call(example.app, http_scope("GET", "/me"))).status == 401
    me = await call(example.app, http_scope("GET", "/me", [cookie]))
    assert me.status == 200 and me.json()["user"] == "demo"

    same_origin = [cookie, ("origin", "http://testserver"), ("host", "testserver")]
    assert (await call(example.app, http_scope("POST", "/notes", same_origin))).status == 201
    fetch_same = [cookie, ("sec-fetch-site", "same-origin")]
    assert (await call(example.app, http_scope("POST", "/notes", fetch_same))).status == 201

    for hostile in (
        [cookie, ("origin", "https://evil.example"), ("host", "testserver")],
        [cookie, ("sec-fetch-site", "cross-site"), ("origin", "https://evil.example")],
        [cookie],  # no Origin, no Sec-Fetch-Site: refused, a browser always sends one
    ):
        refused = await call(example.app, http_scope("POST", "/notes", hostile))
        assert refused.status == 403
        assert refused.json() == {"detail": "Cross-site request rejected"}

    raw = cookie[1].split("=", 1)[1]
    api_client = [bearer(raw)]  # a bearer header is not sent by browsers on their own
    assert (await call(example.app, http_scope("POST", "/notes", api_client))).status == 201


@pytest.mark.anyio
async def test_jwt_cookies_trusted_origin_and_logout(monkeypatch: pytest.MonkeyPatch) -> None:
    example = load("jwt_cookies", monkeypatch, AGENTOS_MW_TRUSTED_ORIGINS="https://app.example, ")
    cookie = ("cookie", cookie_of(await login(example.app)))
    spa = [cookie, ("origin", "https://app.example"), ("host", "api.example")]
    assert (await call(example.app, http_scope("POST", "/notes", spa))).status == 201

    cross = [cookie, ("origin", "https://evil.example"), ("host", "api.example")]
    assert (await call(example.app, http_scope("POST", "/logout", cross))).status == 403
    out = await call(example.app, http_scope("POST", "/logout", spa))
    assert out.status == 200
    cleared = (out.header("set-cookie") or "").lower()
    assert cleared.startswith('access_token="";') or cleared.startswith("access_token=;")
    assert "max-age=0" in cleared and "httponly" in cleared


# --- agent_os.py ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def agent_os_app() -> Iterator[Any]:
    pytest.importorskip("agno.os")
    pytest.importorskip("openai", reason="examples/agent_os.py uses Agno's OpenAI model")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # building needs no key
        yield load("agent_os", monkeypatch).app


async def agentos_request(app: Any, method: str, path: str, scopes: Any = None) -> httpx.Response:
    headers = {} if scopes is None else {"Authorization": f"Bearer {token(scopes)}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agentos") as client:
        return await client.request(method, path, headers=headers)


@pytest.mark.anyio
async def test_agent_os_lists_only_the_agents_a_token_may_read(agent_os_app: Any) -> None:
    assert (await agentos_request(agent_os_app, "GET", "/agents")).status_code == 401
    assert (await agentos_request(agent_os_app, "GET", "/health")).status_code == 200
    one = await agentos_request(agent_os_app, "GET", "/agents", ["agents:support:read"])
    assert one.status_code == 200 and [a["id"] for a in one.json()] == ["support"]
    everyone = await agentos_request(agent_os_app, "GET", "/agents", ["agents:read"])
    assert sorted(a["id"] for a in everyone.json()) == ["research", "support"]
    assert (
        await agentos_request(agent_os_app, "GET", "/agents/research", ["agents:support:read"])
    ).status_code == 403
    assert (
        await agentos_request(agent_os_app, "GET", "/agents/support", ["agents:support:read"])
    ).status_code == 200


@pytest.mark.anyio
async def test_agent_os_runs_need_the_run_scope_and_unmapped_routes_fail_closed(
    agent_os_app: Any,
) -> None:
    denied = await agentos_request(
        agent_os_app, "POST", "/agents/research/runs", ["agents:support:run"]
    )
    assert denied.status_code == 403
    assert denied.json() == {"detail": "Insufficient permissions. Required scope(s): agents:run"}
    # A route AgentOS serves that the scope map does not mention: unmapped="deny".
    unmapped = await agentos_request(agent_os_app, "GET", "/no-such-route", ["agents:read"])
    assert unmapped.status_code == 403
    admin = await agentos_request(agent_os_app, "GET", "/config", ["agent_os:admin"])
    assert admin.status_code == 200


# --- fastapi_custom.py ----------------------------------------------------------------------


class JWKSServer:
    """A JWK Set served over real HTTP on loopback, as an IdP would serve it."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        body = json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]})
        payload = body.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def token(self, scope: str, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "sub": "auth0|alice",
            "iss": ISSUER,
            "aud": [AUDIENCE, "https://tenant.example/userinfo"],
            "scope": scope,
            "iat": now,
            "exp": now + 600,
            **claims,
        }
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": "k1"})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


ISSUER = "https://tenant.example/"
AUDIENCE = "https://api.example"


@pytest.fixture(scope="module")
def idp() -> Iterator[JWKSServer]:
    server = JWKSServer()
    yield server
    server.close()


@pytest.fixture
def fastapi_example(monkeypatch: pytest.MonkeyPatch, idp: JWKSServer, redis_prefix: str) -> Any:
    from tests.conftest import REDIS_URL

    return load(
        "fastapi_custom",
        monkeypatch,
        JWKS_URL=idp.url,
        AUTH_ISSUER=ISSUER,
        AUTH_AUDIENCE=AUDIENCE,
        AGENTOS_MW_REDIS_URL=REDIS_URL,
        AGENTOS_MW_REDIS_PREFIX=redis_prefix,
    )


def test_fastapi_custom_refuses_to_start_without_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("JWKS_URL", "AUTH_ISSUER", "AUTH_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="JWKS_URL"):
        load("fastapi_custom", monkeypatch)


@pytest.mark.anyio
async def test_fastapi_custom_jwks_per_route_scopes(fastapi_example: Any, idp: JWKSServer) -> None:
    app = fastapi_example.app
    try:
        reader = [bearer(idp.token("openid agents:read"))]
        listed = await call(app, http_scope("GET", "/agents", reader))
        assert listed.status == 200, listed.body
        assert [a["id"] for a in listed.json()] == ["a1", "a2"]
        me = await call(app, http_scope("GET", "/me", reader))
        assert me.json() == {"user": "auth0|alice", "scopes": ["openid", "agents:read"]}

        run = await call(app, http_scope("POST", "/agents/a1/runs", reader))
        assert run.status == 403
        assert run.json() == {"detail": "Insufficient permissions. Required scope(s): agents:run"}
        # Auth0's RBAC puts permissions in a list claim; both claims are read.
        a1_runner = [bearer(idp.token("openid", permissions=["agents:a1:run"]))]
        assert (await call(app, http_scope("POST", "/agents/a1/runs", a1_runner))).status == 200
        assert (await call(app, http_scope("POST", "/agents/a2/runs", a1_runner))).status == 403
        assert (await call(app, http_scope("DELETE", "/agents/a1", a1_runner))).status == 403

        wrong_audience = [bearer(idp.token("agents:read", aud="https://other.example"))]
        rejected = await call(app, http_scope("GET", "/agents", wrong_audience))
        assert rejected.status == 401
        assert rejected.json() == {"detail": "Invalid token audience"}
        wrong_issuer = [bearer(idp.token("agents:read", iss="https://evil.example/"))]
        assert (await call(app, http_scope("GET", "/agents", wrong_issuer))).status == 401
        assert (await call(app, http_scope("GET", "/agents"))).status == 401
        assert (await call(app, http_scope("GET", "/health"))).status == 200
    finally:
        await fastapi_example.store.aclose()


@pytest.mark.anyio
async def test_fastapi_custom_rate_limits_runs_in_redis(
    fastapi_example: Any, idp: JWKSServer, redis_client: Any, redis_prefix: str
) -> None:
    app = fastapi_example.app
    try:
        runner = [bearer(idp.token("agents:run"))]
        statuses = []
        for _ in range(6):
            statuses.append((await call(app, http_scope("POST", "/agents/a1/runs", runner))).status)
        assert statuses == [200] * 5 + [429]
        limited = await call(app, http_scope("POST", "/agents/a1/runs", runner))
        assert int(limited.header("retry-after") or 0) >= 1
        other = [bearer(idp.token("agents:run", sub="auth0|bob"))]
        assert (await call(app, http_scope("POST", "/agents/a1/runs", other))).status == 200
        keys = [key async for key in redis_client.scan_iter(match=redis_prefix + "*")]
        assert keys, "the limits are counted in Redis under the configured prefix"
    finally:
        await fastapi_example.store.aclose()


@pytest.mark.anyio
async def test_fastapi_custom_serves_when_redis_is_down(
    monkeypatch: pytest.MonkeyPatch, idp: JWKSServer
) -> None:
    example = load(
        "fastapi_custom",
        monkeypatch,
        JWKS_URL=idp.url,
        AUTH_ISSUER=ISSUER,
        AUTH_AUDIENCE=AUDIENCE,
        AGENTOS_MW_REDIS_URL="redis://127.0.0.1:1/0",  # nothing listens on port 1
    )
    try:
        runner = [bearer(idp.token("agents:run"))]
        for _ in range(7):  # past the 5/minute limit: nothing counts, nothing fails
            result = await call(example.app, http_scope("POST", "/agents/a1/runs", runner))
            assert result.status == 200
    finally:
        await example.store.aclose()
