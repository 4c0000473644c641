"""Keys: types, algorithm binding (no HS/asymmetric mixing), kid selection, JWKS files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt import PyJWK
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from agentos_mw.auth import JWTMiddleware
from agentos_mw.auth.keys import KeyRing, load_key, normalize_algorithms
from tests.driver import call, http_scope
from tests.test_auth_common import (
    EC_KEY,
    ED_KEY,
    OTHER_SECRET,
    RSA_KEY,
    RSA_PEM,
    SECRET,
    Recorder,
    bearer,
    claims,
    mint,
)


async def status(mw: JWTMiddleware, token: str) -> int:
    return (await call(mw, http_scope("GET", "/agents", bearer(token)))).status


def jwk(private: Any, kid: str | None = None, alg: str | None = None) -> dict[str, Any]:
    public = private.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        data = json.loads(RSAAlgorithm.to_jwk(public))
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = json.loads(ECAlgorithm.to_jwk(public))
    else:
        data = json.loads(OKPAlgorithm.to_jwk(public))
    if kid:
        data["kid"] = kid
    if alg:
        data["alg"] = alg
    return data


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("private", "public", "alg"),
    [
        (RSA_KEY, RSA_PEM, "RS256"),
        (RSA_KEY, RSA_KEY.public_key(), "RS256"),
        (EC_KEY, EC_KEY.public_key(), "ES256"),
        (ED_KEY, ED_KEY.public_key(), "EdDSA"),
        (SECRET, SECRET, "HS256"),
        (SECRET, SECRET.encode(), "HS256"),
    ],
)
async def test_algorithm_is_inferred_from_the_key_type(private: Any, public: Any, alg: str) -> None:
    mw = JWTMiddleware(Recorder(), verification_keys=[public])
    assert await status(mw, mint(key=private, alg=alg)) == 200


@pytest.mark.anyio
async def test_inferred_algorithm_is_the_only_one_accepted() -> None:
    mw = JWTMiddleware(Recorder(), verification_keys=[RSA_PEM])
    assert await status(mw, mint(key=RSA_KEY, alg="PS256")) == 401
    assert await status(mw, mint(key=RSA_KEY, alg="RS512")) == 401


@pytest.mark.anyio
async def test_configured_algorithms_allow_list() -> None:
    mw = JWTMiddleware(Recorder(), verification_keys=[RSA_PEM], algorithms=["RS256", "PS256"])
    assert await status(mw, mint(key=RSA_KEY, alg="PS256")) == 200
    assert await status(mw, mint(key=RSA_KEY, alg="RS384")) == 401
    agno_style = JWTMiddleware(Recorder(), verification_keys=[SECRET], algorithm="HS512")
    assert await status(agno_style, mint(alg="HS512")) == 200
    assert await status(agno_style, mint(alg="HS256")) == 401


@pytest.mark.anyio
async def test_algorithm_confusion_public_key_as_hmac_secret_is_rejected() -> None:
    # The attacker signs with HS256 using the server's *public* key bytes as the secret.
    mw = JWTMiddleware(Recorder(), verification_keys=[RSA_PEM], algorithms=["RS256", "HS256"])
    import hashlib
    import hmac

    from tests.test_auth_common import b64

    header = b64(b'{"alg":"HS256"}')
    signing_input = f"{header}.{b64(json.dumps(claims()).encode())}"
    signature = hmac.new(RSA_PEM.encode(), signing_input.encode(), hashlib.sha256).digest()
    assert await status(mw, f"{signing_input}.{b64(signature)}") == 401


@pytest.mark.anyio
async def test_alg_none_is_never_accepted() -> None:
    mw = JWTMiddleware(Recorder(), verification_keys=[SECRET])
    from tests.test_auth_common import b64

    header = b64(b'{"alg":"none"}')
    token = f"{header}.{b64(json.dumps(claims()).encode())}.x"
    assert await status(mw, token) == 401


def test_keys_bound_to_incompatible_algorithms_are_construction_errors() -> None:
    with pytest.raises(ValueError, match="shared secret"):
        JWTMiddleware(Recorder(), verification_keys=[SECRET], algorithm="RS256")
    with pytest.raises(ValueError, match="RSA"):
        JWTMiddleware(Recorder(), verification_keys=[RSA_PEM], algorithm="HS256")
    with pytest.raises(ValueError):
        JWTMiddleware(Recorder(), verification_keys=[EC_KEY.public_key()], algorithm="ES384")


@pytest.mark.parametrize(
    "keys",
    [[None], [""], ["   "], ["-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----"]],
)
def test_unusable_keys_are_value_errors(keys: list[Any]) -> None:
    with pytest.raises(ValueError):
        JWTMiddleware(Recorder(), verification_keys=keys)


def test_construction_errors() -> None:
    with pytest.raises(ValueError):
        JWTMiddleware(Recorder())  # no key source at all
    with pytest.raises(TypeError):
        JWTMiddleware(Recorder(), verification_keys=SECRET)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        JWTMiddleware(Recorder(), verification_keys=[SECRET], algorithm="none")
    with pytest.raises(ValueError):
        JWTMiddleware(Recorder(), verification_keys=[SECRET], algorithms=[])
    with pytest.raises(ValueError, match="JWK"):
        JWTMiddleware(Recorder(), verification_keys=['{"kty": "oct", "k": "abc"}'])
    with pytest.raises(ValueError, match="SSH"):
        JWTMiddleware(Recorder(), verification_keys=["ssh-rsa AAAAB3NzaC1yc2E"])


def test_short_hmac_secret_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agentos_mw.auth"):
        JWTMiddleware(Recorder(), verification_keys=["short"])
    assert "RFC 7518" in caplog.text
    assert "short" not in caplog.text.replace("shared secret", "")  # the secret is not logged


def test_short_secret_threshold_follows_the_hash_size(caplog: pytest.LogCaptureFixture) -> None:
    """RFC 7518 §3.2: at least as long as the hash output - 32 bytes for HS256, 64 for HS512."""
    secret_40 = "k" * 40
    with caplog.at_level(logging.WARNING, logger="agentos_mw.auth"):
        JWTMiddleware(Recorder(), verification_keys=[secret_40], algorithm="HS256")
    assert "RFC 7518" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="agentos_mw.auth"):
        JWTMiddleware(Recorder(), verification_keys=[secret_40], algorithm="HS512")
    assert "at least 64 for HS512" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agentos_mw.auth"):
        JWTMiddleware(Recorder(), verification_keys=["k" * 64], algorithm="HS512")
    assert "RFC 7518" not in caplog.text


def test_secrets_are_not_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_VERIFICATION_KEY", SECRET)
    monkeypatch.setenv("JWT_JWKS_FILE", "/nonexistent.json")
    with pytest.raises(ValueError):
        JWTMiddleware(Recorder())


@pytest.mark.anyio
async def test_private_keys_certificates_and_pyjwk_objects_are_accepted() -> None:
    private_pem = RSA_KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for key in (private_pem, RSA_KEY, PyJWK.from_dict(jwk(RSA_KEY)), jwk(RSA_KEY)):
        mw = JWTMiddleware(Recorder(), verification_keys=[key])
        assert await status(mw, mint(key=RSA_KEY, alg="RS256")) == 200


@pytest.mark.anyio
async def test_multiple_keys_any_may_verify() -> None:
    mw = JWTMiddleware(Recorder(), verification_keys=[OTHER_SECRET, SECRET, RSA_PEM])
    assert await status(mw, mint()) == 200
    assert await status(mw, mint(key=OTHER_SECRET)) == 200
    assert await status(mw, mint(key=RSA_KEY, alg="RS256")) == 200
    assert await status(mw, mint(key="third-secret-" + "t" * 40)) == 401


@pytest.mark.anyio
async def test_kid_selects_the_key() -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = [jwk(RSA_KEY, "k1"), jwk(other, "k2")]
    mw = JWTMiddleware(Recorder(), verification_keys=keys)
    assert await status(mw, mint(key=RSA_KEY, alg="RS256", headers={"kid": "k1"})) == 200
    assert await status(mw, mint(key=other, alg="RS256", headers={"kid": "k2"})) == 200
    # signed by k1 but claiming k2: only k2 is tried
    assert await status(mw, mint(key=RSA_KEY, alg="RS256", headers={"kid": "k2"})) == 401
    assert await status(mw, mint(key=RSA_KEY, alg="RS256", headers={"kid": "nope"})) == 401
    assert await status(mw, mint(key=RSA_KEY, alg="RS256")) == 200  # no kid: any key


def test_key_ring_lookup_rules() -> None:
    a = load_key(jwk(RSA_KEY, "a"), None, 0)
    anon = load_key(SECRET, None, 1)
    ring = KeyRing([a, anon])
    assert ring.candidates("a", "RS256") == (a,)
    assert ring.candidates("zzz", "HS256") == (anon,)
    assert ring.candidates(None, "RS256") == (a,)
    assert ring.candidates("a", "HS256") == ()
    assert ring.candidates(None, "none") == ()
    assert "material" not in repr(a) and SECRET not in repr(anon)


def test_jwk_alg_must_fit_the_key() -> None:
    with pytest.raises(ValueError):
        load_key(jwk(RSA_KEY, alg="ES256"), None, 0)
    bound = load_key(jwk(RSA_KEY, alg="PS256"), None, 0)
    assert bound.algorithms == ("PS256",)


def test_normalize_algorithms() -> None:
    assert normalize_algorithms(None, None) is None
    assert normalize_algorithms("RS256", ["ES256"]) == {"RS256", "ES256"}
    with pytest.raises(TypeError):
        normalize_algorithms(None, "RS256")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_jwks_file(tmp_path: Path) -> None:
    ec_other = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / "jwks.json"
    path.write_text(
        json.dumps(
            {
                "keys": [
                    jwk(RSA_KEY, "rsa-1"),
                    jwk(ec_other, "ec-1"),
                    {**jwk(ED_KEY, "enc-1"), "use": "enc"},
                    {"kty": "bogus"},
                ]
            }
        )
    )
    mw = JWTMiddleware(Recorder(), jwks_file=str(path))
    assert await status(mw, mint(key=RSA_KEY, alg="RS256", headers={"kid": "rsa-1"})) == 200
    assert await status(mw, mint(key=ec_other, alg="ES384", headers={"kid": "ec-1"})) == 200
    assert await status(mw, mint(key=ED_KEY, alg="EdDSA", headers={"kid": "enc-1"})) == 401


def test_jwks_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        JWTMiddleware(Recorder(), jwks_file=tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError):
        JWTMiddleware(Recorder(), jwks_file=bad)
    empty = tmp_path / "empty.json"
    empty.write_text('{"keys": []}')
    with pytest.raises(ValueError, match="no usable"):
        JWTMiddleware(Recorder(), jwks_file=empty)
    shape = tmp_path / "shape.json"
    shape.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JWK Set"):
        JWTMiddleware(Recorder(), jwks_file=shape)


@pytest.mark.anyio
async def test_ed25519_pem_and_ec_pem() -> None:
    for private, alg in (
        (ED_KEY, "EdDSA"),
        (EC_KEY, "ES256"),
        (ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
    ):
        pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        mw = JWTMiddleware(Recorder(), verification_keys=[pem.decode()])
        assert await status(mw, mint(key=private, alg=alg)) == 200
