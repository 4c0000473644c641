"""Who a request is counted against: ``"ip"``, ``"user"``, ``"api_key:<header>"`` or a callable.

Keys are namespaced (``ip:``, ``user:``, ``key:``) so an IP can never collide with a user id.
Secrets never become keys: API keys are hashed. Long keys are hashed too, so the memory per
key stays bounded whatever a client sends.

IPv6 clients are counted per network prefix (``/64`` by default): one subscriber line or one
cloud instance usually gets a whole /64, so per-address keys would let a single client rotate
through 2**64 fresh budgets. IPv4-mapped IPv6 addresses count as their IPv4 address.
"""

from __future__ import annotations

import hashlib
import ipaddress
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


DEFAULT_IPV6_PREFIX = 64
_PREFIX_CACHE_MAX = 4096


def ipv6_prefix_key(address: str, prefix: int) -> str:
    """``address`` reduced to its ``/prefix`` network when it is IPv6 (``2001:db8::/64``), the
    IPv4 address when it is IPv4-mapped, else ``address`` unchanged."""
    try:
        parsed = ipaddress.IPv6Address(address.strip("[]"))
    except ValueError:
        return address  # not an IPv6 address (a server's odd peer text): keyed as it is
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    if prefix >= 128:
        return str(parsed)
    host_bits = 128 - prefix
    network = ipaddress.IPv6Address(int(parsed) >> host_bits << host_bits)
    return f"{network}/{prefix}"


def ip_key(trusted_proxies: Iterable[str] = (), ipv6_prefix: int = DEFAULT_IPV6_PREFIX) -> KeyFunc:
    """The client address (forwarded headers only from ``trusted_proxies``), IPv6 addresses
    reduced to their ``/ipv6_prefix`` network; ``None`` when the server gives no peer address
    (e.g. a Unix socket without a trusted proxy in front)."""
    if isinstance(ipv6_prefix, bool) or not isinstance(ipv6_prefix, int):
        raise TypeError("ipv6_prefix must be an int between 1 and 128")
    if not 1 <= ipv6_prefix <= 128:
        raise ValueError("ipv6_prefix must be between 1 and 128 (128: one key per address)")
    resolve = ClientIPResolver(trusted_proxies)
    reduced: dict[str, str] = {}  # bounded: cleared when full

    def key(scope: Scope) -> str | None:
        address = resolve(scope)
        if address is None:
            return None
        text = str(address)
        if ":" in text:  # IPv6 (IPv4 peers, with or without a port, never contain one here)
            found = reduced.get(text)
            if found is None:
                found = ipv6_prefix_key(text[:64], ipv6_prefix)
                if len(reduced) >= _PREFIX_CACHE_MAX:
                    reduced.clear()
                reduced[text] = found
            return "ip:" + found
        return "ip:" + text[:64]

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


def make_key_func(
    key: str | Callable[[Scope], Any],
    trusted_proxies: Iterable[str],
    ipv6_prefix: int = DEFAULT_IPV6_PREFIX,
) -> KeyFunc:
    """Validate the ``key=`` option once and return the per-request key function."""
    if callable(key):
        return key
    if not isinstance(key, str):
        raise TypeError(
            "key must be 'ip', 'user', 'api_key:<header>' or a callable (scope) -> str | None"
        )
    by_ip = ip_key(trusted_proxies, ipv6_prefix)
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
