"""JWT authentication cost: agentos_mw's JWTMiddleware (cached and cold) against a bare
``jwt.decode`` layer and Agno's own JWTMiddleware, on the same Starlette app and token."""

from __future__ import annotations

import time
import warnings
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from agentos_mw.auth import JWTMiddleware

from . import harness

SECRET = "bench-secret-" + "x" * 40
ADMIN = "agent_os:admin"


class BareDecode:
    """The floor for a cold check: one ``jwt.decode`` in a pure-ASGI layer, nothing else."""

    def __init__(self, app: Any, key: Any, algorithm: str) -> None:
        self.app = app
        self.key = key
        self.algorithms = [algorithm]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                jwt.decode(value[7:], self.key, algorithms=self.algorithms)
        await self.app(scope, receive, send)


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "user-1", "iat": now, "exp": now + 3600, "scopes": [ADMIN, "agents:read"]}


def _scope(token: str) -> dict[str, Any]:
    return harness.make_scope("GET", "/agents", [(b"authorization", f"Bearer {token}".encode())])


def _ours(**options: Any) -> Any:
    app = harness.make_app()
    app.add_middleware(JWTMiddleware, **options)
    return app


def _agno(**options: Any) -> Any | None:
    try:
        from agno.os.middleware import JWTMiddleware as AgnoJWTMiddleware
    except Exception:  # agno not installed: the comparison is skipped
        return None
    app = harness.make_app()
    app.add_middleware(AgnoJWTMiddleware, **options)
    return app


def _asymmetric_cases() -> dict[str, tuple[Any, Any, str]]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    return {
        "RS256": (rsa_key, rsa_key.public_key(), "RS256"),
        "ES256": (ec_key, ec_key.public_key(), "ES256"),
        "EdDSA": (ed_key, ed_key.public_key(), "EdDSA"),
    }


def run(quick: bool) -> tuple[str, list[str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Agno's deprecation chatter, not ours
        return _run(quick)


def _run(quick: bool) -> tuple[str, list[str]]:
    token = jwt.encode(_claims(), SECRET, algorithm="HS256")
    scope = _scope(token)
    rounds, batch = (9, 100) if quick else (25, 300)
    base = harness.make_app()
    cases: dict[str, tuple[Any, Any]] = {
        "bare Starlette app": (base, scope),
        "bare jwt.decode layer (HS256)": (BareDecode(harness.make_app(), SECRET, "HS256"), scope),
        "agentos_mw JWT, cached token": (_ours(verification_keys=[SECRET]), scope),
        "agentos_mw JWT, cold (cache_size=0)": (
            _ours(verification_keys=[SECRET], cache_size=0),
            scope,
        ),
    }
    agno = _agno(verification_keys=[SECRET], algorithm="HS256")
    if agno is not None:
        cases["Agno JWTMiddleware (HS256)"] = (agno, scope)
    if not quick:
        agno_rbac = _agno(verification_keys=[SECRET], algorithm="HS256", authorization=True)
        if agno_rbac is not None:
            cases["Agno JWTMiddleware (HS256, authorization=True)"] = (agno_rbac, scope)
    rows = harness.compare(cases, baseline="bare Starlette app", rounds=rounds, batch=batch)
    sections = [
        harness.table(rows, "JWT authentication, HS256, GET /agents (baseline: bare Starlette app)")
    ]

    failures: list[str] = []
    cached = rows["agentos_mw JWT, cached token"]
    cold = rows["agentos_mw JWT, cold (cache_size=0)"]
    decode = rows["bare jwt.decode layer (HS256)"]
    notes = [
        f"cached adds {cached.added_us:.1f} µs (goal ≤ 3 µs)",
        f"cold adds {cold.ratio_to(decode):.2f}× a bare jwt.decode layer (goal ≤ 1.2×)",
    ]
    agno_row = rows.get("Agno JWTMiddleware (HS256)")
    if agno_row is not None:
        ratio = agno_row.added_us / cached.added_us if cached.added_us > 0 else float("inf")
        notes.append(
            f"Agno's JWTMiddleware adds {ratio:.0f}× more than the cached path (goal ≥ 20×)"
        )
        if cached.added_us * 20 > agno_row.added_us:
            failures.append(
                f"bench_jwt: cached JWT adds {cached.added_us:.1f} µs, more than 1/20 of Agno's "
                f"{agno_row.added_us:.1f} µs"
            )
    if not quick:
        if cached.added_us > 3.0:
            failures.append(f"bench_jwt: cached JWT adds {cached.added_us:.1f} µs (goal ≤ 3 µs)")
        if cold.ratio_to(decode) > 1.2:
            failures.append(
                f"bench_jwt: cold JWT adds {cold.ratio_to(decode):.2f}× a bare jwt.decode (goal ≤ 1.2×)"
            )
        sections.append(_asymmetric(rounds, batch, notes))
    sections.append(
        "Measured in-process with benchmarks.harness (interleaved rounds, one run): "
        + "; ".join(notes)
        + "."
    )
    return "\n\n".join(sections), failures


def _asymmetric(rounds: int, batch: int, notes: list[str]) -> str:
    cases: dict[str, tuple[Any, Any]] = {"bare Starlette app": (harness.make_app(), _scope(""))}
    for name, (private, public, alg) in _asymmetric_cases().items():
        token = jwt.encode(_claims(), private, algorithm=alg)
        scope = _scope(token)
        cases[f"bare jwt.decode layer ({name})"] = (
            BareDecode(harness.make_app(), public, alg),
            scope,
        )
        cases[f"agentos_mw JWT cold ({name})"] = (
            _ours(verification_keys=[public], cache_size=0),
            scope,
        )
        cases[f"agentos_mw JWT cached ({name})"] = (_ours(verification_keys=[public]), scope)
    rows = harness.compare(cases, baseline="bare Starlette app", rounds=rounds, batch=batch // 3)
    for name in ("RS256", "ES256", "EdDSA"):
        ratio = rows[f"agentos_mw JWT cold ({name})"].ratio_to(
            rows[f"bare jwt.decode layer ({name})"]
        )
        notes.append(f"{name} cold = {ratio:.2f}× bare jwt.decode")
    return harness.table(
        rows, "Asymmetric algorithms, cold and cached (baseline: bare Starlette app)"
    )
