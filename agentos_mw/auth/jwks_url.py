"""Keys from an identity provider's JWKS URL, fetched with httpx without blocking the loop.

* The first request that needs keys fetches them; concurrent requests share that one fetch.
* Keys older than ``refresh_interval`` are refreshed in the background while the current keys
  keep serving (stale-while-revalidate), so no request waits on the IdP after start-up.
* A token with an unknown ``kid`` (key rotation) triggers at most one fetch per ``cooldown``
  seconds, so a flood of made-up ``kid`` values cannot become a flood of requests to the IdP.
* When the IdP is down or answers garbage, the last good keys stay in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .keys import KeyRing, parse_jwks

logger = logging.getLogger("agentos_mw.auth")

MAX_JWKS_BYTES = 1 << 20


class RemoteJWKS:
    """A JWK Set at ``url``; :meth:`current` returns the keys (fetching the first time)."""

    def __init__(
        self,
        url: str,
        *,
        allowed: frozenset[str] | None,
        refresh_interval: float = 300.0,
        cooldown: float = 30.0,
        timeout: float = 5.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("jwks_url must be an http(s) URL")
        if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
            logger.warning("jwks_url uses plain http: keys can be swapped in transit; use https")
        for name, value in (
            ("refresh_interval", refresh_interval),
            ("cooldown", cooldown),
            ("timeout", timeout),
        ):
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"jwks {name} must be a positive number of seconds")
        try:
            import httpx  # noqa: F401
        except ImportError:
            raise ImportError("jwks_url needs httpx: pip install 'agentos-mw[jwks]'") from None
        self.url = url
        self.allowed = allowed
        self.refresh_interval = float(refresh_interval)
        self.cooldown = float(cooldown)
        self.timeout = float(timeout)
        self.on_change = on_change
        self.ring: KeyRing | None = None
        self.fetched_at = 0.0
        self.last_attempt = float("-inf")
        self.fetches = 0
        self._inflight: asyncio.Future[None] | None = None

    async def current(self) -> KeyRing | None:
        """The keys to verify with; ``None`` only while no fetch has ever succeeded."""
        ring = self.ring
        now = time.monotonic()
        if ring is None:
            if now - self.last_attempt >= self.cooldown or self._busy():
                await self._shared_fetch()
            return self.ring
        if (
            now - self.fetched_at >= self.refresh_interval
            and now - self.last_attempt >= self.cooldown
            and not self._busy()
        ):
            self._start_fetch()  # background: this request keeps using ``ring``
        return ring

    async def refresh_for_unknown_kid(self) -> KeyRing | None:
        """Refetch for a ``kid`` not in the keys, unless one was fetched within ``cooldown``."""
        if time.monotonic() - self.last_attempt < self.cooldown and not self._busy():
            return None
        await self._shared_fetch()
        return self.ring

    async def refresh(self) -> None:
        """Fetch now (e.g. from a lifespan handler to warm the keys before serving)."""
        await self._shared_fetch()

    async def aclose(self) -> None:
        """Cancel a fetch in flight (e.g. at shutdown, so no task outlives the event loop)."""
        task = self._inflight
        self._inflight = None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _busy(self) -> bool:
        return self._inflight is not None and not self._inflight.done()

    def _start_fetch(self) -> asyncio.Future[None]:
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._fetch())
        return self._inflight

    async def _shared_fetch(self) -> None:
        # shield: a cancelled request must not cancel the fetch other requests wait on
        await asyncio.shield(self._start_fetch())

    async def _download(self, httpx: Any) -> bytes:
        async with (
            httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client,
            client.stream("GET", self.url, headers={"accept": "application/json"}) as response,
        ):
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError("JWKS response too large")
        return bytes(body)

    async def _fetch(self) -> None:
        import httpx

        self.last_attempt = time.monotonic()
        self.fetches += 1
        try:
            # httpx's timeout bounds each read; a server dripping a byte at a time would pass
            # every read, so the whole download gets the same bound.
            body = await asyncio.wait_for(self._download(httpx), self.timeout)
            data: Any = json.loads(body)
            keys = parse_jwks(data, self.allowed, "JWKS URL")
            symmetric = [key for key in keys if isinstance(key.material, bytes)]
            if symmetric:  # a published HMAC secret lets anyone who reads the URL mint tokens
                logger.warning("JWKS URL: %d symmetric (oct) keys ignored", len(symmetric))
                keys = [key for key in keys if not isinstance(key.material, bytes)]
            if not keys:
                raise ValueError("no usable signing key")
        except Exception as exc:  # network, HTTP, JSON, or key errors: keep the last good keys
            logger.warning(
                "JWKS fetch from %s failed (%s: %s); %s",
                self.url,
                type(exc).__name__,
                str(exc)[:200].encode("unicode_escape").decode("ascii"),
                "keeping the last good keys" if self.ring is not None else "no keys yet",
            )
            return
        ring = KeyRing(keys)
        previous = self.ring
        self.ring = ring
        self.fetched_at = time.monotonic()
        if previous is not None and not previous.same_as(ring):
            logger.info("JWKS keys from %s changed (%d keys)", self.url, len(ring))
            if self.on_change is not None:
                self.on_change()
