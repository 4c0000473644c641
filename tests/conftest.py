"""Shared fixtures: anyio runs async tests on asyncio (no extra plugin needed)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


REDIS_URL = os.environ.get("AGENTOS_MW_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture
async def redis_client() -> AsyncIterator[object]:
    """A redis-py asyncio client on the shared Redis, or a skip (a failure under CI=true).

    Never flushes: tests use :func:`redis_prefix` keys and this fixture deletes them afterwards.
    """
    redis = pytest.importorskip("redis.asyncio")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        await client.ping()
    except Exception as exc:  # any connection failure means "no Redis here"
        await client.aclose()
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} unreachable under CI=true: {exc!r}")
        pytest.skip(f"Redis at {REDIS_URL} unreachable: {exc!r}")
    yield client
    await client.aclose()


@pytest.fixture
async def redis_prefix(redis_client: object) -> AsyncIterator[str]:
    """A unique key prefix for one test; every key under it is deleted afterwards."""
    prefix = f"agentos_mw_test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis_client
    keys = [key async for key in client.scan_iter(match=prefix + "*")]  # type: ignore[attr-defined]
    if keys:
        await client.delete(*keys)  # type: ignore[attr-defined]
