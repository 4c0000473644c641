"""Who a request is counted against: ``"ip"``, ``"user"``, ``"api_key:<header>"`` or a callable.

Keys are namespaced (``ip:``, ``user:``, ``key:``) so an IP can never collide with a user id.
Secrets never become keys: API keys are hashed. Long keys are hashed too, so the memory per
key stays bounded whatever a client sends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

from .._asgi import Scope, first_header
from ..clientip import ClientIPResolver

KeyFunc = Callable[[Scope], "str | None"]

_MAX_KEY = 128


def _digest(value: bytes) -> str:
    return hashlib.blake2b(value, digest_size=16).hexdigest()


def bounded(key: str) -> str:
    """``key``, or a fixed-size digest of it when it is long."""
    if len(key) <= _MAX_KEY:
        return key
    return "h:" + _digest(key.encode("utf-8", "surrogatepass"))


def ip_key(trusted_proxies: Iterable[str] = ()) -> KeyFunc:
    """The client address (forwarded headers only from ``trusted_proxies``); ``None`` when the
    server gives no peer address (e.g. a Unix socket without a trusted proxy in front)."""
    resolve = ClientIPResolver(trusted_proxies)

    def key(scope: Scope) -> str | None:
        address = resolve(scope)
        return None if address is None else "ip:" + str(address)[:64]

    return key


def user_key(fallback: KeyFunc) -> KeyFunc:
    """The authenticated ``user_id`` from request state (set by ``JWTMiddleware``), else ``fallback``."""

    def key(scope: Scope) -> str | None:
        state: Any = scope.get("state")
        if isinstance(state, dict) and state.get("authenticated") is True:
            user_id = state.get("user_id")
            if isinstance(user_id, (str, int)) and not isinstance(user_id, bool) and user_id != "":
                return bounded(f"user:{user_id}")
        return fallback(scope)

    return key


def api_key_key(header: str, fallback: KeyFunc) -> KeyFunc:
    """A digest of the API key sent in ``header``, else ``fallback`` (no key, no escape)."""
    name = header.strip().lower().encode("latin-1")

    def key(scope: Scope) -> str | None:
        value = first_header(scope, name)
        if value:
            return "key:" + _digest(value)
        return fallback(scope)

    return key


def make_key_func(key: str | Callable[[Scope], Any], trusted_proxies: Iterable[str]) -> KeyFunc:
    """Validate the ``key=`` option once and return the per-request key function."""
    if callable(key):
        return key
    if not isinstance(key, str):
        raise TypeError(
            "key must be 'ip', 'user', 'api_key:<header>' or a callable (scope) -> str | None"
        )
    by_ip = ip_key(trusted_proxies)
    if key == "ip":
        return by_ip
    if key == "user":
        return user_key(by_ip)
    if key.startswith("api_key:"):
        header = key[len("api_key:") :].strip()
        if not header or not all(c.isalnum() or c in "-_" for c in header):
            raise ValueError(f"invalid header name in key={key!r}")
        return api_key_key(header, by_ip)
    raise ValueError(f"unknown key {key!r}: use 'ip', 'user', 'api_key:<header>' or a callable")
