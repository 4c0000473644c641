"""Scope grammar: what a scope string means and how a token's scopes become a set.

Agno's grammar, kept as is:

* the admin scope (default ``agent_os:admin``, configurable; several may be configured) grants
  everything;
* ``resource:action`` grants ``action`` on every resource of that kind (``agents:read``);
* ``resource:<id>:action`` grants ``action`` on one resource (``agents:web-agent:run``);
* ``resource:*:action`` grants ``action`` on every resource of that kind, like the global form;
* the legacy resource name ``system`` is an alias of ``config`` (``system:read`` == ``config:read``).

Matching is exact and case-sensitive: a granted scope either equals one of the strings that
satisfy a requirement or it does not; there is no substring or prefix matching. Anything else
(one part, four parts, empty parts) is an opaque scope that only satisfies an identical requirement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final, NamedTuple

DEFAULT_ADMIN_SCOPE: Final = "agent_os:admin"
WILDCARD: Final = "*"
LEGACY_RESOURCE_ALIASES: Final = {"system": "config"}

#: RFC 6750 §3 scope-token characters: printable ASCII except space, ``"`` and ``\``.
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
_CACHE_MAX = 1024
_CACHEABLE_SCOPES = 64
_granted_cache: dict[Any, frozenset[str]] = {}
_EMPTY: Final[frozenset[str]] = frozenset()


class ParsedScope(NamedTuple):
    """A scope split into its parts; ``kind`` is ``admin``, ``global``, ``resource`` or ``opaque``."""

    raw: str
    kind: str
    resource: str | None = None
    resource_id: str | None = None
    action: str | None = None


def parse_scope(text: str, admin_scopes: Iterable[str] = (DEFAULT_ADMIN_SCOPE,)) -> ParsedScope:
    """Split ``text`` per the grammar above (legacy resource names are mapped to current ones)."""
    if text in admin_scopes:
        return ParsedScope(text, "admin")
    parts = text.split(":")
    if len(parts) == 2 and all(parts):
        return ParsedScope(text, "global", _alias(parts[0]), None, parts[1])
    if len(parts) == 3 and all(parts):
        return ParsedScope(text, "resource", _alias(parts[0]), parts[1], parts[2])
    return ParsedScope(text, "opaque")


def _alias(resource: str) -> str:
    return LEGACY_RESOURCE_ALIASES.get(resource, resource)


def normalize_scope(text: str) -> str:
    """``text`` with a legacy resource name replaced (``system:read`` -> ``config:read``)."""
    head, sep, rest = text.partition(":")
    if sep and head in LEGACY_RESOURCE_ALIASES:
        return f"{LEGACY_RESOURCE_ALIASES[head]}:{rest}"
    return text


def scopes_from_claim(value: object) -> tuple[str, ...]:
    """A token's scopes from a claim value: a list of strings, or one space-separated string
    (OAuth 2.0 ``scope``). A value of any other type, and non-string items, give no scopes."""
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(item for item in value if isinstance(item, str) and item)
    return ()


def granted_scopes(value: object) -> frozenset[str]:
    """The set a request's scopes are checked against: :func:`scopes_from_claim`, plus the
    current name of every legacy scope. Cached (bounded) per distinct scope list, since the
    same few lists arrive again and again."""
    key: Any
    if isinstance(value, list):
        if len(value) > _CACHEABLE_SCOPES:
            return _build(value)
        try:
            key = tuple(value)
            return _granted_cache[key]
        except (KeyError, TypeError):
            pass
    elif isinstance(value, str):
        if len(value) > 4096:
            return _build(value)
        key = value
        cached = _granted_cache.get(key)
        if cached is not None:
            return cached
    else:
        return _build(value)
    result = _build(value)
    try:
        if len(_granted_cache) >= _CACHE_MAX:
            _granted_cache.clear()
        _granted_cache[key] = result
    except TypeError:  # an unhashable item in the list: not cacheable, result still right
        pass
    return result


def _build(value: object) -> frozenset[str]:
    scopes = scopes_from_claim(value)
    if not scopes:
        return _EMPTY
    result = set(scopes)
    for scope in scopes:
        normalized = normalize_scope(scope)
        if normalized is not scope:
            result.add(normalized)
    return frozenset(result)


def check_scope_token(text: object, what: str) -> str:
    """Validate a configured scope (a mapping value, an admin or default scope) at start-up:
    it is named in ``WWW-Authenticate``, so it must be an RFC 6750 scope token."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a string, got {type(text).__name__}")
    if not _SCOPE_TOKEN.match(text):
        raise ValueError(
            f"{what} {text!r} is not a valid scope: use printable ASCII without spaces, "
            "quotes or backslashes"
        )
    return text
