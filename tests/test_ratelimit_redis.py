"""RedisStore against the real Redis: model agreement, atomicity across tasks and processes,
one round trip per request, and outages (on a private redis-server we start and kill)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentos_mw.ratelimit import (
    Algorithm,
    Bucket,
    RateLimitMiddleware,
    RedisStore,
    RevocationList,
    StoreError,
)
from tests.conftest import REDIS_URL
from tests.driver import call, http_scope
from tests.hostile.faultkit import PrivateRedis
from tests.test_ratelimit_algorithms import ALGORITHMS, BASE_US, LIMITS, SEQUENCES, run_store

ROOT = Path(__file__).resolve().parent.parent


async def ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.anyio
async def test_redis_store_agrees_with_model(redis_client: Any, redis_prefix: str) -> None:
    store = RedisStore(client=redis_client, prefix=redis_prefix)
    counter = itertools.count()

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(ALGORITHMS, LIMITS, SEQUENCES, st.integers(0, 10**9))
    def check(algorithm: Algorithm, limits: Any, sequence: Any, offset: int) -> None:
        bucket = Bucket(algorithm, tuple(limits))
        key = f"client{next(counter)}"

        def hit(now: int, cost: int) -> Any:
            return anyio.from_thread.run(lambda: store.hit(key, [bucket], cost, now_us=now))

        run_store(hit, algorithm, limits, sequence, BASE_US + offset)

    await anyio.to_thread.run_sync(check)


@pytest.mark.anyio
@pytest.mark.parametrize("algorithm", list(Algorithm))
async def test_200_concurrent_requests_against_50_let_exactly_50_through(
    redis_client: Any, redis_prefix: str, algorithm: Algorithm
) -> None:
    store = RedisStore(url=REDIS_URL, prefix=redis_prefix, timeout=5)
    app = RateLimitMiddleware(ok, limits="50/minute", store=store, algorithm=algorithm)
    results = await asyncio.gather(*(call(app, http_scope()) for _ in range(200)))
    await store.aclose()
    statuses = [r.status for r in results]
    assert statuses.count(200) == 50
    assert statuses.count(429) == 150


WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from agentos_mw.ratelimit import RateLimitMiddleware, RedisStore
    from tests.driver import call, http_scope

    async def ok(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def main(url, prefix, start_at):
        store = RedisStore(url=url, prefix=prefix, timeout=5)
        app = RateLimitMiddleware(ok, limits="50/minute", store=store)
        await store.client.ping()  # connect before the start line
        await asyncio.sleep(max(0.0, start_at - time.time()))
        results = await asyncio.gather(*(call(app, http_scope()) for _ in range(100)))
        await store.aclose()
        print(json.dumps([r.status for r in results]))

    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
    """
)


@pytest.mark.anyio
async def test_two_processes_sharing_redis_let_exactly_50_through(
    redis_client: Any, redis_prefix: str
) -> None:
    start_at = str(time.time() + 2.0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, REDIS_URL, redis_prefix, start_at],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    statuses: list[int] = []
    for proc in procs:
        out, err = await anyio.to_thread.run_sync(lambda p=proc: p.communicate(timeout=60))
        assert proc.returncode == 0, err.decode()
        statuses += json.loads(out)
    assert len(statuses) == 200
    assert statuses.count(200) == 50


@pytest.mark.anyio
async def test_one_round_trip_per_request(redis_client: Any, redis_prefix: str) -> None:
    commands: list[str] = []
    original = redis_client.execute_command

    async def counting(*args: Any, **kwargs: Any) -> Any:
        commands.append(str(args[0]))
        return await original(*args, **kwargs)

    redis_client.execute_command = counting
    store = RedisStore(client=redis_client, prefix=redis_prefix)
    app = RateLimitMiddleware(
        ok,
        limits=["100/minute", "10/second"],
        route_limits={"GET /agents/*": "5/minute"},
        store=store,
    )
    await call(
        app, http_scope(path="/agents/a1")
    )  # may load the script (EVALSHA, SCRIPT LOAD, EVALSHA)
    commands.clear()
    for _ in range(20):
        await call(app, http_scope(path="/agents/a1"))
    assert commands == ["EVALSHA"] * 20


@pytest.mark.anyio
async def test_keys_carry_the_prefix_and_expire(redis_client: Any, redis_prefix: str) -> None:
    store = RedisStore(client=redis_client, prefix=redis_prefix)
    app = RateLimitMiddleware(ok, limits="5/minute", store=store)
    await call(app, http_scope())
    keys = [k async for k in redis_client.scan_iter(match=redis_prefix + "*")]
    assert len(keys) == 1
    assert 0 < await redis_client.pttl(keys[0]) <= 60_000


@pytest.mark.anyio
async def test_revocations_are_shared_through_redis(redis_client: Any, redis_prefix: str) -> None:
    writer = RevocationList(RedisStore(client=redis_client, prefix=redis_prefix))
    reader = RevocationList(RedisStore(client=redis_client, prefix=redis_prefix))
    now = time.time()
    await writer.revoke_token("token-1", until=now + 60)
    await writer.revoke_subject("alice", before=now)
    assert await reader({"jti": "token-1", "sub": "bob", "iat": now})
    assert await reader({"jti": "other", "sub": "alice", "iat": now - 10})
    assert not await reader({"jti": "other", "sub": "alice", "iat": now + 10})
    assert not await reader({"jti": "token-2", "sub": "bob", "iat": now})
    await writer.revoke_token("gone", until=now - 1)  # already expired: nothing to refuse
    assert not await reader({"jti": "gone"})


# -- a private redis-server, for outages --------------------------------------------------------


@pytest.fixture
def private_redis() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    try:
        server = PrivateRedis()
    except FileNotFoundError:
        pytest.skip("redis-server binary not found")
    server.start()
    assert server.proc is not None
    try:
        yield server.proc, server.url
    finally:
        server.kill()  # SIGKILL ends a frozen (SIGSTOP) server too


@pytest.mark.anyio
@pytest.mark.parametrize(("policy", "status"), [("allow", 200), ("deny", 503)])
async def test_redis_stopped_mid_test_follows_on_store_error(
    private_redis: Any, policy: str, status: int
) -> None:
    proc, url = private_redis
    store = RedisStore(url=url, timeout=0.3)
    app = RateLimitMiddleware(ok, limits="2/minute", store=store, on_store_error=policy)
    try:
        assert [(await call(app, http_scope())).status for _ in range(3)] == [200, 200, 429]
        proc.kill()
        proc.wait()
        with anyio.fail_after(10):
            results = [await call(app, http_scope()) for _ in range(3)]
        assert [r.status for r in results] == [status] * 3
        if status == 503:
            assert results[0].json() == {"detail": "Rate limiting unavailable"}
        assert app.store_errors == 3
        assert store.errors == 3
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_a_stalled_redis_cannot_stall_requests(private_redis: Any) -> None:
    proc, url = private_redis
    store = RedisStore(url=url, timeout=0.2)
    app = RateLimitMiddleware(ok, limits="100/minute", store=store)
    try:
        assert (await call(app, http_scope())).status == 200
        os.kill(proc.pid, signal.SIGSTOP)  # Redis accepts nothing but the socket stays open
        with anyio.fail_after(10):
            assert (await call(app, http_scope())).status == 200
        assert app.store_errors == 1
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        await store.aclose()


@pytest.mark.anyio
async def test_script_is_reloaded_after_script_flush(private_redis: Any) -> None:
    _, url = private_redis
    store = RedisStore(url=url)
    app = RateLimitMiddleware(ok, limits="2/minute", store=store)
    try:
        assert (await call(app, http_scope())).status == 200
        await store.client.script_flush()  # a private server: never on the shared Redis
        assert (await call(app, http_scope())).status == 200
        assert (await call(app, http_scope())).status == 429
        assert store.errors == 0
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_revocation_store_outage_follows_its_policy(private_redis: Any) -> None:
    proc, url = private_redis
    store = RedisStore(url=url, timeout=0.3)
    default = RevocationList(store)
    lenient = RevocationList(store, on_store_error="allow")
    strict = RevocationList(store, on_store_error="deny")
    try:
        proc.kill()
        proc.wait()
        claims = {"jti": "t", "sub": "alice", "iat": time.time()}
        with pytest.raises(StoreError):
            await default(claims)
        assert await lenient(claims) is False
        assert await strict(claims) is True
        assert lenient.store_errors == strict.store_errors == default.store_errors == 1
    finally:
        await store.aclose()
