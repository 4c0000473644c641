"""``RateLimitMiddleware``: pure ASGI, one store call per request, streaming untouched.

Everything is resolved at start-up: limits are parsed, route limits compiled into a
:class:`~agentos_mw.paths.RouteTable` of ready "plans" (buckets plus the precomputed
``RateLimit-Policy`` value). Per request the middleware finds the key, looks up the plan, asks
the store once, then either answers 429 through ``send_error`` or adds the headers on
``http.response.start``. Websocket handshakes are counted like requests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

from .._asgi import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    send_error,
)
from ..paths import PathSet, RouteTable, route_path
from .algorithms import Algorithm, parse_algorithm
from .headers import policy_value, response_headers, retry_after
from .keys import DEFAULT_IPV6_PREFIX, bounded, make_key_func
from .limits import RateLimit, parse_limits
from .memory import MemoryStore
from .store import Bucket, Decision, Store, StoreError

log = logging.getLogger("agentos_mw.ratelimit")

TOO_MANY = "Too many requests"
UNAVAILABLE = "Rate limiting unavailable"
DEFAULT_LIMIT = "100/minute"


class _Plan:
    """What one route is counted against, with its ``RateLimit-Policy`` value ready."""

    __slots__ = ("buckets", "policy")

    def __init__(self, buckets: tuple[Bucket, ...]) -> None:
        self.buckets = buckets
        self.policy = policy_value([limit for bucket in buckets for limit in bucket.limits])


class RateLimitMiddleware:
    """Limit requests per client key.

    ``RateLimitMiddleware(app, requests_per_minute=100)`` is the short form. The full form takes
    ``limits`` (all enforced), ``route_limits`` (``{"POST /agents/*/runs": "10/minute"}``,
    counted in addition to ``limits``), ``exempt`` path patterns, ``key`` (``"ip"``, ``"user"``,
    ``"api_key:<header>"`` or ``(scope) -> str | None``; ``None`` means "not limited"), ``cost``
    (``(scope) -> int``), ``algorithm``, ``store``, ``trusted_proxies``, ``ipv6_prefix`` (IPv6
    clients are counted per ``/64`` network by default; 128 counts each address), the header
    switches and ``on_store_error`` (``"allow"`` or ``"deny"``: what to do when the store cannot
    answer).
    """

    def __init__(
        self,
        app: ASGIApp,
        requests_per_minute: int | None = None,
        *,
        limits: str | RateLimit | Sequence[str | RateLimit] | None = None,
        route_limits: Mapping[str, str | RateLimit | Sequence[str | RateLimit]] | None = None,
        exempt: Iterable[str] = (),
        key: str | Callable[[Scope], str | None] = "ip",
        cost: Callable[[Scope], int] | None = None,
        algorithm: str | Algorithm = Algorithm.GCRA,
        store: Store | None = None,
        trusted_proxies: Iterable[str] = (),
        ipv6_prefix: int = DEFAULT_IPV6_PREFIX,
        headers: bool = True,
        x_headers: bool = True,
        on_store_error: str = "allow",
    ) -> None:
        self.app = app
        if requests_per_minute is not None:
            if limits is not None:
                raise ValueError("pass either requests_per_minute or limits, not both")
            if isinstance(requests_per_minute, bool) or not isinstance(requests_per_minute, int):
                raise TypeError("requests_per_minute must be an int")
            limits = [RateLimit(requests_per_minute, 60)]
        if limits is None:
            limits = [] if route_limits else [DEFAULT_LIMIT]
        global_limits = (
            () if isinstance(limits, (list, tuple)) and not limits else parse_limits(limits)
        )
        self.algorithm = parse_algorithm(algorithm)
        global_buckets = (Bucket(self.algorithm, global_limits),) if global_limits else ()
        self._default = _Plan(global_buckets) if global_buckets else None

        if route_limits is not None and not isinstance(route_limits, Mapping):
            raise TypeError("route_limits must be a mapping of route pattern to limit(s)")
        self._routes: RouteTable[_Plan] | None = None
        if route_limits:
            table: RouteTable[_Plan] = RouteTable()
            for pattern, value in route_limits.items():
                bucket = Bucket(self.algorithm, parse_limits(value), scope=pattern.strip())
                table.add(pattern, _Plan((*global_buckets, bucket)))
            self._routes = table

        if isinstance(exempt, str):
            raise TypeError("exempt must be a list of path patterns, not a string")
        self._exempt = PathSet(exempt) if exempt else None
        self._user_key = callable(key)
        self._key = make_key_func(key, trusted_proxies, ipv6_prefix)
        if cost is not None and not callable(cost):
            raise TypeError("cost must be a callable (scope) -> int")
        self._cost = cost
        if store is None:
            store = MemoryStore()
        if not all(
            callable(getattr(store, name, None)) for name in ("hit", "put_marker", "get_markers")
        ):
            raise TypeError(
                "store must be a MemoryStore, a RedisStore or implement the Store protocol"
            )
        self.store = store
        # the memory store's check is synchronous: skip the coroutine (unless a subclass wraps hit)
        self._hit_sync = (
            store.hit_sync
            if isinstance(store, MemoryStore) and type(store).hit is MemoryStore.hit
            else None
        )
        if not isinstance(headers, bool) or not isinstance(x_headers, bool):
            raise TypeError("headers and x_headers must be booleans")
        self._ietf = headers
        self._legacy = x_headers
        if on_store_error not in ("allow", "deny"):
            raise ValueError("on_store_error must be 'allow' or 'deny'")
        self._deny_on_error = on_store_error == "deny"
        #: Requests decided without the store because it failed (logged by the store).
        self.store_errors = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        plan = self._default
        if self._routes is not None or self._exempt is not None:
            method = scope.get("method") or "GET"
            path = route_path(scope)
            if self._exempt is not None and self._exempt.matches(method, path):
                await self.app(scope, receive, send)
                return
            if self._routes is not None:
                found = self._routes.match(method, path)
                if found is not None:
                    plan = found.value
        key = self._key(scope)
        if plan is None or key is None:
            await self.app(scope, receive, send)
            return
        if self._user_key:
            if not isinstance(key, str):
                raise TypeError("the key function must return a str or None")
            key = bounded(key)
        cost = 1
        if self._cost is not None:
            cost = self._cost(scope)
            if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
                raise ValueError("the cost function must return an int >= 0")
            if cost == 0:
                await self.app(scope, receive, send)
                return
        try:
            if self._hit_sync is not None:
                decision = self._hit_sync(key, plan.buckets, cost)
            else:
                decision = await self.store.hit(key, plan.buckets, cost)
        except StoreError:
            self.store_errors += 1  # the store logs the cause, at most every few seconds
            log.debug(
                "rate limit store failed; on_store_error=%s",
                "deny" if self._deny_on_error else "allow",
            )
            if self._deny_on_error:
                await send_error(scope, send, 503, UNAVAILABLE, [(b"retry-after", b"1")])
            else:
                await self.app(scope, receive, send)
            return
        if not decision.allowed:
            extra = response_headers(decision, plan.policy, self._ietf, self._legacy)
            extra.append((b"retry-after", retry_after(decision)))
            await send_error(scope, send, 429, TOO_MANY, extra)
            return
        if kind == "http" and (self._ietf or self._legacy):
            await self.app(scope, receive, _with_headers(send, decision, plan.policy, self))
            return
        await self.app(scope, receive, send)


def _with_headers(send: Send, decision: Decision, policy: bytes, mw: RateLimitMiddleware) -> Send:
    """``send`` adding the rate-limit headers to ``http.response.start`` (one wrapper, no
    callback layer: this runs on every allowed request)."""
    ietf = mw._ietf
    legacy = mw._legacy

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":  # add_response_headers, inlined
            message["headers"] = [
                *message.get("headers", ()),
                *response_headers(decision, policy, ietf, legacy),
            ]
        await send(message)

    return send_with_headers
