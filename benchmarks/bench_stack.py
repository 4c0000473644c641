"""The complete ``secure_stack()`` against one BaseHTTPMiddleware layer and Agno's JWTMiddleware."""

from __future__ import annotations

from . import apps, harness
from .baselines import NoopBaseHTTP, wrap


def run(quick: bool) -> tuple[str, list[str]]:
    headers = [(b"authorization", f"Bearer {apps.BENCH_TOKEN}".encode())]
    scope = harness.make_scope("GET", "/agents", headers)
    cases = {
        "bare Starlette app": (apps.bare(), scope),
        "secure_stack() complete": (apps.stack(), scope),
        "1 no-op BaseHTTPMiddleware": (wrap(apps.bare(), NoopBaseHTTP, 1), scope),
        "Agno JWTMiddleware alone (HS256)": (apps.agno_jwt(), scope),
        "same features as BaseHTTPMiddleware recipes + Agno JWT (authorization=True)": (
            apps.seed_stack(),
            scope,
        ),
    }
    layers = ("security_headers", "request_id", "access_log", "metrics", "auth", "rate_limit")
    for layer in layers:
        cases[f"layer alone: {layer}"] = (apps.stack_layer(layer), scope)
    rows = harness.compare(
        cases, baseline="bare Starlette app", rounds=9 if quick else 25, batch=100 if quick else 300
    )
    ours = rows["secure_stack() complete"]
    noop = rows["1 no-op BaseHTTPMiddleware"]
    agno = rows["Agno JWTMiddleware alone (HS256)"]
    seed = rows["same features as BaseHTTPMiddleware recipes + Agno JWT (authorization=True)"]
    parts = sum(rows[f"layer alone: {layer}"].added_us for layer in layers)
    note = (
        "The stack: security headers, request id, access log (formatted, not written), metrics, "
        "JWT (HS256, cached token) + RBAC over the AgentOS default map, memory rate limit.\n\n"
        f"secure_stack() adds {ours.added_us:.1f} µs: {ours.ratio_to(noop):.2f}× one no-op "
        f"BaseHTTPMiddleware layer (goal ≤ 1/6 = 0.17), {ours.ratio_to(agno):.3f}× Agno's "
        f"JWTMiddleware alone (goal ≤ 1/15 = 0.067), {seed.added_us / max(ours.added_us, 0.01):.0f}× "
        "less than the same features as BaseHTTPMiddleware recipes.\n\n"
        f"The six layers measured alone add {parts:.1f} µs together; stacked they add "
        f"{ours.added_us:.1f} µs ({ours.added_us / max(parts, 0.01):.2f}×). The instructions "
        "executed per request do add up (valgrind); each one costs more when the request path "
        "is long and varied (most likely CPU caches and branch prediction; no hardware counters "
        "here to say which), so every layer costs more "
        "stacked than alone."
    )
    section = (
        harness.table(rows, "Complete stack, GET /agents with a valid admin token") + "\n\n" + note
    )
    failures = []
    if ours.added_us > noop.added_us:
        failures.append(
            f"secure_stack() adds {ours.added_us:.1f} µs, more than one no-op BaseHTTPMiddleware "
            f"({noop.added_us:.1f} µs)"
        )
    return section, failures
