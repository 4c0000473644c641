"""RevocationList: revoke by jti until a time, revoke a subject's older tokens; the JWT hook."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentos_mw.auth import JWTMiddleware
from agentos_mw.ratelimit import (
    Algorithm,
    Bucket,
    MemoryStore,
    RateLimit,
    RevocationList,
    StoreError,
)
from tests.driver import call, http_scope

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


SECRET = "revocation-test-secret-0123456789abcdef"


async def protected(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def bearer(**claims: Any) -> dict[str, Any]:
    token = jwt.encode({"exp": 4_000_000_000, **claims}, SECRET, algorithm="HS256")
    return http_scope(path="/agents", headers=[("authorization", f"Bearer {token}")])


@pytest.mark.anyio
async def test_jwt_middleware_refuses_revoked_tokens() -> None:
    revoked = RevocationList()
    app = JWTMiddleware(
        protected, verification_keys=[SECRET], algorithm="HS256", revocation_check=revoked
    )
    iat = int(time.time()) - 60  # within max_token_lifetime (a day by default)
    assert (await call(app, bearer(sub="alice", jti="t1", iat=iat))).status == 200
    await revoked.revoke_token("t1", until=4_000_000_000)
    assert (await call(app, bearer(sub="alice", jti="t1", iat=iat))).status == 401
    assert (await call(app, bearer(sub="alice", jti="t2", iat=iat))).status == 200
    await revoked.revoke_subject("alice", before=iat + 1)
    assert (await call(app, bearer(sub="alice", jti="t2", iat=iat))).status == 401
    assert (await call(app, bearer(sub="alice", jti="t3", iat=iat + 5))).status == 200


class DownStore(MemoryStore):
    async def get_markers(self, keys: Any) -> list[int | None]:
        raise StoreError("down")


@pytest.mark.anyio
async def test_an_unreachable_store_fails_closed_by_default() -> None:
    app = JWTMiddleware(
        protected,
        verification_keys=[SECRET],
        algorithm="HS256",
        revocation_check=RevocationList(DownStore()),
    )
    assert (await call(app, bearer(sub="alice", jti="t1", iat=1))).status == 503
    lenient = RevocationList(DownStore(), on_store_error="allow")
    assert await lenient({"sub": "alice"}) is False
