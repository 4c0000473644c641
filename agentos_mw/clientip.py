"""The client's address, trusting forwarded headers only from configured proxies.

``X-Forwarded-For`` (or, when absent, RFC 7239 ``Forwarded``) is read only when the direct peer
is inside ``trusted_proxies``. The list is walked right to left, skipping hops that are
themselves trusted proxies; the first untrusted address is the client. Entries that are not IP
addresses are ignored, so a client cannot inject text into logs or rate-limit keys.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ._asgi import Scope

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_MAX_HOPS = 32


def _parse_ip(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("["):  # "[2001:db8::1]:443" or "[2001:db8::1]"
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # "203.0.113.7:51000"
        text = text.split(":", 1)[0]
    if "%" in text:  # scoped IPv6 ("fe80::1%eth0") is never a public client identity
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _forwarded_for(values: list[bytes]) -> list[str]:
    """``for=`` parameters of RFC 7239 ``Forwarded`` headers, in order."""
    hops: list[str] = []
    for value in values:
        for element in value.decode("latin-1").split(","):
            for pair in element.split(";"):
                name, _, raw = pair.strip().partition("=")
                if name.lower() == "for":
                    hops.append(raw.strip().strip('"'))
    return hops


class ClientIPResolver:
    """Callable ``(scope) -> str | None`` returning the client address as text.

    ``trusted_proxies`` is a list of CIDRs (``"10.0.0.0/8"``) or addresses. With an empty list
    (the default) forwarded headers are never read: the peer address is the client.
    """

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        if isinstance(trusted_proxies, str):
            raise TypeError("trusted_proxies must be a list of CIDR strings, not a string")
        networks: list[IPNetwork] = []
        for cidr in trusted_proxies:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except (ValueError, AttributeError) as exc:
                raise ValueError(f"invalid trusted proxy network: {cidr!r}") from exc
        self.trusted_networks: tuple[IPNetwork, ...] = tuple(networks)

    def is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.trusted_networks)

    def __call__(self, scope: Scope) -> str | None:
        client = scope.get("client")
        peer_host = client[0] if client else None
        if not self.trusted_networks or peer_host is None:
            return peer_host
        peer = _parse_ip(str(peer_host))
        if peer is None or not self.is_trusted(peer):
            return peer_host  # type: ignore[no-any-return]
        hops = self._forwarded_hops(scope)
        last_trusted = peer
        for text in reversed(hops[-_MAX_HOPS:]):
            address = _parse_ip(text)
            if address is None:
                continue
            if not self.is_trusted(address):
                return str(address)
            last_trusted = address
        return str(last_trusted)

    @staticmethod
    def _forwarded_hops(scope: Scope) -> list[str]:
        xff: list[bytes] = []
        forwarded: list[bytes] = []
        for key, value in scope.get("headers") or ():
            if key == b"x-forwarded-for":
                xff.append(value)
            elif key == b"forwarded":
                forwarded.append(value)
        if xff:
            return [hop for value in xff for hop in value.decode("latin-1").split(",")]
        return _forwarded_for(forwarded)


def client_ip(scope: Scope) -> str | None:
    """The direct peer address (no proxies trusted)."""
    client = scope.get("client")
    return str(client[0]) if client else None
