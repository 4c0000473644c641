"""JWT authentication: :class:`JWTMiddleware` and its token-location enum :class:`TokenSource`."""

from .claims import JWTUser
from .middleware import JWTMiddleware
from .tokens import TokenSource

__all__ = ["JWTMiddleware", "JWTUser", "TokenSource"]
