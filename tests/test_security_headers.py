"""SecurityHeadersMiddleware: OWASP defaults, no duplicates, app values kept, body untouched."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agentos_mw.headers import API_CSP, SecurityHeadersMiddleware
from tests.driver import call, http_scope

pytestmark = pytest.mark.anyio

DEFAULTS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "content-security-policy": API_CSP,
}


def responder(headers: list[tuple[bytes, bytes]], body: bytes = b"{}") -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def plain() -> Any:
    return responder([(b"content-type", b"application/json"), (b"content-length", b"2")])


async def test_owasp_defaults_on_http_without_hsts() -> None:
    result = await call(SecurityHeadersMiddleware(plain()), http_scope())
    for name, expected in DEFAULTS.items():
        assert result.header(name) == expected
    assert "camera=()" in (result.header("permissions-policy") or "")
    assert result.header("strict-transport-security") is None
    assert result.header("x-xss-protection") is None
    assert all(k == k.lower() for k, _ in result.headers)


async def test_hsts_on_https_or_when_forced() -> None:
    https = await call(SecurityHeadersMiddleware(plain()), http_scope(scheme="https"))
    assert https.header("strict-transport-security") == "max-age=31536000; includeSubDomains"
    forced = await call(SecurityHeadersMiddleware(plain(), force_hsts=True), http_scope())
    assert forced.header("strict-transport-security") is not None
    off = await call(SecurityHeadersMiddleware(plain(), hsts=None), http_scope(scheme="https"))
    assert off.header("strict-transport-security") is None


async def test_content_length_and_body_intact() -> None:
    app = responder([(b"content-length", b"5"), (b"content-type", b"text/plain")], b"hello")
    result = await call(SecurityHeadersMiddleware(app), http_scope())
    assert result.header_all("content-length") == ["5"] and result.body == b"hello"


async def test_app_values_are_kept_and_never_duplicated() -> None:
    app = responder(
        [(b"X-Frame-Options", b"SAMEORIGIN"), (b"content-security-policy", b"default-src 'self'")]
    )
    result = await call(SecurityHeadersMiddleware(app), http_scope(scheme="https"))
    counts = Counter(k.lower() for k, _ in result.headers)
    assert max(counts.values()) == 1
    assert (b"X-Frame-Options", b"SAMEORIGIN") in result.headers  # the app's header, as sent
    assert result.header("content-security-policy") == "default-src 'self'"


async def test_override_replaces_app_values_once() -> None:
    app = responder([(b"x-frame-options", b"SAMEORIGIN"), (b"x-frame-options", b"ALLOW")])
    result = await call(SecurityHeadersMiddleware(app, override=True), http_scope())
    assert result.header_all("x-frame-options") == ["DENY"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([*DEFAULTS, "server", "x-powered-by", "content-type", "x-other"]),
            st.binary(min_size=1, max_size=20),
        ),
        max_size=6,
        unique_by=lambda h: h[0],
    ),
    st.booleans(),
    st.booleans(),
)
def test_no_duplicates_whatever_the_app_sends(
    headers: list[tuple[str, bytes]], override: bool, https: bool
) -> None:
    import anyio

    raw = [(k.encode(), v) for k, v in headers]
    mw = SecurityHeadersMiddleware(responder(raw), override=override)
    result = anyio.run(call, mw, http_scope(scheme="https" if https else "http"))
    counts = Counter(k for k, _ in result.headers)
    assert max(counts.values()) == 1
    for name in DEFAULTS:
        assert result.header(name) is not None
    if not override:
        for k, v in raw:
            assert result.header(k.decode()) == v.decode("latin-1")


NAME_POOL = [
    *DEFAULTS,
    "server",
    "x-powered-by",
    "content-type",
    "x-accel-buffering",
    "strict-transport-security",
    "x-other",
    "123",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(NAME_POOL),
            st.sampled_from(["lower", "title", "bytearray"]),
            st.sampled_from([b"text/event-stream", b"Text/Event-Stream; x=1", b"v", b""]),
        ),
        max_size=6,
    ),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
@example(  # two content types: only the first decides about x-accel-buffering
    [("content-type", "lower", b"text/event-stream"), ("content-type", "lower", b"v")],
    False,
    False,
    False,
)
@example(
    [("content-type", "lower", b"v"), ("content-type", "lower", b"text/event-stream")],
    False,
    False,
    False,
)
def test_fast_path_gives_what_the_general_merge_gives(
    headers: list[tuple[str, str, bytes]], override: bool, hide_server: bool, https: bool
) -> None:
    """The per-request shortcut (no name of ours present) must never change the outcome."""
    raw: list[tuple[Any, bytes]] = []
    for name, shape, value in headers:
        encoded = (name.title() if shape == "title" else name).encode()
        raw.append((bytearray(encoded) if shape == "bytearray" else encoded, value))
    mw = SecurityHeadersMiddleware(responder([]), override=override, hide_server=hide_server)
    ours = mw._https if https else mw._plain
    assert mw._merge(list(raw), ours) == mw._merge_general(list(raw), ours)


async def test_each_header_settable_and_disableable() -> None:
    mw = SecurityHeadersMiddleware(
        plain(),
        frame_options="SAMEORIGIN",
        referrer_policy=None,
        content_security_policy=None,
        permissions_policy=None,
        xss_protection="0",
        custom_headers={"X-Permitted-Cross-Domain-Policies": "none"},
    )
    result = await call(mw, http_scope())
    assert result.header("x-frame-options") == "SAMEORIGIN"
    assert (
        result.header("referrer-policy") is None
        and result.header("content-security-policy") is None
    )
    assert result.header("permissions-policy") is None
    assert result.header("x-xss-protection") == "0"
    assert result.header("x-permitted-cross-domain-policies") == "none"


async def test_hide_server_headers() -> None:
    app = responder(
        [(b"server", b"gunicorn"), (b"X-Powered-By", b"php"), (b"content-length", b"2")]
    )
    result = await call(SecurityHeadersMiddleware(app, hide_server=True), http_scope())
    assert {k.lower() for k, _ in result.headers}.isdisjoint({b"server", b"x-powered-by"})
    kept = await call(SecurityHeadersMiddleware(app), http_scope())
    assert kept.header("server") == "gunicorn"


async def test_csp_nonce_per_request_in_state_and_header() -> None:
    async def page(request: Request) -> Response:
        return JSONResponse({"nonce": request.state.csp_nonce})

    mw = SecurityHeadersMiddleware(
        Starlette(routes=[Route("/", page)]),
        content_security_policy="script-src 'nonce-{nonce}'; object-src 'none'",
        csp_nonce=True,
    )
    first = await call(mw, http_scope())
    second = await call(mw, http_scope())
    nonce = first.json()["nonce"]
    assert (
        first.header("content-security-policy") == f"script-src 'nonce-{nonce}'; object-src 'none'"
    )
    assert nonce != second.json()["nonce"] and len(nonce) >= 22


async def test_sse_responses_get_x_accel_buffering_no() -> None:
    async def stream() -> Any:
        yield b"data: 1\n\n"

    async def run(request: Request) -> Response:
        return StreamingResponse(stream(), media_type="text/event-stream")

    async def other(request: Request) -> Response:
        return JSONResponse({})

    mw = SecurityHeadersMiddleware(Starlette(routes=[Route("/run", run), Route("/x", other)]))
    assert (await call(mw, http_scope(path="/run"))).header_all("x-accel-buffering") == ["no"]
    assert (await call(mw, http_scope(path="/x"))).header("x-accel-buffering") is None


async def test_docs_pages_are_exempt_from_the_api_csp() -> None:
    result = await call(SecurityHeadersMiddleware(plain()), http_scope(path="/docs"))
    assert result.header("content-security-policy") is None
    assert result.header("x-content-type-options") == "nosniff"


async def test_websocket_and_lifespan_pass_through() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(send)

    async def send(message: Any) -> None:
        return None

    mw = SecurityHeadersMiddleware(app)
    await mw({"type": "lifespan"}, send, send)
    await mw(http_scope(type="websocket"), send, send)
    assert seen == [send, send]


@pytest.mark.parametrize(
    "options",
    [
        {"frame_options": "DENY\r\nset-cookie: a=b"},
        {"referrer_policy": "caf\u00e9\u2603"},
        {"custom_headers": {"bad name": "x"}},
        {"csp_nonce": True},  # the API preset has no {nonce} placeholder
        {"hsts": 5},
    ],
)
def test_bad_configuration_is_rejected(options: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        SecurityHeadersMiddleware(plain(), **options)
