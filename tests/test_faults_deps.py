"""Dependency faults under the complete stack: Redis slow, stopped and restarted; the JWKS endpoint
down, slow, drip-feeding, answering garbage and rotating keys; the wall clock jumping.

Requests are answered within the configured timeouts, follow the configured policy while a
dependency is gone, and recover without a restart once it is back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from prometheus_client import CollectorRegistry

from agentos_mw import MemoryStore, RedisStore, RevocationList
from agentos_mw._asgi import ASGIApp
from tests.driver import Result, call, http_scope
from tests.hostile.faultkit import IdP, LatencyProxy, PrivateRedis
from tests.hostile.stack import Guard, Seen, claims, good_token, make_app, wrap

pytestmark = pytest.mark.anyio


def bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {token}".encode())]


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    try:
        server = PrivateRedis()
    except FileNotFoundError:
        pytest.skip("redis-server binary not found")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def redis_stack(url: str, *, timeout: float, policy: str, limit: str = "5/minute") -> Any:
    store = RedisStore(url=url, timeout=timeout, prefix="agentos_mw_faults:")
    app = wrap(
        Guard(make_app(Seen()), Seen()),
        CollectorRegistry(),
        rate_limit={"limits": [limit], "store": store, "on_store_error": policy},
    )
    return app, store


async def timed(app: ASGIApp, token: str, path: str = "/agents") -> tuple[Result, float]:
    start = time.monotonic()
    result = await asyncio.wait_for(call(app, http_scope("GET", path, bearer(token))), 10)
    return result, time.monotonic() - start


# -- Redis -------------------------------------------------------------------------------------


async def test_slow_redis_within_the_timeout_still_counts_exactly(
    redis_server: PrivateRedis,
) -> None:
    with LatencyProxy(redis_server.port) as proxy:
        proxy.delay = 0.03  # 60 ms a round trip, well inside the 1 s timeout
        app, store = redis_stack(f"redis://127.0.0.1:{proxy.port}/0", timeout=1.0, policy="deny")
        try:
            token = good_token("slow-redis")
            statuses = [(await timed(app, token))[0].status for _ in range(7)]
            assert statuses == [200] * 5 + [429] * 2
            assert store.errors == 0
        finally:
            await store.aclose()


@pytest.mark.parametrize(("policy", "status"), [("allow", 200), ("deny", 503)])
async def test_redis_slower_than_the_timeout_follows_the_policy_in_time(
    redis_server: PrivateRedis, policy: str, status: int
) -> None:
    with LatencyProxy(redis_server.port) as proxy:
        app, store = redis_stack(f"redis://127.0.0.1:{proxy.port}/0", timeout=0.2, policy=policy)
        try:
            token = good_token("late-redis")
            assert (await timed(app, token))[0].status == 200
            proxy.delay = 2.0
            for _ in range(3):
                result, elapsed = await timed(app, token)
                assert result.status == status
                assert elapsed < 1.5  # bounded by the store timeout, not by Redis (2 s)
            if status == 503:
                assert result.json() == {"detail": "Rate limiting unavailable"}
                assert result.header("retry-after") == "1"
            proxy.delay = 0.0
            for _ in range(50):  # connections the slow replies poisoned are replaced
                result, _ = await timed(app, token)
                if result.status in (200, 429) and store.errors:
                    break
                await asyncio.sleep(0.05)
            assert result.status in (200, 429)
        finally:
            await store.aclose()


async def test_redis_stopped_then_restarted_recovers_without_a_restart(
    redis_server: PrivateRedis,
) -> None:
    app, store = redis_stack(redis_server.url, timeout=0.3, policy="deny", limit="3/minute")
    try:
        token = good_token("restart")
        assert [(await timed(app, token))[0].status for _ in range(4)] == [200, 200, 200, 429]
        redis_server.kill()
        for _ in range(3):
            result, elapsed = await timed(app, token)
            assert result.status == 503 and elapsed < 2.0
        redis_server.start()  # same port, empty data: counting starts afresh
        statuses = []
        for _ in range(40):
            statuses.append((await timed(app, token))[0].status)
            if statuses[-3:] == [200, 200, 200]:
                break
            await asyncio.sleep(0.05)
        assert statuses[-3:] == [200, 200, 200]
        assert (await timed(app, token))[0].status == 429  # exact again: 3 per minute
    finally:
        await store.aclose()


async def test_revocation_on_a_stopped_redis_refuses_with_503_not_an_exception(
    redis_server: PrivateRedis,
) -> None:
    store = RedisStore(url=redis_server.url, timeout=0.3, prefix="agentos_mw_faults:")
    revocations = RevocationList(store)
    app = wrap(
        make_app(Seen()),
        CollectorRegistry(),
        auth={
            "verification_keys": [
                "hostile-suite-secret-" + "h" * 48,
            ],
            "revocation_check": revocations,
        },
        rate_limit={"limits": ["100/minute"], "store": store, "on_store_error": "allow"},
    )
    try:
        token = good_token("revoked-user", jti="t-1")
        assert (await timed(app, token))[0].status == 200
        await revocations.revoke_token("t-1", until=time.time() + 600)
        assert (await timed(app, token))[0].status == 401
        redis_server.kill()
        result, elapsed = await timed(app, good_token("other", jti="t-2"))
        assert result.status == 503 and elapsed < 2.0
        assert result.header("x-request-id") and result.header("x-content-type-options")
        redis_server.start()  # revocations were in the killed server's memory only
        for _ in range(40):
            result, _ = await timed(app, good_token("other", jti="t-2"))
            if result.status == 200:
                break
            await asyncio.sleep(0.05)
        assert result.status == 200
    finally:
        await store.aclose()


# -- JWKS URL ----------------------------------------------------------------------------------

KEY_1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(private: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    return {**data, "kid": kid, "use": "sig", "alg": "RS256"}


def rs_token(key: rsa.RSAPrivateKey, kid: str, sub: str = "alice") -> str:
    return jwt.encode(claims(sub), key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def idp() -> Iterator[IdP]:
    with IdP() as server:
        server.keys = [jwk(KEY_1, "k1")]
        yield server


_jwks_apps: list[Any] = []


def jwks_stack(idp: IdP, **auth: Any) -> ASGIApp:
    options = {"jwks_url": idp.url, "jwks_timeout": 0.5, "jwks_cooldown": 0.05, **auth}
    app = wrap(make_app(Seen()), CollectorRegistry(), auth=options)
    return app


async def close_jwks(app: Any) -> None:
    while app is not None:
        jwks = getattr(app, "jwks", None)
        if jwks is not None:
            await jwks.aclose()
        app = getattr(app, "app", None)


@pytest.mark.parametrize(
    ("mode", "body"),
    [
        ("status", b""),
        ("reset", b""),
        ("garbage", b"<html>not json</html>"),
        ("garbage", b'{"keys": "nope"}'),
        ("garbage", b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}'),  # symmetric: never trusted
        ("garbage", b'{"keys": [' + b'{"kty":"RSA"},' * 5000 + b"{}]}"),
        ("garbage", b"\xff\xfe" * 10),
    ],
)
async def test_idp_down_or_garbage_from_the_start_is_a_bounded_503(
    idp: IdP, mode: str, body: bytes
) -> None:
    idp.mode, idp.body = mode, body
    app = jwks_stack(idp)
    try:
        for _ in range(3):
            result, elapsed = await timed(app, rs_token(KEY_1, "k1"))
            assert result.status == 503 and elapsed < 2.0
            assert result.json() == {"detail": "Token verification keys unavailable"}
        idp.mode = "ok"
        await asyncio.sleep(0.06)  # past the cooldown: the next request fetches again
        assert (await timed(app, rs_token(KEY_1, "k1")))[0].status == 200
    finally:
        await close_jwks(app)


@pytest.mark.parametrize("mode", ["slow", "drip"])
async def test_slow_idp_cannot_hold_requests_past_the_jwks_timeout(idp: IdP, mode: str) -> None:
    """``drip`` sends a byte every 0.3 s: each read is within the 0.5 s timeout, the whole
    download is not; a per-read timeout alone would hold the first requests for minutes."""
    idp.mode, idp.delay = mode, 0.3 if mode == "drip" else 5.0
    app = jwks_stack(idp)
    try:
        result, elapsed = await timed(app, rs_token(KEY_1, "k1"))
        assert result.status == 503
        assert elapsed < 2.0
    finally:
        await close_jwks(app)


async def test_rotation_drops_tokens_of_a_removed_key_even_when_cached(idp: IdP) -> None:
    app = jwks_stack(idp)
    try:
        old = rs_token(KEY_1, "k1")
        assert (await timed(app, old))[0].status == 200  # verified and cached
        idp.keys = [jwk(KEY_2, "k2")]  # the IdP rotated k1 out (e.g. it leaked)
        await asyncio.sleep(0.06)
        assert (await timed(app, rs_token(KEY_2, "k2", "bob")))[0].status == 200  # unknown kid
        assert (await timed(app, old))[0].status == 401  # refused although it was cached
        assert idp.hits == 2
    finally:
        await close_jwks(app)


async def test_unknown_kid_flood_through_the_stack_is_one_fetch_per_cooldown(idp: IdP) -> None:
    app = jwks_stack(idp, jwks_cooldown=30)
    try:
        assert (await timed(app, rs_token(KEY_1, "k1")))[0].status == 200
        forged = [rs_token(KEY_2, f"made-up-{i}") for i in range(200)]
        results = await asyncio.gather(*(timed(app, t) for t in forged))
        assert {r.status for r, _ in results} == {401}
        assert idp.hits <= 2
    finally:
        await close_jwks(app)


# -- the wall clock ----------------------------------------------------------------------------


class Clock:
    """Shifts every wall clock the stack and PyJWT read (``time.time``, ``time.time_ns`` and
    ``datetime.now``) by ``offset`` seconds; monotonic clocks are left alone, as in real life."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        real_time, real_ns = time.time, time.time_ns
        clock = self

        class ShiftedDatetime(dt.datetime):
            @classmethod
            def now(cls, tz: dt.tzinfo | None = None) -> Any:
                return dt.datetime.fromtimestamp(real_time() + clock.offset, tz)

        monkeypatch.setattr(time, "time", lambda: real_time() + self.offset)
        monkeypatch.setattr(time, "time_ns", lambda: real_ns() + int(self.offset * 1e9))
        monkeypatch.setattr(jwt.api_jwt, "datetime", ShiftedDatetime)


def clock_stack(store: Any = None) -> ASGIApp:
    return wrap(
        make_app(Seen()),
        CollectorRegistry(),
        auth={"verification_keys": ["hostile-suite-secret-" + "h" * 48], "leeway": 10},
        rate_limit={"limits": ["10/minute"], "store": store or MemoryStore()},
    )


async def test_clock_jumping_forward_expires_tokens_even_cached_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(monkeypatch)
    app = clock_stack()
    token = good_token("clock")  # exp = now + 600
    assert (await timed(app, token))[0].status == 200
    clock.offset = 3600.0
    result, _ = await timed(app, token)
    assert result.status == 401 and result.json() == {"detail": "Token has expired"}
    assert (await timed(app, good_token("fresh")))[0].status == 200  # minted on the new clock
    clock.offset = 0.0
    assert (await timed(app, token))[0].status == 200


async def test_clock_jumping_back_refuses_tokens_from_the_future(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(monkeypatch)
    app = clock_stack()
    token = good_token("clock-back")  # iat = now
    clock.offset = -3600.0
    assert (await timed(app, token))[0].status == 401  # issued "in the future" beyond leeway
    clock.offset = 0.0
    assert (await timed(app, token))[0].status == 200


async def test_clock_jumping_back_does_not_lock_clients_out_of_the_rate_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An NTP step back by an hour must not turn a client's next request into a 429 for an
    hour, nor a step forward hand out a fresh budget: the memory store counts on a clock that
    does not jump."""
    app = clock_stack()  # built first: the store's default clock is the real one
    clock = Clock(monkeypatch)
    token = good_token("ntp")
    assert [(await timed(app, token))[0].status for _ in range(5)] == [200] * 5
    clock.offset = -3600.0
    token = good_token("ntp")  # a token valid on the new clock
    assert [(await timed(app, token))[0].status for _ in range(5)] == [200] * 5
    clock.offset = 7200.0
    token = good_token("ntp")
    assert (await timed(app, token))[0].status == 429  # still 10 per minute, not 20
