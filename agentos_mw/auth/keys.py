"""Verification keys: loading, binding each key to one algorithm family, lookup by ``kid``.

A key's algorithms come from configuration or from the key's own type (RSA → RS256, EC → the
ES algorithm of its curve, Ed25519/Ed448 → EdDSA, a shared secret → HS256), never from the
token header, and HS and asymmetric algorithms are never allowed for the same key: that is the
classic algorithm-confusion hole.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    load_pem_private_key,
    load_pem_public_key,
)
from jwt import PyJWK
from jwt.algorithms import HMACAlgorithm
from jwt.exceptions import InvalidKeyError

logger = logging.getLogger("agentos_mw.auth")

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS = {
    "ES256": "secp256r1",
    "ES256K": "secp256k1",
    "ES384": "secp384r1",
    "ES512": "secp521r1",
}
OKP_ALGORITHMS = ("EdDSA",)
SUPPORTED_ALGORITHMS = frozenset(
    (*HMAC_ALGORITHMS, *RSA_ALGORITHMS, *EC_ALGORITHMS, *OKP_ALGORITHMS)
)
MIN_HMAC_BYTES = 32  # RFC 7518 §3.2: a key at least as long as the hash output (HS256)
_HMAC_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)
_PRIVATE_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)


class PreparedSecret(bytes):
    """An HMAC secret PyJWT already vetted at start-up (not PEM, SSH, DER or a JWK's JSON).

    PyJWT re-runs those checks on every ``decode`` (several µs); :mod:`.verify` registers HMAC
    algorithms that skip them for secrets of this type only.
    """

    __slots__ = ()


def prepare_secret(secret: bytes, label: str) -> PreparedSecret:
    try:
        HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(secret)
    except InvalidKeyError:
        raise ValueError(
            f"{label} looks like an asymmetric key, certificate or JWK, not a shared secret"
        ) from None
    return PreparedSecret(secret)


class Key:
    """One usable key: the material PyJWT verifies with, its allowed algorithms, its ``kid``."""

    __slots__ = ("algorithms", "kid", "material")

    def __init__(
        self, material: bytes | PublicKey, algorithms: tuple[str, ...], kid: str | None
    ) -> None:
        self.material = material
        self.algorithms = algorithms
        self.kid = kid

    def __repr__(self) -> str:  # never the material
        return f"Key(kid={self.kid!r}, algorithms={self.algorithms!r})"

    def same_as(self, other: Key) -> bool:
        return (
            self.kid == other.kid
            and self.algorithms == other.algorithms
            and _fingerprint(self.material) == _fingerprint(other.material)
        )


def normalize_algorithms(
    algorithm: str | None, algorithms: Iterable[str] | None
) -> frozenset[str] | None:
    """The configured allow-list (``algorithm`` and ``algorithms`` together), or ``None`` to
    infer each key's algorithm from its type."""
    if isinstance(algorithms, str):
        raise TypeError("algorithms must be a list of algorithm names, not a single string")
    names: list[str] = []
    if algorithm is not None:
        names.append(algorithm)
    if algorithms is not None:
        names.extend(algorithms)
        if not names:
            raise ValueError("algorithms must not be empty")
    if not names:
        return None
    for name in names:
        if not isinstance(name, str) or name not in SUPPORTED_ALGORITHMS:
            raise ValueError(
                f"unsupported JWT algorithm {name!r}; choose from {sorted(SUPPORTED_ALGORITHMS)}"
            )
    return frozenset(names)


def _family_algorithms(material: bytes | PublicKey) -> tuple[str, ...]:
    """Every algorithm a key of this type can verify, default first."""
    if isinstance(material, bytes):
        return HMAC_ALGORITHMS
    if isinstance(material, rsa.RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(material, ec.EllipticCurvePublicKey):
        return tuple(alg for alg, curve in EC_ALGORITHMS.items() if curve == material.curve.name)
    return OKP_ALGORITHMS


def bind(
    material: bytes | PublicKey,
    allowed: frozenset[str] | None,
    *,
    kid: str | None = None,
    jwk_alg: str | None = None,
    label: str = "key",
) -> Key:
    """Bind ``material`` to the algorithms it may verify; ``ValueError`` when none fits."""
    family = _family_algorithms(material)
    if jwk_alg is not None:
        if jwk_alg not in family:
            raise ValueError(f"{label}: its 'alg' {jwk_alg!r} does not fit the key type")
        family = (jwk_alg,)
    chosen = family[:1] if allowed is None else tuple(alg for alg in family if alg in allowed)
    if not chosen:
        kind = "a shared secret" if isinstance(material, bytes) else f"a {_kind(material)} key"
        raise ValueError(
            f"{label} is {kind} and cannot verify any of the configured algorithms "
            f"{sorted(allowed or ())}"
        )
    return Key(material, chosen, kid)


def _kind(material: PublicKey) -> str:
    if isinstance(material, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(material, ec.EllipticCurvePublicKey):
        return f"EC ({material.curve.name})"
    return "EdDSA"


def load_key(raw: Any, allowed: frozenset[str] | None, index: int) -> Key:
    """One entry of ``verification_keys``: a PEM string, a shared secret, a JWK dict, a
    :class:`jwt.PyJWK`, or a ``cryptography`` key object."""
    label = f"verification_keys[{index}]"
    if raw is None:
        raise ValueError(f"{label} is None")
    if isinstance(raw, PyJWK):
        return _from_pyjwk(raw, allowed, label, raw.key_id, _declared_alg(raw))
    if isinstance(raw, Mapping):
        return _from_jwk_dict(raw, allowed, label)
    if isinstance(raw, _PRIVATE_TYPES):
        raw = raw.public_key()
    if isinstance(
        raw,
        (
            rsa.RSAPublicKey,
            ec.EllipticCurvePublicKey,
            ed25519.Ed25519PublicKey,
            ed448.Ed448PublicKey,
        ),
    ):
        return bind(raw, allowed, label=label)
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if not isinstance(raw, (bytes, bytearray)):
        raise TypeError(f"{label} has unsupported type {type(raw).__name__}")
    data = bytes(raw)
    if not data.strip():
        raise ValueError(f"{label} is empty")
    if data.lstrip().startswith(b"-----BEGIN"):
        return bind(_load_pem(data, label), allowed, label=label)
    if data.lstrip().startswith((b"ssh-", b"ecdsa-sha2-")):
        raise ValueError(f"{label}: SSH public keys are not supported; use PEM")
    key = bind(prepare_secret(data, label), allowed, label=label)
    # the longest hash this key may verify sets the minimum (HS512: 64 bytes)
    needed = max((_HMAC_BYTES.get(alg, MIN_HMAC_BYTES) for alg in key.algorithms), default=0)
    if len(data) < needed:
        logger.warning(
            "%s is a shared secret of %d bytes; RFC 7518 §3.2 asks for at least %d for %s. "
            "Use a longer random secret in production.",
            label,
            len(data),
            needed,
            "/".join(key.algorithms),
        )
    return key


def _load_pem(data: bytes, label: str) -> PublicKey:
    public: Any
    try:
        if b"CERTIFICATE-----" in data:
            public = x509.load_pem_x509_certificate(data).public_key()
        elif b"PRIVATE KEY-----" in data:
            public = load_pem_private_key(data, password=None).public_key()
        else:
            public = load_pem_public_key(data)
    except Exception as exc:  # cryptography raises several types for unusable PEM
        raise ValueError(f"{label} is not a usable PEM key ({type(exc).__name__})") from None
    if not isinstance(
        public,
        (
            rsa.RSAPublicKey,
            ec.EllipticCurvePublicKey,
            ed25519.Ed25519PublicKey,
            ed448.Ed448PublicKey,
        ),
    ):
        raise ValueError(f"{label}: unsupported PEM key type {type(public).__name__}")
    return public


def _declared_alg(jwk: PyJWK) -> str | None:
    declared = jwk._jwk_data.get("alg")  # PyJWK keeps the dict; "alg" is optional in a JWK
    return declared if isinstance(declared, str) else None


def _from_jwk_dict(data: Mapping[str, Any], allowed: frozenset[str] | None, label: str) -> Key:
    try:
        jwk = PyJWK.from_dict(dict(data))
    except Exception as exc:
        raise ValueError(f"{label} is not a usable JWK ({type(exc).__name__})") from None
    kid = data.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise ValueError(f"{label}: 'kid' must be a string")
    declared = data.get("alg")
    return _from_pyjwk(jwk, allowed, label, kid, declared if isinstance(declared, str) else None)


def _from_pyjwk(
    jwk: PyJWK, allowed: frozenset[str] | None, label: str, kid: str | None, declared: str | None
) -> Key:
    material: Any = jwk.key
    if isinstance(material, _PRIVATE_TYPES):
        material = material.public_key()
    if isinstance(material, str):
        material = material.encode("utf-8")
    if isinstance(material, bytes):
        if not material:
            raise ValueError(f"{label} is an empty secret")
        material = prepare_secret(material, label)
    return bind(material, allowed, kid=kid, jwk_alg=declared, label=label)


def parse_jwks(data: Any, allowed: frozenset[str] | None, source: str) -> list[Key]:
    """Usable keys of a JWK Set; entries that cannot verify (``use: enc``, unknown types, keys
    that fit no configured algorithm) are skipped with a log line, not an error."""
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        raise ValueError(f"{source} is not a JWK Set (a JSON object with a 'keys' list)")
    keys: list[Key] = []
    for index, entry in enumerate(data["keys"]):
        label = f"{source} key #{index}"
        if not isinstance(entry, Mapping):
            logger.warning("%s skipped: not a JSON object", label)
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            keys.append(_from_jwk_dict(entry, allowed, label))
        except (ValueError, TypeError) as exc:
            logger.warning("%s skipped: %s", label, exc)
    return keys


def load_jwks_file(path: str | Path, allowed: frozenset[str] | None) -> list[Key]:
    """Keys from a JWKS file, read once at start-up; a file without usable keys is an error."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"JWKS file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"JWKS file {path} cannot be read as JSON ({type(exc).__name__})"
        ) from None
    keys = parse_jwks(data, allowed, f"JWKS file {path}")
    if not keys:
        raise ValueError(f"JWKS file {path} contains no usable signing key")
    return keys


_UNKNOWN_KID = "\x00unknown"


class KeyRing:
    """Keys indexed for lookup by ``(kid, alg)``; immutable, so a refresh swaps whole rings."""

    __slots__ = ("_index", "keys", "kids")

    def __init__(self, keys: Sequence[Key]) -> None:
        self.keys = tuple(keys)
        self.kids = frozenset(key.kid for key in self.keys if key.kid is not None)
        self._index: dict[tuple[str | None, str], tuple[Key, ...]] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def candidates(self, kid: str | None, alg: str) -> tuple[Key, ...]:
        """Keys that may verify a token with header ``kid``/``alg``: the keys with that ``kid``
        when the ring has it, else the keys without a ``kid``; a token without ``kid`` may be
        verified by any key. Only keys bound to ``alg`` are returned."""
        if alg not in SUPPORTED_ALGORITHMS:
            return ()
        unknown = kid is not None and kid not in self.kids
        slot = (_UNKNOWN_KID if unknown else kid, alg)  # one slot for every unknown kid
        found = self._index.get(slot)
        if found is None:
            found = tuple(
                key
                for key in self.keys
                if alg in key.algorithms
                and (kid is None or (key.kid is None if unknown else key.kid == kid))
            )
            self._index[slot] = found
        return found

    def same_as(self, other: KeyRing) -> bool:
        return len(self.keys) == len(other.keys) and all(
            a.same_as(b) for a, b in zip(self.keys, other.keys, strict=False)
        )


def _fingerprint(material: bytes | PublicKey) -> bytes:
    if isinstance(material, bytes):
        return material
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return material.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
