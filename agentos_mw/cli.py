"""``agentos-mw``: serve the demo, mint dev tokens, write key pairs, explain a token.

Exit codes: 0 success, 1 the token is invalid (``check-token``), 2 bad arguments or unusable key.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "ES256", "EdDSA")
_TTL = re.compile(r"^(\d+)([smhd]?)$")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class UsageError(Exception):
    """A problem with the command line or its files; printed without a traceback, exit 2."""


def parse_ttl(text: str) -> int:
    match = _TTL.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise UsageError(
            f"invalid --ttl {text!r}: use a positive number with s, m, h or d (e.g. 1h)"
        )
    return int(match.group(1)) * _TTL_UNITS[match.group(2)]


def parse_claim(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise UsageError(f"invalid --claim {text!r}: use name=value")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name, value


def _read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _load_private_key(path: str) -> Any:
    try:
        return serialization.load_pem_private_key(_read_file(path), password=None)
    except (ValueError, TypeError):
        raise UsageError(f"{path} is not an unencrypted PEM private key") from None


def _alg_for_key(key: Any) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise UsageError("unsupported private key type; use RSA, EC P-256 or Ed25519")


def cmd_token(args: argparse.Namespace) -> int:
    if bool(args.key) == bool(args.secret):
        raise UsageError("give exactly one of --key FILE (private key PEM) or --secret S")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": args.sub, "iat": now, "exp": now + parse_ttl(args.ttl)}
    if args.scopes is not None:
        claims["scopes"] = args.scopes.split()
    for item in args.claim:
        name, value = parse_claim(item)
        claims[name] = value
    kid = args.kid
    if args.secret:
        alg = args.alg or "HS256"
        if not alg.startswith("HS"):
            raise UsageError(f"--secret signs with HS256/384/512, not {alg}; use --key for {alg}")
        key: Any = args.secret
    else:
        key = _load_private_key(args.key)
        alg = args.alg or _alg_for_key(key)
        if alg.startswith("HS") or alg != _alg_for_key(key):
            raise UsageError(f"--alg {alg} does not match the key in {args.key}")
        kid = kid or _thumbprint(_public_jwk(key.public_key(), alg))
    headers = {"kid": kid} if kid else None
    print(jwt.encode(claims, key, algorithm=alg, headers=headers))
    return 0


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint: a stable ``kid`` derived from the public key."""
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode())
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def _public_jwk(public: Any, alg: str) -> dict[str, Any]:
    if alg == "RS256":
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
    elif alg == "ES256":
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = jwt.algorithms.OKPAlgorithm.to_jwk(public, as_dict=True)
    return dict(jwk)


def cmd_keys(args: argparse.Namespace) -> int:
    private: Any
    if args.alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif args.alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    public = private.public_key()
    jwk = _public_jwk(public, args.alg)
    jwk.update({"kid": _thumbprint(jwk), "alg": args.alg, "use": "sig"})
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        private_path = out / "private.pem"
        private_path.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        private_path.chmod(0o600)
        (out / "public.pem").write_bytes(
            public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        (out / "jwks.json").write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write to {out}: {exc.strerror}") from None
    print(f"wrote {out / 'private.pem'} (keep secret), {out / 'public.pem'}, {out / 'jwks.json'}")
    print(f"kid: {jwk['kid']}")
    return 0


def _verification_key(args: argparse.Namespace, header: dict[str, Any]) -> Any:
    given = [x for x in (args.key, args.secret, args.jwks) if x]
    if len(given) != 1:
        raise UsageError(
            "give exactly one of --key FILE (public key PEM), --secret S or --jwks FILE"
        )
    if args.secret:
        return args.secret
    if args.key:
        data = _read_file(args.key)
        try:
            return serialization.load_pem_public_key(data)
        except ValueError:
            try:
                return serialization.load_pem_private_key(data, password=None).public_key()
            except (ValueError, TypeError):
                raise UsageError(f"{args.key} is not a PEM public or private key") from None
    try:
        jwks = jwt.PyJWKSet.from_json(_read_file(args.jwks).decode())
    except (jwt.PyJWTError, ValueError, UnicodeDecodeError):
        raise UsageError(f"{args.jwks} is not a usable JWKS file") from None
    kid = header.get("kid")
    for key in jwks.keys:
        if kid is None or key.key_id == kid:
            return key.key
    raise UsageError("no key in the JWKS matches the token's kid")


def _explain_failure(exc: Exception) -> str:
    reasons: list[tuple[type[Exception], str]] = [
        (jwt.ExpiredSignatureError, "exp: the token has expired"),
        (jwt.ImmatureSignatureError, "nbf/iat: the token is not valid yet"),
        (jwt.InvalidAudienceError, "aud: the audience does not match --audience"),
        (jwt.InvalidIssuerError, "iss: the issuer does not match --issuer"),
        (jwt.MissingRequiredClaimError, "a required claim is missing"),
        (jwt.InvalidSignatureError, "signature: the key does not verify this token"),
        (jwt.InvalidAlgorithmError, "alg: the token's algorithm does not fit the key"),
        (jwt.DecodeError, "the token is malformed"),
    ]
    for kind, reason in reasons:
        if isinstance(exc, kind):
            if isinstance(exc, jwt.MissingRequiredClaimError):
                return f"{exc.claim}: required claim is missing"
            return reason
    return "the token is invalid"


def cmd_check_token(args: argparse.Namespace) -> int:
    if len([x for x in (args.key, args.secret, args.jwks) if x]) != 1:
        raise UsageError(
            "give exactly one of --key FILE (public key PEM), --secret S or --jwks FILE"
        )
    token = args.token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        print("INVALID: the token is malformed (not a JWS compact serialization)")
        return 1
    alg = str(header.get("alg"))
    print(f"header: alg={alg} kid={header.get('kid', '-')} typ={header.get('typ', '-')}")
    key = _verification_key(args, header)
    if isinstance(key, str) and len(key.encode()) < 32:
        print("note: the secret is shorter than 32 bytes (RFC 7518 §3.2 asks for at least 32)")
    options = {"require": ["exp"], "verify_aud": bool(args.audience)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg] if alg in ALGORITHMS else [],
                audience=args.audience,
                issuer=args.issuer,
                leeway=args.leeway,
                options=options,  # type: ignore[arg-type]
            )
    except jwt.PyJWTError as exc:
        print(f"INVALID: {_explain_failure(exc)}")
        print("claims below are NOT verified:")
        _print_claims(unverified)
        return 1
    print("VALID: signature and claims verified")
    _print_claims(claims)
    return 0


def _print_claims(claims: dict[str, Any]) -> None:
    scopes = claims.get("scopes", claims.get("scope", []))
    if isinstance(scopes, str):
        scopes = scopes.split()
    print(f"subject: {claims.get('sub', '-')}")
    if isinstance(claims.get("exp"), (int, float)):
        left = int(claims["exp"] - time.time())
        print(
            f"expires: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(claims['exp']))} ({left:+d} s)"
        )
    print(
        f"scopes: {' '.join(map(str, scopes)) if isinstance(scopes, list) and scopes else '(none)'}"
    )
    other = sorted(set(claims) - {"sub", "exp", "scopes", "scope"})
    if other:
        print(f"other claims: {', '.join(other)}")


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise UsageError("the demo needs uvicorn: pip install 'agentos-mw[cli]'") from None
    from .demo import DEMO_USERS, create_demo_app, demo_token, new_secret

    secret = new_secret()
    app = create_demo_app(secret, redis_url=args.redis)
    base = f"http://{args.host}:{args.port}"
    tokens = {user: demo_token(secret, user) for user in DEMO_USERS}
    print(demo_instructions(base, tokens), flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def demo_instructions(base: str, tokens: dict[str, str]) -> str:
    auth = {user: f'-H "Authorization: Bearer {token}"' for user, token in tokens.items()}
    return "\n".join(
        [
            "agentos-mw demo: tokens for this run (ephemeral HS256 key, valid 1 h)",
            "",
            f"  ADMIN={tokens['admin']}",
            f"  READER={tokens['reader']}",
            f"  RUNNER={tokens['runner']}",
            "",
            "Try:",
            f"  curl -i {base}/health                                    # 200, public",
            f"  curl -i {base}/agents                                    # 401, no token",
            f"  curl -i {auth['reader']} {base}/agents                 # 200, all agents",
            f"  curl -i {auth['runner']} {base}/agents                 # 200, only a1",
            f"  curl -i -X POST {auth['reader']} {base}/agents/a1/runs # 403, no run scope",
            f"  curl -N -X POST {auth['runner']} {base}/agents/a1/runs # 200, streamed events",
            f"  curl -i -X POST {auth['runner']} {base}/agents/a2/runs # 403, a1 only",
            f"  for i in 1 2 3 4; do curl -s -o /dev/null -w '%{{http_code}}\\n' -X POST "
            f"{auth['admin']} {base}/agents/a1/runs; done        # 200 200 200 429",
            "",
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentos-mw", description="agentos_mw tools")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="serve a demo agent API behind the full stack")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument(
        "--redis", metavar="URL", help="rate-limit in Redis (e.g. redis://127.0.0.1:6379/0)"
    )
    demo.set_defaults(func=cmd_demo)

    token = sub.add_parser("token", help="mint a development token")
    token.add_argument("--sub", required=True, help="subject (user id)")
    token.add_argument("--scopes", help='space-separated scopes, e.g. "agents:read agents:a1:run"')
    token.add_argument("--ttl", default="1h", help="lifetime: 30s, 15m, 1h, 7d (default 1h)")
    token.add_argument("--key", metavar="FILE", help="private key PEM (RS256, ES256, EdDSA)")
    token.add_argument("--secret", metavar="S", help="shared secret (HS256)")
    token.add_argument(
        "--alg", choices=ALGORITHMS, help="default: from the key, HS256 for --secret"
    )
    token.add_argument("--kid", help="key id to put in the token header")
    token.add_argument(
        "--claim", action="append", default=[], metavar="K=V", help="extra claim (JSON or text)"
    )
    token.set_defaults(func=cmd_token)

    keys = sub.add_parser("keys", help="write a key pair and a JWKS file")
    keys.add_argument("--alg", choices=("RS256", "ES256", "EdDSA"), required=True)
    keys.add_argument("--out", required=True, metavar="DIR")
    keys.set_defaults(func=cmd_keys)

    check = sub.add_parser("check-token", help="verify a token and explain the result")
    check.add_argument("token")
    check.add_argument("--key", metavar="FILE", help="public (or private) key PEM")
    check.add_argument("--secret", metavar="S", help="shared secret for HS tokens")
    check.add_argument("--jwks", metavar="FILE", help="JWKS file; the key is picked by kid")
    check.add_argument("--audience")
    check.add_argument("--issuer")
    check.add_argument("--leeway", type=int, default=10)
    check.set_defaults(func=cmd_check_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"agentos-mw {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
