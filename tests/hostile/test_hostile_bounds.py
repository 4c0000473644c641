"""Memory stays bounded whatever clients send: route caches, header caches, the token cache and
rate-limit keys, measured through the complete stack with tracemalloc."""

from __future__ import annotations

import asyncio
import gc
import os
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from agentos_mw import MemoryStore
from tests.driver import call, http_scope
from tests.hostile.stack import CheckingHandler, Seen, checked_logs, full_stack


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop:
        yield loop


@pytest.fixture
def stack() -> Iterator[tuple[Any, Seen, CheckingHandler]]:
    with checked_logs() as handler:
        store = MemoryStore(max_keys=1000)
        app, seen, _ = full_stack(rate_limit={"limits": ["100000/minute"], "store": store})
        yield app, seen, handler


def growth(runner: asyncio.Runner, app: Any, scopes: Iterator[dict[str, Any]]) -> int:
    """Bytes still held after the requests (warm-up first so one-time allocations do not count)."""
    for scope in (http_scope("GET", "/agents"), http_scope("GET", "/health")):
        runner.run(call(app, scope))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for scope in scopes:
            runner.run(call(app, scope))
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_huge_distinct_methods_do_not_fill_route_caches(
    runner: asyncio.Runner, stack: tuple[Any, Seen, CheckingHandler]
) -> None:
    """Servers with h11 pass any token as the method, up to the request-head limit (16 KiB in
    uvicorn): 3,000 distinct 8 KiB methods must not be kept by any per-route cache."""
    scopes = (
        http_scope(os.urandom(4096).hex().upper(), "/agents", client=("10.9.0.1", 1))
        for _ in range(3000)
    )
    held = growth(runner, stack[0], scopes)
    assert held < 4 << 20, held  # 3,000 x 8 KiB = 24 MiB per cache if they were kept


def test_distinct_paths_and_clients_stay_bounded(
    runner: asyncio.Runner, stack: tuple[Any, Seen, CheckingHandler]
) -> None:
    scopes = (
        http_scope(
            "GET",
            f"/agents/{os.urandom(100).hex()}/runs",
            [(b"x-forwarded-for", b"1.1.1.1")],
            client=(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 1),
        )
        for i in range(6000)
    )
    held = growth(runner, stack[0], scopes)
    # 1,000 rate-limit keys (max_keys) and 4,096 cached routes at most; 6,000 requests would
    # hold far more if anything kept per-request data
    assert held < 6 << 20, held


def test_distinct_forged_tokens_are_not_cached(
    runner: asyncio.Runner, stack: tuple[Any, Seen, CheckingHandler]
) -> None:
    import jwt

    from tests.hostile.stack import FORGER_SECRET, claims

    scopes = (
        http_scope(
            "GET",
            "/agents",
            [(b"authorization", b"Bearer " + jwt.encode(claims(f"m{i}"), FORGER_SECRET).encode())],
        )
        for i in range(3000)
    )
    assert growth(runner, stack[0], scopes) < 2 << 20
