"""Rate limiting: µs added per request (memory and Redis stores vs slowapi), Redis round trips
per request, and memory per key in the memory store."""

from __future__ import annotations

import asyncio
import gc
import os
import time
import tracemalloc
from typing import Any

from . import harness

HUGE = "100000000/minute"  # never reached: every candidate does the full allowed path
REDIS_URL = os.environ.get("AGENTOS_MW_REDIS_URL", "redis://127.0.0.1:6379/0")
MEMORY_GOAL_US = 4.0
RATIO_GOAL = 8.0
BYTES_PER_KEY_GOAL = 256


def _slowapi(asgi: bool) -> Any:
    from slowapi import Limiter
    from slowapi.middleware import SlowAPIASGIMiddleware, SlowAPIMiddleware
    from slowapi.util import get_remote_address

    app = harness.make_app()
    app.state.limiter = Limiter(key_func=get_remote_address, default_limits=[HUGE])
    app.add_middleware(SlowAPIASGIMiddleware if asgi else SlowAPIMiddleware)
    return app


def _ours(**options: Any) -> Any:
    from agentos_mw.ratelimit import RateLimitMiddleware

    return RateLimitMiddleware(harness.make_app(), limits=HUGE, **options)


def _redis_store(prefix: str) -> Any:
    """A RedisStore on the shared Redis, or None when it is not reachable."""
    from agentos_mw.ratelimit import RedisStore

    async def probe() -> bool:
        store = RedisStore(url=REDIS_URL, timeout=1)
        try:
            await store.client.ping()
            return True
        except Exception:
            return False
        finally:
            await store.aclose()

    if not asyncio.run(probe()):
        return None
    return RedisStore(url=REDIS_URL, prefix=prefix, timeout=1)


def round_trips_per_request(n: int = 200) -> float | None:
    """Commands sent to Redis per request through the middleware (after the script is loaded)."""
    from agentos_mw.ratelimit import RateLimitMiddleware

    prefix = f"agentos_mw_bench:{os.getpid()}:{time.time_ns()}:"
    store = _redis_store(prefix)
    if store is None:
        return None
    sent: list[str] = []
    original = store.client.execute_command

    async def counting(*args: Any, **kwargs: Any) -> Any:
        sent.append(str(args[0]))
        return await original(*args, **kwargs)

    store.client.execute_command = counting
    app = RateLimitMiddleware(
        harness.make_app(),
        limits=[HUGE, "1000000/second"],
        route_limits={"GET /agents": HUGE},
        store=store,
    )
    scope = harness.make_scope("GET", "/agents")

    async def go() -> float:
        try:
            await harness._run_batch(app, scope, 1)
            sent.clear()
            await harness._run_batch(app, scope, n)
            return len(sent) / n
        finally:
            store.client.execute_command = original
            keys = [k async for k in store.client.scan_iter(match=prefix + "*")]
            if keys:
                await store.client.delete(*keys)
            await store.aclose()

    return asyncio.run(go())


def redis_added_us(rounds: int, batch: int) -> float | None:
    """Median µs added by the Redis store over the bare app, batches interleaved in one loop."""
    import statistics

    prefix = f"agentos_mw_bench:{os.getpid()}:{time.time_ns()}:"
    store = _redis_store(prefix)
    if store is None:
        return None
    bare = harness.make_app()
    app = _ours(store=store)
    scope = harness.make_scope("GET", "/agents")

    async def go() -> float:
        try:
            await harness._run_batch(app, scope, 20)
            added = []
            for _ in range(rounds):
                base = await harness._run_batch(bare, scope, batch)
                with_redis = await harness._run_batch(app, scope, batch)
                added.append((with_redis - base) / batch * 1e6)
            return statistics.median(added)
        finally:
            await store.aclose()

    try:
        return asyncio.run(go())
    finally:
        _cleanup(prefix)


def bytes_per_key(n: int, algorithm: str = "gcra") -> float:
    """tracemalloc-measured bytes per key after ``n`` distinct keys (IPv4-shaped) hit the store."""
    from agentos_mw.ratelimit import Algorithm, Bucket, MemoryStore, RateLimit

    store = MemoryStore(max_keys=n)
    bucket = Bucket(Algorithm(algorithm), (RateLimit.parse("100/minute"),))
    t0 = 1_733_000_000_000_000  # one instant: nothing expires, every key stays
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        store.hit_sync(f"ip:10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", [bucket], now_us=t0)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(store) == n
    return used / n


def run(quick: bool) -> tuple[str, list[str]]:
    failures: list[str] = []
    scope = harness.make_scope("GET", "/agents")
    cases: dict[str, tuple[Any, Any]] = {
        "bare Starlette app": (harness.make_app(), scope),
        "RateLimitMiddleware, memory, gcra": (_ours(), scope),
        "RateLimitMiddleware, memory, sliding_window": (_ours(algorithm="sliding_window"), scope),
        "slowapi SlowAPIMiddleware (BaseHTTPMiddleware)": (_slowapi(asgi=False), scope),
        "slowapi SlowAPIASGIMiddleware": (_slowapi(asgi=True), scope),
    }
    rows = harness.compare(
        cases, baseline="bare Starlette app", rounds=9 if quick else 25, batch=150 if quick else 300
    )
    redis_row = redis_added_us(rounds=5 if quick else 15, batch=100 if quick else 300)

    ours = rows["RateLimitMiddleware, memory, gcra"]
    slow = rows["slowapi SlowAPIMiddleware (BaseHTTPMiddleware)"]
    slow_asgi = rows["slowapi SlowAPIASGIMiddleware"]
    ratio = slow.added_us / max(ours.added_us, 0.05)
    ratio_asgi = slow_asgi.added_us / max(ours.added_us, 0.05)
    trips = round_trips_per_request(50 if quick else 500)
    keys = 100_000 if quick else 1_000_000
    per_key = {
        alg: bytes_per_key(keys, alg)
        for alg in (["gcra"] if quick else ["gcra", "sliding_window", "fixed_window"])
    }

    lines = [
        harness.table(
            rows, "Rate limiting, GET /agents, limit never reached (baseline: bare Starlette app)"
        ),
        "",
        "- Redis store (GCRA, shared Redis over loopback, own loop, interleaved with the bare app): "
        + ("Redis not reachable" if redis_row is None else f"+{redis_row:.1f} µs/request"),
        f"- memory store (GCRA) adds {ours.added_us:.2f} µs/request: {ratio:.1f}x less than slowapi's "
        f"SlowAPIMiddleware, {ratio_asgi:.1f}x less than SlowAPIASGIMiddleware (same run).",
        "- Redis round trips per request (global + per-second + route limits, after script load): "
        + ("Redis not reachable" if trips is None else f"{trips:.2f}"),
        "- memory store bytes per key ("
        + f"{keys:,} distinct keys, tracemalloc): "
        + ", ".join(f"{alg} {value:.0f}" for alg, value in per_key.items()),
        "",
        "Measured: in-process ASGI calls, interleaved rounds; µs added = median minus the bare app's.",
    ]
    if ratio < RATIO_GOAL:
        failures.append(
            f"memory store adds {ours.added_us:.2f} µs, only {ratio:.1f}x less than slowapi (goal 8x)"
        )
    if trips is not None and trips != 1.0:
        failures.append(f"Redis store makes {trips:.2f} round trips per request (goal 1)")
    if per_key["gcra"] > BYTES_PER_KEY_GOAL:
        failures.append(f"memory store uses {per_key['gcra']:.0f} bytes per key (goal <= 256)")
    if not quick and ours.added_us > MEMORY_GOAL_US:
        failures.append(f"memory store adds {ours.added_us:.2f} µs per request (goal <= 4)")
    return "\n".join(lines), failures


def _cleanup(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
