"""Shared helpers for the JWT tests (tokens, keys, a recording app), plus smoke tests of them."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from agentos_mw.auth import JWTMiddleware
from tests.driver import call, http_scope

SECRET = "test-secret-" + "s" * 60
OTHER_SECRET = "other-secret-" + "o" * 60

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PEM = (
    RSA_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "user-1",
        "iat": now,
        "exp": now + 600,
        "session_id": "sess-1",
        "scopes": ["agents:read"],
    }
    for key, value in overrides.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def mint(
    payload: dict[str, Any] | None = None,
    key: Any = SECRET,
    alg: str = "HS256",
    headers: dict[str, Any] | None = None,
) -> str:
    return jwt.encode(claims() if payload is None else payload, key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header_json: str, payload_json: str, key: str = SECRET) -> str:
    """A correctly HS256-signed token with header and payload given as raw JSON text."""
    import hashlib
    import hmac

    signing_input = f"{b64(header_json.encode())}.{b64(payload_json.encode())}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


class Recorder:
    """An ASGI app answering 200 with what the middleware left in the scope."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        if scope["type"] == "lifespan":
            return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})
            return
        state = scope.get("state", {})
        body = json.dumps(
            {key: state.get(key) for key in ("authenticated", "user_id", "scopes")}, default=str
        ).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    @property
    def last(self) -> dict[str, Any]:
        return self.scopes[-1]

    @property
    def state(self) -> dict[str, Any]:
        return self.scopes[-1]["state"]  # type: ignore[no-any-return]


def make(**options: Any) -> tuple[JWTMiddleware, Recorder]:
    app = Recorder()
    options.setdefault("verification_keys", [SECRET])
    return JWTMiddleware(app, **options), app


@pytest.mark.anyio
async def test_helpers_mint_tokens_the_middleware_accepts() -> None:
    mw, app = make()
    result = await call(mw, http_scope("GET", "/agents", bearer(mint())))
    assert result.status == 200
    assert app.state["user_id"] == "user-1"


@pytest.mark.anyio
async def test_raw_token_helper_signs_correctly() -> None:
    mw, _ = make()
    token = raw_token('{"alg":"HS256","typ":"JWT"}', json.dumps(claims()))
    assert (await call(mw, http_scope("GET", "/x", bearer(token)))).status == 200
