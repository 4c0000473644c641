"""What a middleware layer costs by construction: BaseHTTPMiddleware vs pure ASGI."""

from __future__ import annotations

from . import harness
from .baselines import NoopBaseHTTP, NoopPure, raw_app, wrap


def run(quick: bool) -> tuple[str, list[str]]:
    app = harness.make_app()
    scope = harness.make_scope("GET", "/agents")
    cases = {
        "raw ASGI app (no Starlette)": (raw_app, scope),
        "bare Starlette app": (app, scope),
        "1 no-op BaseHTTPMiddleware": (wrap(app, NoopBaseHTTP, 1), scope),
        "5 no-op BaseHTTPMiddleware": (wrap(app, NoopBaseHTTP, 5), scope),
        "1 no-op pure-ASGI layer": (wrap(app, NoopPure, 1), scope),
        "10 no-op pure-ASGI layers": (wrap(app, NoopPure, 10), scope),
    }
    rows = harness.compare(
        cases, baseline="bare Starlette app", rounds=9 if quick else 25, batch=100 if quick else 300
    )
    section = harness.table(rows, "Cost of a layer (baseline: bare Starlette app, GET /agents)")
    return section, []
