from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentos_mw.clientip import ClientIPResolver


def scope(peer: str | None, *headers: tuple[bytes, bytes]) -> dict[str, object]:
    return {"client": (peer, 1234) if peer else None, "headers": list(headers)}


def test_untrusted_peer_ignores_forwarded_headers() -> None:
    resolve = ClientIPResolver(["10.0.0.0/8"])
    assert resolve(scope("203.0.113.9", (b"x-forwarded-for", b"1.2.3.4"))) == "203.0.113.9"
    assert ClientIPResolver()(scope("10.0.0.1", (b"x-forwarded-for", b"1.2.3.4"))) == "10.0.0.1"


def test_walks_right_to_left_skipping_trusted_and_invalid() -> None:
    resolve = ClientIPResolver(["10.0.0.0/8", "192.168.1.1"])
    header = (b"x-forwarded-for", b"6.6.6.6, 198.51.100.7, garbage, 192.168.1.1, 10.1.1.1")
    assert resolve(scope("10.0.0.1", header)) == "198.51.100.7"
    both = [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"198.51.100.8")]
    assert resolve(scope("10.0.0.1", *both)) == "198.51.100.8"
    all_trusted = (b"x-forwarded-for", b"10.9.9.9, 10.1.1.1")
    assert resolve(scope("10.0.0.1", all_trusted)) == "10.9.9.9"


def test_forwarded_header_and_ports() -> None:
    resolve = ClientIPResolver(["127.0.0.1/32"])
    header = (b"forwarded", b'for=192.0.2.60;proto=http, for="[2001:db8::17]:4711"')
    assert resolve(scope("127.0.0.1", header)) == "2001:db8::17"
    assert resolve(scope("127.0.0.1", (b"x-forwarded-for", b"192.0.2.1:5555"))) == "192.0.2.1"


def test_missing_client() -> None:
    assert ClientIPResolver(["10.0.0.0/8"])(scope(None)) is None
    assert ClientIPResolver()({"headers": []}) is None


def test_bad_config() -> None:
    with pytest.raises(ValueError):
        ClientIPResolver(["not-a-cidr"])
    with pytest.raises(TypeError):
        ClientIPResolver("10.0.0.0/8")


@given(st.binary(max_size=300))
def test_any_header_bytes_give_an_ip_or_the_peer(value: bytes) -> None:
    import ipaddress

    resolve = ClientIPResolver(["10.0.0.0/8"])
    result = resolve(scope("10.0.0.1", (b"x-forwarded-for", value), (b"forwarded", value)))
    assert result is not None
    ipaddress.ip_address(result)
