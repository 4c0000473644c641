"""JWKS URL: a real identity-provider stand-in on loopback (uvicorn in a thread), with key
rotation, unknown-kid cooldown, background refresh and an IdP outage."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentos_mw.auth import JWTMiddleware
from tests.driver import call, http_scope
from tests.test_auth_common import Recorder, bearer, claims, mint
from tests.uvicorn_thread import serving

KEY_1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(private: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    return {**data, "kid": kid, "use": "sig", "alg": "RS256"}


@dataclass
class IdP:
    """What the fake identity provider serves; tests change it between requests."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    body: bytes | None = None
    delay: float = 0.0
    hits: int = 0
    url: str = ""

    def reset(self) -> None:
        self.keys = [jwk(KEY_1, "k1")]
        self.status, self.body, self.delay, self.hits = 200, None, 0.0, 0


@pytest.fixture(scope="module")
def idp_server() -> Iterator[IdP]:
    idp = IdP()

    async def jwks(request: Request) -> Response:
        idp.hits += 1
        if idp.delay:
            await asyncio.sleep(idp.delay)
        body = idp.body if idp.body is not None else json.dumps({"keys": idp.keys}).encode()
        return Response(body, status_code=idp.status, media_type="application/json")

    app = Starlette(routes=[Route("/.well-known/jwks.json", jwks)])
    with serving(app) as (_server, port):
        idp.url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
        yield idp


_created: list[JWTMiddleware] = []


@pytest.fixture
async def idp(idp_server: IdP) -> AsyncIterator[IdP]:
    idp_server.reset()
    yield idp_server
    while _created:  # no fetch task may outlive the test's event loop
        mw = _created.pop()
        if mw.jwks is not None:
            await mw.jwks.aclose()


def middleware(idp: IdP, **options: Any) -> JWTMiddleware:
    mw = JWTMiddleware(Recorder(), jwks_url=idp.url, **options)
    _created.append(mw)
    return mw


def token(key: rsa.RSAPrivateKey = KEY_1, kid: str | None = "k1", **overrides: Any) -> str:
    return mint(claims(**overrides), key=key, alg="RS256", headers={"kid": kid} if kid else None)


async def status(mw: JWTMiddleware, tok: str) -> int:
    return (await call(mw, http_scope("GET", "/agents", bearer(tok)))).status


@pytest.mark.anyio
async def test_keys_are_fetched_once_and_shared_by_concurrent_first_requests(idp: IdP) -> None:
    idp.delay = 0.2
    mw = middleware(idp)
    results = await asyncio.gather(*(status(mw, token(sub=f"u{i}")) for i in range(8)))
    assert results == [200] * 8
    assert idp.hits == 1
    assert await status(mw, token(sub="another")) == 200
    assert idp.hits == 1


@pytest.mark.anyio
async def test_rotation_new_kid_triggers_one_refetch(idp: IdP) -> None:
    mw = middleware(idp, jwks_cooldown=0.05)
    assert await status(mw, token()) == 200
    idp.keys = [jwk(KEY_2, "k2")]  # the IdP rotates and drops k1
    await asyncio.sleep(0.06)
    assert await status(mw, token(KEY_2, "k2")) == 200
    assert idp.hits == 2
    # k1 is gone: the cache was cleared on the key change, so the old token is re-checked
    assert await status(mw, token(KEY_1, "k1")) == 401


@pytest.mark.anyio
async def test_unknown_kids_cannot_cause_a_fetch_storm(idp: IdP) -> None:
    mw = middleware(idp, jwks_cooldown=60)
    assert await status(mw, token()) == 200
    forged = [token(KEY_2, f"made-up-{i}") for i in range(20)]
    results = await asyncio.gather(*(status(mw, t) for t in forged))
    assert set(results) == {401}
    assert idp.hits <= 2  # the first fetch plus at most one refetch per cooldown


@pytest.mark.anyio
@pytest.mark.parametrize(
    "outage",
    [
        {"status": 503},
        {"body": b"<html>oops"},
        {"body": b'{"keys": []}'},
        {"body": b"x" * (2 << 20)},
    ],
)
async def test_idp_outage_keeps_the_last_good_keys(idp: IdP, outage: dict[str, Any]) -> None:
    mw = middleware(idp, jwks_refresh_interval=0.05, jwks_cooldown=0.05)
    assert await status(mw, token()) == 200
    for name, value in outage.items():
        setattr(idp, name, value)
    await asyncio.sleep(0.1)
    assert await status(mw, token(sub="u2")) == 200  # stale keys serve; refresh goes to background
    assert mw.jwks is not None
    for _ in range(100):
        if idp.hits >= 2 and not mw.jwks._busy():
            break
        await asyncio.sleep(0.02)
    assert idp.hits >= 2
    assert await status(mw, token(sub="u3")) == 200  # the failed refresh kept k1


@pytest.mark.anyio
async def test_background_refresh_does_not_hold_requests(idp: IdP) -> None:
    mw = middleware(idp, jwks_refresh_interval=0.05, jwks_cooldown=0.05)
    assert await status(mw, token()) == 200
    await asyncio.sleep(0.1)
    idp.delay = 1.0
    assert await status(mw, token(sub="u2")) == 200
    assert mw.jwks is not None and mw.jwks._busy()  # the request finished while the fetch runs
    idp.delay = 0.0


@pytest.mark.anyio
async def test_idp_down_from_the_start_is_a_503_without_retry_storm(idp: IdP) -> None:
    idp.status = 500
    mw = middleware(idp, jwks_cooldown=60)
    for _ in range(5):
        result = await call(mw, http_scope("GET", "/agents", bearer(token())))
        assert result.status == 503
        assert result.json() == {"detail": "Token verification keys unavailable"}
    assert idp.hits == 1
    idp.status = 200
    assert mw.jwks is not None
    await mw.jwks.refresh()  # e.g. from a lifespan handler
    assert await status(mw, token()) == 200


@pytest.mark.anyio
async def test_static_keys_still_work_while_the_idp_is_down(idp: IdP) -> None:
    from tests.test_auth_common import SECRET

    idp.status = 500
    mw = JWTMiddleware(Recorder(), jwks_url=idp.url, verification_keys=[SECRET])
    _created.append(mw)
    assert await status(mw, mint()) == 200


@pytest.mark.anyio
async def test_kidless_token_and_algorithm_allow_list(idp: IdP) -> None:
    mw = middleware(idp)
    assert await status(mw, token(kid=None)) == 200
    es_only = middleware(idp, algorithms=["ES256"])  # the RSA key fits no allowed algorithm
    assert (await call(es_only, http_scope("GET", "/x", bearer(token())))).status == 503


def test_jwks_url_configuration_errors() -> None:
    for url in ("ftp://idp.example/jwks", "not a url", "https://"):
        with pytest.raises(ValueError):
            JWTMiddleware(Recorder(), jwks_url=url)
    with pytest.raises(ValueError):
        JWTMiddleware(Recorder(), jwks_url="https://idp.example/jwks", jwks_cooldown=0)
