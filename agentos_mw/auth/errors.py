"""Authentication failures as data: a status and a fixed message, never library text."""

from __future__ import annotations

# Fixed messages: the only strings a client ever sees from this package's authentication.
MISSING_HEADER = "Authorization header missing"
MISSING_COOKIE = "Authentication cookie missing"
MISSING_EITHER = "Authorization header or authentication cookie missing"
MALFORMED_HEADER = "Invalid authorization header"
MULTIPLE_TOKENS = "Multiple tokens sent"
INVALID = "Invalid token"
TOO_LARGE = "Token too large"
EXPIRED = "Token has expired"
NOT_YET_VALID = "Token is not yet valid"
BAD_AUDIENCE = "Invalid token audience"
BAD_ISSUER = "Invalid token issuer"
MISSING_CLAIM = "Token is missing a required claim"
REVOKED = "Token has been revoked"
CROSS_SITE = "Cross-site request rejected"
KEYS_UNAVAILABLE = "Token verification keys unavailable"
REVOCATION_UNAVAILABLE = "Token revocation check unavailable"


class AuthError(Exception):
    """A rejection: ``status`` and a fixed ``detail``; ``error`` is the RFC 6750 error code
    (``invalid_token``, ``invalid_request``) or ``None`` when no token was involved."""

    __slots__ = ("detail", "error", "status")

    def __init__(self, status: int, detail: str, error: str | None = "invalid_token") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.error = error


def invalid(detail: str = INVALID) -> AuthError:
    return AuthError(401, detail, "invalid_token")


def bad_request(detail: str) -> AuthError:
    return AuthError(400, detail, "invalid_request")
