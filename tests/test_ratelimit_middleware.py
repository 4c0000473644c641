"""RateLimitMiddleware as users see it: statuses, headers, keys, routes, websockets, streaming."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from agentos_mw.ratelimit import Bucket, Decision, MemoryStore, RateLimitMiddleware, StoreError
from agentos_mw.ratelimit.keys import make_key_func
from tests.driver import call, http_scope

seen_scopes: list[dict[str, Any]] = []


async def ok(scope: Any, receive: Any, send: Any) -> None:
    seen_scopes.append(scope)
    if scope["type"] == "websocket":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})
        return
    if scope["type"] == "lifespan":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


async def streaming(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
    )
    for i in range(3):
        await send(
            {"type": "http.response.body", "body": f"data: {i}\n\n".encode(), "more_body": True}
        )
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def statuses(app: Any, n: int, **scope: Any) -> list[int]:
    return [(await call(app, http_scope(**scope))).status for _ in range(n)]


@pytest.mark.anyio
async def test_seed_form_limits_per_minute_and_answers_429_with_retry_after() -> None:
    app = RateLimitMiddleware(ok, requests_per_minute=3)
    assert await statuses(app, 3) == [200, 200, 200]
    refused = await call(app, http_scope())
    assert refused.status == 429
    assert refused.json() == {"detail": "Too many requests"}
    assert refused.header("content-type") == "application/json"
    retry = int(refused.header("retry-after") or "")
    assert 1 <= retry <= 20  # GCRA: one request back every 20 s


@pytest.mark.anyio
async def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    app = RateLimitMiddleware(ok, limits="10/second")
    await statuses(app, 10)
    refused = await call(app, http_scope())
    assert refused.header("retry-after") == "1"  # 0.1 s rounds up to 1


@pytest.mark.anyio
async def test_ietf_and_x_headers_on_allowed_and_refused_responses() -> None:
    app = RateLimitMiddleware(ok, limits=["2/minute", "100/hour"])
    first = await call(app, http_scope())
    assert first.header("ratelimit-policy") == '"2-per-60s";q=2;w=60, "100-per-3600s";q=100;w=3600'
    assert re.fullmatch(r'"2-per-60s";r=1;t=\d+', first.header("ratelimit") or "")
    assert first.header("x-ratelimit-limit") == "2"
    assert first.header("x-ratelimit-remaining") == "1"
    assert int(first.header("x-ratelimit-reset") or "") <= 60
    await call(app, http_scope())
    refused = await call(app, http_scope())
    assert refused.status == 429
    assert refused.header("x-ratelimit-remaining") == "0"
    assert re.fullmatch(r'"2-per-60s";r=0;t=\d+', refused.header("ratelimit") or "")
    for name, _ in first.headers:
        assert name == name.lower()


@pytest.mark.anyio
async def test_header_switches() -> None:
    only_ietf = await call(
        RateLimitMiddleware(ok, requests_per_minute=5, x_headers=False), http_scope()
    )
    assert only_ietf.header("ratelimit") and only_ietf.header("x-ratelimit-limit") is None
    only_x = await call(RateLimitMiddleware(ok, requests_per_minute=5, headers=False), http_scope())
    assert only_x.header("ratelimit") is None and only_x.header("x-ratelimit-limit") == "5"
    neither = await call(
        RateLimitMiddleware(ok, requests_per_minute=5, headers=False, x_headers=False), http_scope()
    )
    assert [k for k, _ in neither.headers] == [b"content-type"]
    quiet = RateLimitMiddleware(ok, requests_per_minute=1, headers=False, x_headers=False)
    await call(quiet, http_scope())
    refused = await call(quiet, http_scope())
    assert refused.status == 429
    assert [k for k, _ in refused.headers] == [b"content-type", b"content-length", b"retry-after"]


@pytest.mark.anyio
async def test_streaming_passes_chunk_by_chunk() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    await RateLimitMiddleware(streaming, requests_per_minute=5)(http_scope(), receive, send)
    assert [m["type"] for m in sent] == ["http.response.start"] + ["http.response.body"] * 4
    assert [m.get("body") for m in sent[1:]] == [
        b"data: 0\n\n",
        b"data: 1\n\n",
        b"data: 2\n\n",
        b"",
    ]
    assert dict(sent[0]["headers"])[b"x-ratelimit-remaining"] == b"4"


@pytest.mark.anyio
async def test_lifespan_passes_untouched() -> None:
    store = MemoryStore()
    app = RateLimitMiddleware(ok, requests_per_minute=1, store=store)
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    for _ in range(3):
        await app(scope, None, None)  # type: ignore[arg-type]
    assert seen_scopes[-1] is scope
    assert len(store) == 0


@pytest.mark.anyio
async def test_websocket_handshakes_count_and_are_denied_per_design() -> None:
    app = RateLimitMiddleware(ok, requests_per_minute=1)
    accepted = await call(app, http_scope(type="websocket", path="/ws"))
    assert accepted.messages[0]["type"] == "websocket.accept"
    closed = await call(app, http_scope(type="websocket", path="/ws"))
    assert closed.messages == [{"type": "websocket.close", "code": 1008, "reason": ""}]
    denied = await call(
        app, http_scope(type="websocket", path="/ws", extensions={"websocket.http.response": {}})
    )
    assert denied.status == 429
    assert denied.json() == {"detail": "Too many requests"}
    assert denied.header("retry-after")


@pytest.mark.anyio
async def test_exempt_paths_are_never_counted() -> None:
    app = RateLimitMiddleware(ok, requests_per_minute=1, exempt=["/health", "/docs/**"])
    assert await statuses(app, 5, path="/health") == [200] * 5
    assert await statuses(app, 3, path="/docs/a/b") == [200] * 3
    health = await call(app, http_scope(path="/health"))
    assert health.header("ratelimit") is None
    assert await statuses(app, 2, path="/agents") == [200, 429]


@pytest.mark.anyio
async def test_route_limits_apply_on_top_of_the_global_limits() -> None:
    app = RateLimitMiddleware(
        ok, limits="3/minute", route_limits={"POST /agents/*/runs": "1/minute"}
    )
    assert (await call(app, http_scope("POST", "/agents/a1/runs"))).status == 200
    refused = await call(app, http_scope("POST", "/agents/a2/runs"))
    assert refused.status == 429
    assert refused.header("x-ratelimit-limit") == "1"
    assert '"1-per-60s";q=1;w=60' in (refused.header("ratelimit-policy") or "")
    # the run counted against the global 3/minute too; the refused one did not
    assert await statuses(app, 3, path="/agents") == [200, 200, 429]


@pytest.mark.anyio
async def test_route_limits_alone_leave_other_routes_unlimited() -> None:
    app = RateLimitMiddleware(ok, route_limits={"POST /agents/{agent_id}/runs": ["1/minute"]})
    assert await statuses(app, 4, path="/agents") == [200] * 4
    assert await statuses(app, 2, method="POST", path="/agents/x/runs/") == [200, 429]


@pytest.mark.anyio
async def test_user_key_uses_the_authenticated_user_and_falls_back_to_ip() -> None:
    app = RateLimitMiddleware(ok, requests_per_minute=1, key="user")

    def as_user(user: str) -> dict[str, Any]:
        return http_scope(state={"authenticated": True, "user_id": user})

    assert (await call(app, as_user("alice"))).status == 200
    assert (await call(app, as_user("bob"))).status == 200  # same IP, other user
    assert (await call(app, as_user("alice"))).status == 429
    # not authenticated (even with a user_id in state): counted by IP
    assert (
        await call(app, http_scope(state={"authenticated": False, "user_id": "carol"}))
    ).status == 200
    assert (await call(app, http_scope())).status == 429


@pytest.mark.anyio
async def test_api_key_key_hashes_the_key_and_falls_back_to_ip() -> None:
    store = MemoryStore()
    app = RateLimitMiddleware(ok, requests_per_minute=1, key="api_key:X-API-Key", store=store)
    assert (await call(app, http_scope(headers=[("x-api-key", "secret-one")]))).status == 200
    assert (await call(app, http_scope(headers=[("x-api-key", "secret-two")]))).status == 200
    assert (await call(app, http_scope(headers=[("x-api-key", "secret-one")]))).status == 429
    assert (await call(app, http_scope())).status == 200
    assert (await call(app, http_scope())).status == 429
    assert not any("secret" in name for name in store._data)


@pytest.mark.anyio
async def test_callable_key_none_means_not_limited() -> None:
    app = RateLimitMiddleware(ok, requests_per_minute=1, key=lambda scope: None)
    results = [await call(app, http_scope()) for _ in range(3)]
    assert [r.status for r in results] == [200] * 3
    assert results[0].header("ratelimit") is None
    tenant = RateLimitMiddleware(ok, requests_per_minute=1, key=lambda scope: scope["path"])
    assert await statuses(tenant, 2, path="/a") == [200, 429]
    assert await statuses(tenant, 1, path="/b") == [200]


@pytest.mark.anyio
async def test_cost_callable() -> None:
    app = RateLimitMiddleware(
        ok, limits="5/minute", cost=lambda scope: 3 if scope["method"] == "POST" else 0
    )
    assert await statuses(app, 3, method="GET") == [200] * 3  # cost 0: free
    assert await statuses(app, 2, method="POST") == [200, 429]


@pytest.mark.anyio
async def test_spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_key() -> None:
    app = RateLimitMiddleware(ok, requests_per_minute=1, trusted_proxies=["10.0.0.0/8"])
    peer = ("203.0.113.9", 4000)
    assert (
        await call(app, http_scope(client=peer, headers=[("x-forwarded-for", "1.1.1.1")]))
    ).status == 200
    assert (
        await call(app, http_scope(client=peer, headers=[("x-forwarded-for", "2.2.2.2")]))
    ).status == 429
    assert (
        await call(app, http_scope(client=peer, headers=[("forwarded", "for=3.3.3.3")]))
    ).status == 429
    proxy = ("10.0.0.5", 4000)  # a trusted proxy: the forwarded client is the key
    assert (
        await call(app, http_scope(client=proxy, headers=[("x-forwarded-for", "1.1.1.1")]))
    ).status == 200
    assert (
        await call(app, http_scope(client=proxy, headers=[("x-forwarded-for", "2.2.2.2")]))
    ).status == 200
    assert (
        await call(app, http_scope(client=proxy, headers=[("x-forwarded-for", "2.2.2.2")]))
    ).status == 429


@pytest.mark.anyio
async def test_ipv6_clients_share_one_budget_per_64_network() -> None:
    """A single IPv6 client usually owns a whole /64: fresh addresses must not mean fresh budgets."""
    app = RateLimitMiddleware(ok, requests_per_minute=2)
    same_64 = ["2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:DB8:1:2:0:0:0:9"]
    assert [(await call(app, http_scope(client=(address, 1)))).status for address in same_64] == [
        200,
        200,
        429,
    ]
    assert (await call(app, http_scope(client=("2001:db8:1:3::1", 1)))).status == 200

    per_address = RateLimitMiddleware(ok, requests_per_minute=1, ipv6_prefix=128)
    assert [
        (await call(per_address, http_scope(client=(address, 1)))).status for address in same_64
    ] == [200, 200, 200]


@pytest.mark.anyio
async def test_ipv6_prefix_applies_to_forwarded_clients_and_the_user_key_fallback() -> None:
    app = RateLimitMiddleware(
        ok, requests_per_minute=1, key="user", trusted_proxies=["10.0.0.0/8"], ipv6_prefix=48
    )
    proxy = ("10.0.0.5", 4000)
    first = [("x-forwarded-for", "2001:db8:aa::1")]
    same_48 = [("x-forwarded-for", "2001:db8:aa:ffff::2")]
    other_48 = [("x-forwarded-for", "2001:db8:ab::1")]
    assert (await call(app, http_scope(client=proxy, headers=first))).status == 200
    assert (await call(app, http_scope(client=proxy, headers=same_48))).status == 429
    assert (await call(app, http_scope(client=proxy, headers=other_48))).status == 200


def test_ipv6_key_forms() -> None:
    key = make_key_func("ip", [])
    assert key(http_scope(client=("2001:db8::1", 1))) == "ip:2001:db8::/64"
    assert key(http_scope(client=("::ffff:192.0.2.7", 1))) == key(
        http_scope(client=("192.0.2.7", 1))
    )
    assert key(http_scope(client=("192.0.2.7", 1))) == "ip:192.0.2.7"
    assert key(http_scope(client=("not:an:address", 1))) == "ip:not:an:address"
    assert make_key_func("ip", [], 128)(http_scope(client=("2001:DB8::0:1", 1))) == "ip:2001:db8::1"
    for bad in (0, 129, -1):
        with pytest.raises(ValueError, match="ipv6_prefix"):
            RateLimitMiddleware(ok, ipv6_prefix=bad)
    for wrong in (True, "64", 64.0):
        with pytest.raises(TypeError, match="ipv6_prefix"):
            RateLimitMiddleware(ok, ipv6_prefix=wrong)  # type: ignore[arg-type]


@settings(max_examples=250, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([b"x-forwarded-for", b"forwarded", b"x-real-ip"]),
            st.binary(max_size=80),
        )
    )
)
def test_any_forwarded_header_from_an_untrusted_peer_keys_on_the_peer(
    headers: Sequence[tuple[bytes, bytes]],
) -> None:
    key = make_key_func("ip", ["10.0.0.0/8"])
    assert key(http_scope(client=("198.51.100.7", 1), headers=headers)) == "ip:198.51.100.7"


class FailingStore(MemoryStore):
    async def hit(
        self, key: str, buckets: Sequence[Bucket], cost: int = 1, *, now_us: int | None = None
    ) -> Decision:
        raise StoreError("down")


@pytest.mark.anyio
async def test_on_store_error_allow_and_deny() -> None:
    lenient = RateLimitMiddleware(ok, requests_per_minute=1, store=FailingStore())
    assert await statuses(lenient, 3) == [200] * 3
    assert lenient.store_errors == 3
    strict = RateLimitMiddleware(
        ok, requests_per_minute=1, store=FailingStore(), on_store_error="deny"
    )
    refused = await call(strict, http_scope())
    assert refused.status == 503
    assert refused.json() == {"detail": "Rate limiting unavailable"}


@pytest.mark.anyio
async def test_200_concurrent_requests_against_50_in_memory() -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0)
        await ok(scope, receive, send)

    app = RateLimitMiddleware(slow, limits="50/minute")
    results = await asyncio.gather(*(call(app, http_scope()) for _ in range(200)))
    assert [r.status for r in results].count(200) == 50


@pytest.mark.anyio
async def test_works_inside_starlette_with_add_middleware() -> None:
    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hi")

    app = Starlette(
        routes=[Route("/", home)],
        middleware=[Middleware(RateLimitMiddleware, requests_per_minute=2)],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        codes = [(await client.get("/")).status_code for _ in range(3)]
        assert codes == [200, 200, 429]


@settings(max_examples=200, deadline=None)
@given(
    path=st.text(max_size=60).map(lambda s: "/" + s),
    headers=st.lists(
        st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=60)), max_size=6
    ),
    client=st.one_of(st.none(), st.tuples(st.text(max_size=40), st.integers(0, 65535))),
    method=st.sampled_from(["GET", "POST", "HEAD", "PATCH", "FOO"]),
)
def test_hostile_requests_never_raise(path: str, headers: Any, client: Any, method: str) -> None:
    app = RateLimitMiddleware(
        ok,
        limits="1000/minute",
        route_limits={"POST /agents/*/runs": "5/minute"},
        exempt=["/health"],
        key="api_key:x-api-key",
        trusted_proxies=["0.0.0.0/0"],
    )
    result = asyncio.run(call(app, http_scope(method, path, headers, client=client)))
    assert result.status in (200, 429)


def test_configuration_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="either requests_per_minute or limits"):
        RateLimitMiddleware(ok, requests_per_minute=5, limits="1/second")
    with pytest.raises(ValueError, match="invalid rate limit"):
        RateLimitMiddleware(ok, limits="lots/minute")
    with pytest.raises(ValueError, match="algorithm"):
        RateLimitMiddleware(ok, algorithm="token_bucket")
    with pytest.raises(ValueError, match="on_store_error"):
        RateLimitMiddleware(ok, on_store_error="ignore")
    with pytest.raises(ValueError, match="unknown key"):
        RateLimitMiddleware(ok, key="cookie")
    with pytest.raises(ValueError, match="header name"):
        RateLimitMiddleware(ok, key="api_key:")
    with pytest.raises(TypeError, match="exempt"):
        RateLimitMiddleware(ok, exempt="/health")
    with pytest.raises(TypeError, match="requests_per_minute"):
        RateLimitMiddleware(ok, requests_per_minute="100")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="route pattern"):
        RateLimitMiddleware(ok, route_limits={"agents": "1/minute"})
    with pytest.raises(TypeError, match="store"):
        RateLimitMiddleware(ok, store=object())  # type: ignore[arg-type]
