"""FastAPI behind an identity provider (Auth0 style): keys from a JWKS URL, scopes checked per
route with the ``RequireScopes`` dependency, rate limits shared across workers in Redis.

Configuration, all explicit (the app refuses to start without the first three):

* JWKS_URL        the IdP's key set, e.g. https://YOUR_TENANT.auth0.com/.well-known/jwks.json
* AUTH_ISSUER     the ``iss`` tokens must carry, e.g. https://YOUR_TENANT.auth0.com/
* AUTH_AUDIENCE   the ``aud`` tokens must carry (the API identifier), e.g. https://api.example.com
* AGENTOS_MW_REDIS_URL     default redis://127.0.0.1:6379/0
* AGENTOS_MW_REDIS_PREFIX  key prefix in Redis, default agentos_mw:fastapi_custom:

Scopes come from Auth0's space-separated ``scope`` claim and its ``permissions`` list. Limits:
60 requests/minute per user overall, 5 runs/minute per user on ``POST /agents/{id}/runs``.
When Redis cannot answer, requests are let through (``on_store_error="allow"``) and logged.

Run:  JWKS_URL=... AUTH_ISSUER=... AUTH_AUDIENCE=... uvicorn examples.fastapi_custom:app --port 8000
Try:  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/agents   (needs agents:read)
      curl -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/agents/a1/runs
        (needs agents:run or agents:a1:run; the 6th within a minute gets 429 + Retry-After)

Without an IdP, a local one:
      agentos-mw keys --alg RS256 --out keys && python -m http.server 9000 -d keys &
      export JWKS_URL=http://127.0.0.1:9000/jwks.json AUTH_ISSUER=https://dev.example/ \
        AUTH_AUDIENCE=https://api.example
      TOKEN=$(agentos-mw token --sub alice --key keys/private.pem --claim iss=$AUTH_ISSUER \
        --claim aud=$AUTH_AUDIENCE --claim "scope=agents:read agents:a1:run")
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request

from agentos_mw import JWTMiddleware, RateLimitMiddleware, RedisStore, RequireScopes


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise RuntimeError(f"examples.fastapi_custom needs the {name} environment variable")
    return value


JWKS_URL = _required("JWKS_URL")
ISSUER = _required("AUTH_ISSUER")
AUDIENCE = _required("AUTH_AUDIENCE")
REDIS_URL = os.environ.get("AGENTOS_MW_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_PREFIX = os.environ.get("AGENTOS_MW_REDIS_PREFIX", "agentos_mw:fastapi_custom:")

store = RedisStore(REDIS_URL, prefix=REDIS_PREFIX)
AGENTS = {"a1": "Support", "a2": "Research"}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await store.aclose()


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/me")
async def me(request: Request) -> dict[str, Any]:
    """Any valid token: who am I and what may I do."""
    return {"user": request.state.user_id, "scopes": request.state.scopes}


@app.get("/agents", dependencies=[Depends(RequireScopes("agents:read"))])
async def list_agents() -> list[dict[str, str]]:
    return [{"id": agent_id, "name": name} for agent_id, name in AGENTS.items()]


@app.post(
    "/agents/{agent_id}/runs",
    dependencies=[Depends(RequireScopes("agents:run", resource_id_param="agent_id"))],
)
async def run_agent(agent_id: str, request: Request) -> dict[str, str]:
    return {"agent_id": agent_id, "run_by": request.state.user_id, "status": "queued"}


@app.delete("/agents/{agent_id}", dependencies=[Depends(RequireScopes("agents:delete"))])
async def delete_agent(agent_id: str) -> dict[str, str]:
    return {"deleted": agent_id}


# add_middleware puts each call OUTSIDE the previous one: authentication runs first, so the
# rate limiter can key by the authenticated user.
app.add_middleware(
    RateLimitMiddleware,
    limits=["60/minute"],
    route_limits={"POST /agents/*/runs": "5/minute"},
    key="user",
    store=store,
    exempt=["/health"],
    on_store_error="allow",  # Redis down: serve unlimited rather than fail ("deny" answers 503)
)
app.add_middleware(
    JWTMiddleware,
    jwks_url=JWKS_URL,
    algorithms=["RS256"],
    issuer=ISSUER,
    audience=AUDIENCE,
    scopes_claim=["scope", "permissions"],
    excluded_route_paths=["/health", "/docs", "/openapi.json"],
)
