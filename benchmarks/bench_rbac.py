"""RBAC cost: the route-to-scope decision over the full AgentOS default map, agentos_mw's compiled
policy against Agno's ``get_required_scopes_for_route`` + ``has_required_scopes``, and the
middleware in-process against Agno's JWTMiddleware(authorization=True)."""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import jwt

from agentos_mw.rbac import RBACMiddleware, RBACPolicy, granted_scopes

from . import harness

SECRET = "bench-secret-" + "x" * 40

# (label, method, path, scopes): the first entry of the map, the last one, a per-resource run,
# and a route the map does not have (Agno scans every pattern before giving up).
ROUTES = [
    ("early: GET /config", "GET", "/config", ["config:read"]),
    (
        "late: POST /components/c1/configs/v1/set-current",
        "POST",
        "/components/c1/configs/v1/set-current",
        ["components:write"],
    ),
    ("per-resource: POST /agents/a1/runs", "POST", "/agents/a1/runs", ["agents:a1:run"]),
    ("unmapped: GET /custom/report", "GET", "/custom/report", ["agents:read"]),
]
GATED = ("early", "late", "unmapped")


def _agno_decider() -> Callable[[str, str, list[str]], bool] | None:
    try:
        from agno.os.scopes import (
            get_default_scope_mappings,
            get_required_scopes_for_route,
            get_resource_context_from_path,
            has_required_scopes,
        )
    except Exception:
        return None
    mappings = get_default_scope_mappings()

    def decide(method: str, path: str, scopes: list[str]) -> bool:
        required = get_required_scopes_for_route(mappings, method, path)
        if not required:
            return True
        resource_type, resource_id = get_resource_context_from_path(path)
        return has_required_scopes(
            scopes, required, resource_type=resource_type, resource_id=resource_id
        )

    return decide


def _per_call_ns(fn: Callable[[], object], loops: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(loops):
        fn()
    return (time.perf_counter_ns() - start) / loops


def _function_level(quick: bool) -> tuple[list[tuple[str, float, float | None]], float]:
    policy = RBACPolicy()
    agno = _agno_decider()
    rounds, loops = (7, 2000) if quick else (21, 10000)
    rows: list[tuple[str, float, float | None]] = []
    for label, method, path, scopes in ROUTES:

        def ours(m: str = method, p: str = path, s: list[str] = scopes) -> bool:
            return policy.decide(m, p, granted_scopes(s)).allowed

        theirs = None if agno is None else (lambda m=method, p=path, s=scopes: agno(m, p, s))
        if agno is not None:
            assert ours() == theirs()  # type: ignore[misc]
        samples_ours: list[float] = []
        samples_agno: list[float] = []
        for _ in range(rounds):  # interleaved, so noise hits both alike
            samples_ours.append(_per_call_ns(ours, loops))
            if theirs is not None:
                samples_agno.append(_per_call_ns(theirs, max(loops // 10, 200)))
        rows.append(
            (
                label,
                statistics.median(samples_ours) / 1000,
                statistics.median(samples_agno) / 1000 if samples_agno else None,
            )
        )
    # uncached: a different agent id every call, so the route cache misses and the trie is walked
    granted = granted_scopes(["agents:*:run"])
    per_round = []
    for round_ in range(7):
        ids = [f"/agents/agent-{round_}-{i}/runs/r{i}/cancel" for i in range(5000)]
        start = time.perf_counter_ns()
        for path in ids:
            policy.decide("POST", path, granted)
        per_round.append((time.perf_counter_ns() - start) / len(ids) / 1000)
    return rows, statistics.median(per_round)


def _token(scopes: list[str]) -> bytes:
    claims = {"sub": "u1", "scopes": scopes, "exp": int(time.time()) + 3600}
    return b"Bearer " + jwt.encode(claims, SECRET, algorithm="HS256").encode()


class _Identity:
    """A stand-in authentication layer: sets the state JWTMiddleware would set."""

    def __init__(self, app: Any, scopes: list[str]) -> None:
        self.app = app
        self.scopes = scopes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        scope["state"] = {"authenticated": True, "scopes": self.scopes, "user_id": "u1"}
        await self.app(scope, receive, send)


def _middleware_level(quick: bool) -> str:
    from agentos_mw.auth import JWTMiddleware

    try:
        from agno.os.middleware import JWTMiddleware as AgnoJWT
    except Exception:
        AgnoJWT = None
    rounds, batch = (7, 100) if quick else (21, 300)
    sections = []
    for label, method, path, scopes in (ROUTES[0], ROUTES[1], ROUTES[3]):
        headers = [(b"authorization", _token(scopes))]
        scope = harness.make_scope(method, path, headers)
        base = harness.make_app()
        ours_jwt = harness.make_app()
        ours_jwt.add_middleware(
            JWTMiddleware, verification_keys=[SECRET], algorithm="HS256", authorization=False
        )
        ours_both = harness.make_app()
        ours_both.add_middleware(
            JWTMiddleware, verification_keys=[SECRET], algorithm="HS256", authorization=True
        )
        cases: dict[str, tuple[Any, Any]] = {
            "bare Starlette app": (base, scope),
            "identity stub + RBACMiddleware": (
                _Identity(RBACMiddleware(harness.make_app()), scopes),
                scope,
            ),
            "agentos_mw JWT (no RBAC)": (ours_jwt, scope),
            "agentos_mw JWT + RBAC": (ours_both, scope),
        }
        if AgnoJWT is not None:
            agno_app = harness.make_app()
            agno_app.add_middleware(
                AgnoJWT, verification_keys=[SECRET], algorithm="HS256", authorization=True
            )
            cases["Agno JWTMiddleware(authorization=True)"] = (agno_app, scope)
        rows = harness.compare(cases, baseline="bare Starlette app", rounds=rounds, batch=batch)
        sections.append(harness.table(rows, f"Middleware in-process, {label}"))
    return "\n\n".join(sections)


def run(quick: bool) -> tuple[str, list[str]]:
    warnings.simplefilter("ignore")
    rows, uncached = _function_level(quick)
    failures: list[str] = []
    lines = [
        "### RBAC decision, function level (full AgentOS default map, µs per call)",
        "",
        "| route | agentos_mw `RBACPolicy.decide` | Agno `get_required_scopes_for_route` + `has_required_scopes` | speed-up |",
        "|---|---:|---:|---:|",
    ]
    for label, ours_us, agno_us in rows:
        ratio = agno_us / ours_us if agno_us else float("nan")
        agno_text = f"{agno_us:.2f}" if agno_us is not None else "n/a"
        lines.append(f"| {label} | {ours_us:.2f} | {agno_text} | {ratio:.0f}× |")
        kind = label.split(":", 1)[0]
        if kind in GATED and ours_us > 2.0:
            failures.append(f"rbac: decision for {label} took {ours_us:.2f} µs (> 2 µs)")
        if kind in ("late", "unmapped") and agno_us is not None and ratio < 10:
            failures.append(f"rbac: only {ratio:.1f}× faster than Agno on {label} (< 10×)")
    lines += [
        "",
        f"Uncached lookup (a new agent id every call, route cache missing): {uncached:.2f} µs per decision.",
        "",
        "Measured: a tight `time.perf_counter_ns` loop per route, rounds interleaved between the "
        "two implementations; scopes are parsed per call (agentos_mw through its bounded cache).",
    ]
    section = "\n".join(lines) + "\n\n" + _middleware_level(quick)
    return section, failures
