"""``RedisStore``: one limit shared by every worker and host, one round trip per request.

Every check is one ``EVALSHA`` of :data:`LUA` (redis-py's ``Script`` loads it on first use and
again after a ``SCRIPT FLUSH``). The script mirrors :mod:`.algorithms` line for line and reads
the clock with Redis ``TIME``, so hosts with skewed clocks still share exact windows. Keys are
``<prefix>{<client key>}:<algorithm>:<limit>:<route>``; the braces keep a client's keys in one
Redis Cluster slot, which a multi-key script requires.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from .limits import RateLimit
from .store import Bucket, Decision, StoreError

log = logging.getLogger("agentos_mw.ratelimit")

# ARGV: cost, now_us ('' = server TIME; tests pass a fake clock), then for every key:
# algorithm code, amount, period_us, emission_us. Returns {allowed, index, remaining, reset, retry}.
LUA = """
local function fmt(x) return string.format('%.0f', x) end
local cost = tonumber(ARGV[1])
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local n = #KEYS
local res = {}
local all_ok = true
for i = 1, n do
  local base = 2 + 4 * (i - 1)
  local algo = ARGV[base + 1]
  local amount = tonumber(ARGV[base + 2])
  local period = tonumber(ARGV[base + 3])
  local interval = tonumber(ARGV[base + 4])
  local raw = redis.call('GET', KEYS[i])
  local s = {}
  if raw then
    for v in string.gmatch(raw, '%d+') do s[#s + 1] = tonumber(v) end
  end
  local r
  if algo == 'g' then
    local capacity = amount * interval
    local tat = now
    if s[1] and s[1] > now then tat = s[1] end
    local new_tat = tat + cost * interval
    local debt = new_tat - now
    if debt > capacity then
      local retry = period
      if cost <= amount then retry = debt - capacity end
      r = {false, nil, math.floor((capacity - (tat - now)) / interval), tat - now, retry, tat}
    else
      r = {true, fmt(new_tat), math.floor((capacity - debt) / interval), debt, 0, new_tat}
    end
  elseif algo == 'f' then
    local index = math.floor(now / period)
    local count = 0
    if s[1] == index then count = s[2] end
    local wend = (index + 1) * period
    if count + cost > amount then
      r = {false, nil, amount - count, wend - now, wend - now, wend}
    else
      count = count + cost
      r = {true, fmt(index) .. ' ' .. fmt(count), amount - count, wend - now, 0, wend}
    end
  else
    local index = math.floor(now / period)
    local elapsed = now - index * period
    local previous, current = 0, 0
    if s[1] == index then
      previous, current = s[2], s[3]
    elseif s[1] == index - 1 then
      previous = s[3]
    end
    local budget = amount * period - previous * (period - elapsed)
    local reset = period - elapsed
    if (current + cost) * period > budget then
      local retry
      if cost > amount then
        retry = period
      elseif current + cost <= amount then
        retry = reset - math.floor((amount - current - cost) * period / previous)
      else
        retry = reset + math.max(0, period - math.floor((amount - cost) * period / current))
      end
      local remaining = math.max(0, math.floor((budget - current * period) / period))
      r = {false, nil, remaining, reset, retry, (index + 2) * period}
    else
      current = current + cost
      local remaining = math.max(0, math.floor((budget - current * period) / period))
      r = {true, fmt(index) .. ' ' .. fmt(previous) .. ' ' .. fmt(current), remaining, reset, 0,
           (index + 2) * period}
    end
  end
  res[i] = r
  if not r[1] then all_ok = false end
end
local best = 1
for i = 2, n do
  local c, b = res[i], res[best]
  if not b[1] then
    if (not c[1]) and c[5] > b[5] then best = i end
  elseif (not c[1]) or c[3] < b[3] then
    best = i
  end
end
if all_ok then
  for i = 1, n do
    local ttl = math.ceil((res[i][6] - now) / 1000)
    if ttl < 1 then ttl = 1 end
    redis.call('SET', KEYS[i], res[i][2], 'PX', fmt(ttl))
  end
end
local b = res[best]
return {all_ok and 1 or 0, best - 1, b[3], b[4], b[5]}
"""

# Revocation markers only ever get stronger: keep the larger value and the later expiry.
MARKER_LUA = """
local v, e = tonumber(ARGV[1]), tonumber(ARGV[2])
local raw = redis.call('GET', KEYS[1])
if raw then
  local ov, oe = string.match(raw, '^(%d+) (%d+)$')
  if ov then v = math.max(v, tonumber(ov)); e = math.max(e, tonumber(oe)) end
end
redis.call('SET', KEYS[1], string.format('%.0f %.0f', v, e), 'PXAT', string.format('%.0f', e))
return 1
"""

_ERROR_LOG_INTERVAL = 10.0
T = TypeVar("T")


async def _within(seconds: float, call: Awaitable[T]) -> T:
    """``call`` bounded by ``seconds`` (``asyncio.timeout`` where available: no extra task)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await call
    return await asyncio.wait_for(call, seconds)


class RedisStore:
    """Store on redis-py's asyncio client: ``RedisStore(url="redis://...")`` or
    ``RedisStore(client=redis.asyncio.Redis(...))``.

    ``timeout`` (seconds) bounds every call, so a slow Redis cannot stall requests; a failure
    raises :class:`StoreError`, which the middleware turns into its ``on_store_error`` policy.
    ``errors`` counts failures. A client built from ``url`` uses a pool of up to
    ``max_connections`` connections.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "agentos_mw:",
        timeout: float = 0.25,
        max_connections: int = 64,
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError("RedisStore needs exactly one of url= or client=")
        if not isinstance(prefix, str):
            raise TypeError("prefix must be a string")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        if client is None:
            try:
                import redis.asyncio as redis_asyncio
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ImportError(
                    "RedisStore needs redis-py: pip install 'agentos-mw[redis]'"
                ) from exc
            if not isinstance(url, str):
                raise TypeError("url must be a string such as 'redis://localhost:6379/0'")
            # A blocking pool makes a burst wait (up to ``timeout``) for a free connection
            # instead of failing as soon as ``max_connections`` are busy.
            pool = redis_asyncio.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=timeout,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
            )
            client = redis_asyncio.Redis.from_pool(pool)
            self._owns_client = True
        else:
            self._owns_client = False
        self.client = client
        self.prefix = prefix
        self.timeout = float(timeout)
        self._script = client.register_script(LUA)
        self._marker_script = client.register_script(MARKER_LUA)
        self._args: dict[Bucket, list[str | int]] = {}
        #: Calls that failed (connection refused, timeout, Redis error).
        self.errors = 0
        self._last_log = 0.0

    async def aclose(self) -> None:
        """Close the connection pool (only when this store created the client)."""
        if self._owns_client:
            await self.client.aclose()

    def _bucket_args(self, bucket: Bucket) -> list[str | int]:
        args = self._args.get(bucket)
        if args is None:
            args = []
            for limit in bucket.limits:
                args += [bucket.algorithm.code, limit.amount, limit.period_us, limit.emission_us]
            if len(self._args) < 1024:
                self._args[bucket] = args
        return args

    async def hit(
        self, key: str, buckets: Sequence[Bucket], cost: int = 1, *, now_us: int | None = None
    ) -> Decision:
        keys: list[str] = []
        args: list[str | int] = [cost, "" if now_us is None else now_us]
        limits: list[RateLimit] = []
        head = f"{self.prefix}{{{key}}}:"
        for bucket in buckets:
            keys += [head + name for name in bucket.names]
            args += self._bucket_args(bucket)
            limits += bucket.limits
        reply = await self._call(self._script, keys, args)
        try:
            allowed, index, remaining, reset, retry = (int(x) for x in reply)
            return Decision(bool(allowed), limits[index], remaining, reset, retry)
        except (TypeError, ValueError, IndexError):
            raise self._failed("unexpected script reply") from None

    async def put_marker(self, key: str, value: int, expires_at_us: int) -> None:
        expires_ms = -(-expires_at_us // 1000)
        await self._call(self._marker_script, [self._marker_key(key)], [value, expires_ms])

    async def get_markers(self, keys: Sequence[str]) -> list[int | None]:
        if not keys:
            return []
        try:
            raw = await _within(self.timeout, self.client.mget([self._marker_key(k) for k in keys]))
        except Exception as exc:
            raise self._failed(type(exc).__name__) from None
        out: list[int | None] = []
        for item in raw:
            value, _, _ = (item or b"").partition(b" ")
            out.append(int(value) if value.isdigit() else None)
        return out

    def _marker_key(self, key: str) -> str:
        return f"{self.prefix}revoked:{key}"

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await _within(self.timeout, script(keys=keys, args=args))
        except Exception as exc:  # connection refused, timeout, READONLY, OOM...: all "no answer"
            raise self._failed(type(exc).__name__) from None

    def _failed(self, reason: str) -> StoreError:
        self.errors += 1
        now = time.monotonic()
        if now - self._last_log >= _ERROR_LOG_INTERVAL:
            self._last_log = now
            log.warning(
                "rate limit store unavailable (%s); %d failures so far", reason, self.errors
            )
        return StoreError(reason)
