"""ASGI type aliases for writing middleware alongside agentos_mw's (public re-export)."""

from ._asgi import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send"]
