"""RevocationList: revoke by jti until a time, revoke a subject's older tokens; the JWT hook."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentos_mw.ratelimit import Algorithm, Bucket, MemoryStore, RateLimit, RevocationList

NOW = 1_800_000_000.0


def make(**kwargs: Any) -> tuple[RevocationList, list[float]]:
    clock = [NOW]
    store = MemoryStore(clock=lambda: clock[0])
    return RevocationList(store, clock=lambda: clock[0], **kwargs), clock


@pytest.mark.anyio
async def test_revoke_by_jti_until_a_time() -> None:
    revoked, clock = make()
    await revoked.revoke_token("abc", until=NOW + 60)
    assert await revoked({"jti": "abc", "sub": "alice"}) is True
    assert await revoked({"jti": "abd", "sub": "alice"}) is False
    clock[0] = NOW + 61
    assert await revoked({"jti": "abc"}) is False  # the entry expired with the token


@pytest.mark.anyio
async def test_revoke_a_subjects_tokens_issued_before_a_time() -> None:
    revoked, clock = make(max_token_lifetime=3600)
    await revoked.revoke_subject("alice")  # "now"
    assert await revoked({"sub": "alice", "iat": NOW - 1}) is True
    assert await revoked({"sub": "alice", "iat": NOW + 1}) is False  # logged in again afterwards
    assert await revoked({"sub": "alice"}) is True  # no iat: cannot prove it is newer
    assert await revoked({"sub": "alice", "iat": "yesterday"}) is True
    assert await revoked({"sub": "bob", "iat": NOW - 1}) is False
    clock[0] = NOW + 3601
    assert await revoked({"sub": "alice", "iat": NOW - 1}) is False


@pytest.mark.anyio
async def test_revocations_only_get_stronger_and_accept_datetimes() -> None:
    revoked, _ = make()
    when = dt.datetime.fromtimestamp(NOW, dt.timezone.utc)
    await revoked.revoke_subject("alice", before=when)
    await revoked.revoke_subject("alice", before=NOW - 100)  # an older cut-off does not undo it
    assert await revoked({"sub": "alice", "iat": NOW - 50}) is True
    with pytest.raises(ValueError):
        await revoked.revoke_subject("alice", before=dt.datetime(2030, 1, 1))
    with pytest.raises(ValueError):
        await revoked.revoke_token("", until=NOW)


@pytest.mark.anyio
async def test_revocation_entries_survive_rate_limit_eviction() -> None:
    store = MemoryStore(max_keys=2)
    revoked = RevocationList(store)
    await revoked.revoke_token("t", until=NOW + 10**6)
    bucket = Bucket(Algorithm.GCRA, (RateLimit(5, 60),))
    for i in range(100):
        store.hit_sync(f"k{i}", [bucket])
    assert await revoked({"jti": "t"}) is True


def test_configuration_errors() -> None:
    with pytest.raises(ValueError):
        RevocationList(on_store_error="maybe")
    with pytest.raises(ValueError):
        RevocationList(max_token_lifetime=0)
    with pytest.raises(TypeError):
        RevocationList(object())  # type: ignore[arg-type]


CLAIM_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=300),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["jti", "sub", "iat", "exp", "x"]), CLAIM_VALUES))
def test_any_claims_give_a_bool_and_never_raise(claims: dict[str, Any]) -> None:
    revoked = RevocationList()

    async def check() -> None:
        await revoked.revoke_subject("alice", before=NOW)
        await revoked.revoke_token("abc", until=NOW + 10**9)
        result = await revoked(claims)
        assert isinstance(result, bool)
        if claims.get("jti") == "abc":
            assert result

    asyncio.run(check())
