"""Browser sessions: a login endpoint sets an HTTP-only JWT cookie; JWTMiddleware reads it and
refuses cross-site state-changing requests (CSRF) that carry it.

* ``POST /login`` (excluded from authentication) checks the demo credentials (user ``demo``,
  password ``demo-password``) and sets ``access_token``: HttpOnly, SameSite=Lax, Secure when
  served over https, signed with HS256, valid one hour.
* ``GET /me`` reads the identity from the cookie (or from a bearer header: ``token_source="both"``).
* ``POST /notes`` and ``POST /logout`` change state: with the cookie they need a same-origin
  request (``Sec-Fetch-Site: same-origin`` or an ``Origin`` equal to the server's own or listed in
  AGENTOS_MW_TRUSTED_ORIGINS, comma-separated); otherwise 403 "Cross-site request rejected". A
  client sending a bearer header instead of the cookie is not subject to the check.
* ``POST /logout`` clears the cookie.

Run:  export AGENTOS_MW_SECRET=$(python -c "import secrets; print(secrets.token_urlsafe(32))")
      uvicorn examples.jwt_cookies:app --port 8000
Try:  curl -i -c jar -H 'content-type: application/json' \
        -d '{"username": "demo", "password": "demo-password"}' http://127.0.0.1:8000/login
      curl -b jar http://127.0.0.1:8000/me                                            (200)
      curl -b jar -X POST -H 'Origin: http://127.0.0.1:8000' http://127.0.0.1:8000/notes  (201)
      curl -b jar -X POST -H 'Origin: https://evil.example' http://127.0.0.1:8000/notes   (403)
      curl -i -b jar -c jar -X POST -H 'Origin: http://127.0.0.1:8000' \
        http://127.0.0.1:8000/logout                                       (cookie cleared)

Without AGENTOS_MW_SECRET a random key is generated (and a warning logged): logins work, but
they do not survive a restart.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import time

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentos_mw import JWTMiddleware

log = logging.getLogger("examples.jwt_cookies")

SECRET = os.environ.get("AGENTOS_MW_SECRET", "")
if not SECRET:
    SECRET = secrets.token_urlsafe(32)
    log.warning("AGENTOS_MW_SECRET is not set: using a random key for this process only")
TRUSTED_ORIGINS = [
    origin.strip()
    for origin in os.environ.get("AGENTOS_MW_TRUSTED_ORIGINS", "").split(",")
    if origin.strip()
]
COOKIE = "access_token"
TTL = 3600
# A demo account; a real app checks a password hash (argon2, bcrypt) from its user store.
USERS = {"demo": ("demo-password", ["notes:read", "notes:write"])}


async def login(request: Request) -> Response:
    try:
        body = await request.json()
        username, password = body["username"], body["password"]
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"detail": "Expected JSON with username and password"}, 400)
    if not isinstance(username, str) or not isinstance(password, str):
        return JSONResponse({"detail": "Expected JSON with username and password"}, 400)
    expected, scopes = USERS.get(username, ("", []))
    # compare_digest on both paths: no timing hint about which usernames exist
    if not hmac.compare_digest(password.encode(), expected.encode()) or not expected:
        return JSONResponse({"detail": "Invalid credentials"}, 401)
    now = int(time.time())
    token = jwt.encode(
        {"sub": username, "scopes": scopes, "iat": now, "exp": now + TTL}, SECRET, "HS256"
    )
    response = JSONResponse({"user": username, "expires_in": TTL})
    response.set_cookie(
        COOKIE,
        token,
        max_age=TTL,
        path="/",
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
    )
    return response


async def logout(request: Request) -> Response:
    response = JSONResponse({"user": request.state.user_id, "logged_out": True})
    response.delete_cookie(
        COOKIE, path="/", httponly=True, secure=request.url.scheme == "https", samesite="lax"
    )
    return response


async def me(request: Request) -> Response:
    return JSONResponse({"user": request.state.user_id, "scopes": request.state.scopes})


async def add_note(request: Request) -> Response:
    return JSONResponse({"saved_for": request.state.user_id}, 201)


app = Starlette(
    routes=[
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/me", me),
        Route("/notes", add_note, methods=["POST"]),
    ]
)
app.add_middleware(
    JWTMiddleware,
    verification_keys=[SECRET],
    algorithm="HS256",
    token_source="both",  # the cookie for browsers, a bearer header for API clients
    cookie_name=COOKIE,
    excluded_route_paths=["POST /login"],
    csrf_protection=True,  # the default; shown because cookies are what it protects
    trusted_origins=TRUSTED_ORIGINS,
)
