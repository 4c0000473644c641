"""MemoryStore: bounded, LRU-evicting, expired entries reclaimed, small per key, thread-safe."""

from __future__ import annotations

import gc
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import pytest

from agentos_mw.ratelimit import Algorithm, Bucket, MemoryStore, RateLimit

T0 = 1_733_000_000_000_000
GCRA = Bucket(Algorithm.GCRA, (RateLimit(100, 60),))


def test_max_keys_bounds_the_store_with_lru_eviction() -> None:
    store = MemoryStore(max_keys=3)
    for name in ("a", "b", "c"):
        store.hit_sync(name, [GCRA], now_us=T0)
    store.hit_sync("a", [GCRA], now_us=T0)  # "a" is now the most recently seen
    store.hit_sync("d", [GCRA], now_us=T0)
    assert len(store) == 3
    assert store.evictions == 1
    assert {k.rsplit("|", 1)[1] for k in store._data} == {"a", "c", "d"}


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_a_burst_of_distinct_keys_stays_within_max_keys_and_its_memory_bound(
    algorithm: Algorithm,
) -> None:
    max_keys = 10_000
    store = MemoryStore(max_keys=max_keys)
    bucket = Bucket(algorithm, (RateLimit(100, 60),))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(2 * max_keys):  # the benchmark runs 1,000,000 keys; this keeps the test fast
        store.hit_sync(f"ip:10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", [bucket], now_us=T0 + i)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(store) == max_keys
    assert store.evictions == max_keys
    assert used / max_keys <= 256, f"{used / max_keys:.0f} bytes per key"


def test_expired_entries_are_reclaimed_without_eviction() -> None:
    store = MemoryStore(max_keys=1000)
    second = Bucket(Algorithm.FIXED_WINDOW, (RateLimit(5, 1),))
    for i in range(100):
        store.hit_sync(f"k{i}", [second], now_us=T0)
    for i in range(100):
        store.hit_sync(f"new{i}", [second], now_us=T0 + 5_000_000)
    assert len(store) == 100  # every old entry reclaimed as new traffic arrived
    assert store.evictions == 0


def test_a_reclaimed_key_starts_afresh_exactly_like_an_expired_one() -> None:
    store = MemoryStore(max_keys=10)
    bucket = Bucket(Algorithm.GCRA, (RateLimit(2, 1),))
    assert store.hit_sync("k", [bucket], now_us=T0).remaining == 1
    assert store.hit_sync("k", [bucket], now_us=T0 + 1_000_000).remaining == 1


def test_threads_share_one_exact_limit() -> None:
    store = MemoryStore()
    bucket = Bucket(Algorithm.SLIDING_WINDOW, (RateLimit(50, 60),))
    barrier = threading.Barrier(8)

    def worker(_: int) -> int:
        barrier.wait()
        return sum(store.hit_sync("shared", [bucket]).allowed for _ in range(25))

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(worker, range(8))) == 50


def test_injectable_clock() -> None:
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])
    bucket = Bucket(Algorithm.FIXED_WINDOW, (RateLimit(1, 60),))
    assert store.hit_sync("k", [bucket]).allowed
    assert not store.hit_sync("k", [bucket]).allowed
    now[0] += 60
    assert store.hit_sync("k", [bucket]).allowed


def test_one_million_distinct_keys_stay_within_max_keys() -> None:
    store = MemoryStore(max_keys=10_000)
    hit = store.hit_sync
    buckets = [GCRA]
    for i in range(1_000_000):
        hit(str(i), buckets, 1, now_us=T0)
    assert len(store) == 10_000
    assert store.evictions == 990_000
    assert store.hit_sync("999999", buckets, now_us=T0).remaining == 98  # the newest keys stay
