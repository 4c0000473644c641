"""The compiled route-to-scope decision: which scopes a request needs and whether it has them.

Everything that can be worked out from the configuration is worked out once, in
:class:`RBACPolicy`'s constructor: the route table (a segment trie from :mod:`agentos_mw.paths`,
most specific pattern wins, ``HEAD`` falls back to ``GET``), for every entry the set of granted
scope strings that satisfy each required scope, where the resource id sits in the path, and the
finished allow/deny answers with their error bodies and headers. Per request, :meth:`decide` is
one cached route lookup and a few set membership tests.

Mapping semantics (Agno's, with its holes closed):

* keys are ``"METHOD /path"`` (a bare path means any method); ``*`` and ``{name}`` match one
  segment, ``**`` any number. **A trailing ``*`` also covers everything below it**, as in Agno
  (whose ``fnmatch`` ``*`` crosses ``/``): ``GET /agents/*`` protects ``/agents/a1/runs/r1``
  too. Use ``{name}`` at the end for exactly one segment.
* user mappings replace a default with the same key; otherwise the most specific pattern wins,
  so ``GET /agents/*/secrets`` beats the default ``GET /agents/*`` whatever the order.
* a value lists scopes that are *all* required; ``[]`` means no scope is needed.
* ``resource:action`` is satisfied by ``resource:action``, ``resource:*:action`` and, when the
  matched pattern has a one-segment wildcard right after a literal segment named ``resource``
  (``/agents/*``, ``/sessions/{session_id}``), by ``resource:<that segment>:action``.
* ``GET`` listings of the ``listing_resources`` families (``GET /agents``) let a caller with
  only per-resource scopes through and report the ids it may see (``{"*"}`` means all; possibly
  empty, as in Agno). The endpoint must filter by them (AgentOS's do); ``listing_resources=[]``
  requires the global scope instead.
* the admin scope(s) satisfy everything, unmapped routes included.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from .._asgi import latin1_header
from ..paths import RouteTable, parse_key
from .defaults import AGENTOS_DEFAULT_SCOPE_MAPPINGS, AGENTOS_GAP_SCOPE_MAPPINGS
from .grammar import DEFAULT_ADMIN_SCOPE, WILDCARD, check_scope_token, normalize_scope, parse_scope

Header = tuple[bytes, bytes]

DEFAULT_LISTING_RESOURCES: Final = ("agents", "teams", "workflows")
UNMAPPED_CHOICES: Final = ("allow", "deny")
NOT_AUTHENTICATED: Final = "Not authenticated"
INSUFFICIENT: Final = "Insufficient permissions"
_PARAM = re.compile(r"^\{[A-Za-z_][A-Za-z0-9_]*(?::([A-Za-z_]+))?\}$")
_ALL: Final[frozenset[str]] = frozenset({WILDCARD})


class Decision:
    """The answer for one request. Allowed decisions are shared objects: do not mutate."""

    __slots__ = (
        "accessible_ids",
        "allowed",
        "detail",
        "headers",
        "key",
        "required_scopes",
        "status",
    )

    def __init__(
        self,
        allowed: bool,
        required_scopes: tuple[str, ...] = (),
        *,
        key: str | None = None,
        status: int = 200,
        detail: str = "",
        headers: tuple[Header, ...] = (),
        accessible_ids: frozenset[str] | None = None,
    ) -> None:
        self.allowed = allowed
        self.required_scopes = required_scopes
        self.key = key
        self.status = status
        self.detail = detail
        self.headers = headers
        self.accessible_ids = accessible_ids

    def __repr__(self) -> str:
        return (
            f"Decision(allowed={self.allowed}, status={self.status}, key={self.key!r}, "
            f"required_scopes={self.required_scopes!r}, accessible_ids={self.accessible_ids!r})"
        )


class Requirement:
    """One required scope, compiled: the granted strings that satisfy it outright, and how to
    build the per-resource string from the path (``prefix + id + suffix``)."""

    __slots__ = ("accept", "id_index", "prefix", "resource", "suffix")

    def __init__(
        self,
        scope: str,
        admin_scopes: frozenset[str],
        id_positions: Mapping[str, int] | None = None,
    ) -> None:
        parsed = parse_scope(normalize_scope(scope), admin_scopes)
        self.resource: str | None = parsed.resource
        self.id_index: int | None = None
        self.prefix = self.suffix = ""
        if parsed.kind == "global" and parsed.resource and parsed.action:
            resource, action = parsed.resource, parsed.action
            self.accept = frozenset({f"{resource}:{action}", f"{resource}:{WILDCARD}:{action}"})
            self.prefix, self.suffix = f"{resource}:", f":{action}"
            self.id_index = (id_positions or {}).get(resource)
        elif parsed.kind == "resource" and parsed.resource and parsed.action:
            resource, action = parsed.resource, parsed.action
            self.accept = frozenset(
                {
                    f"{resource}:{parsed.resource_id}:{action}",
                    f"{resource}:{WILDCARD}:{action}",
                    f"{resource}:{action}",
                }
            )
        else:  # the admin scope itself, or an opaque scope: only the identical string
            self.accept = frozenset({scope})

    def satisfied(self, granted: frozenset[str], wildcards: Sequence[str] = ()) -> bool:
        if not self.accept.isdisjoint(granted):
            return True
        index = self.id_index
        return index is not None and self.prefix + wildcards[index] + self.suffix in granted

    def resource_ids(self, granted: frozenset[str]) -> frozenset[str]:
        """Ids of the resources ``granted`` holds this action on one by one."""
        prefix, suffix = self.prefix, self.suffix
        if not prefix:
            return frozenset()
        start, tail = len(prefix), len(suffix)
        return frozenset(
            scope[start:-tail]
            for scope in granted
            if len(scope) > start + tail
            and scope.startswith(prefix)
            and scope.endswith(suffix)
            and scope[start:-tail] != WILDCARD
        )


class _Rule:
    __slots__ = ("allow", "allow_all", "checks", "deny", "key", "listing", "unauthenticated")

    def __init__(
        self,
        key: str | None,
        scopes: tuple[str, ...],
        checks: tuple[Requirement, ...],
        listing: Requirement | None,
        challenge: tuple[Header, ...],
    ) -> None:
        self.key = key
        self.checks = checks
        self.listing = listing
        self.allow = Decision(True, scopes, key=key)
        self.allow_all = Decision(
            True, scopes, key=key, accessible_ids=_ALL if listing is not None else None
        )
        www = f'Bearer error="insufficient_scope", scope="{" ".join(scopes)}"'.encode("ascii")
        self.deny = Decision(
            False,
            scopes,
            key=key,
            status=403,
            detail=f"{INSUFFICIENT}. Required scope(s): {', '.join(scopes)}",
            headers=((b"www-authenticate", www),),
        )
        self.unauthenticated = Decision(
            False, scopes, key=key, status=401, detail=NOT_AUTHENTICATED, headers=challenge
        )


def _segment_kind(segment: str) -> str:
    if segment == "*":
        return "single"
    if segment == "**":
        return "double"
    param = _PARAM.match(segment)
    if param:
        return "double" if param.group(1) == "path" else "single"
    return "literal"


def _pattern_info(key: str) -> tuple[str, list[str], dict[str, int]]:
    """Method, segments, and for each literal segment followed by a one-segment wildcard the
    index of that wildcard among the captured segments (the resource id position)."""
    method, path = parse_key(key)
    path = path.rstrip("/")
    segments = path[1:].split("/") if path else []
    positions: dict[str, int] = {}
    singles = 0
    for index, segment in enumerate(segments):
        kind = _segment_kind(segment)
        if kind == "single":
            previous = segments[index - 1] if index else ""
            if previous and _segment_kind(previous) == "literal":
                positions.setdefault(previous, singles)
            singles += 1
    return method, segments, positions


def _scope_list(value: object, what: str) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{what} must be a list of scope strings, e.g. ['agents:read']")
    return tuple(check_scope_token(item, f"scope in {what}") for item in value)


def _admin_scopes(admin_scope: str | Sequence[str] | None) -> tuple[str, ...]:
    if admin_scope is None:
        return (DEFAULT_ADMIN_SCOPE,)
    if isinstance(admin_scope, str):
        return (check_scope_token(admin_scope, "admin_scope"),)
    scopes = _scope_list(admin_scope, "admin_scope")
    if not scopes:
        raise ValueError("admin_scope must name at least one scope")
    return scopes


class RBACPolicy:
    """Route map + scope rules compiled once; :meth:`decide` answers one request."""

    def __init__(
        self,
        scope_mappings: Mapping[str, Sequence[str]] | None = None,
        *,
        admin_scope: str | Sequence[str] | None = None,
        unmapped: str = "allow",
        default_scopes: Sequence[str] | None = None,
        use_default_mappings: bool = True,
        listing_resources: Iterable[str] = DEFAULT_LISTING_RESOURCES,
        realm: str = "api",
    ) -> None:
        if unmapped not in UNMAPPED_CHOICES:
            raise ValueError(f"unmapped must be 'allow' or 'deny', got {unmapped!r}")
        if scope_mappings is not None and not isinstance(scope_mappings, Mapping):
            raise TypeError("scope_mappings must be a mapping of 'METHOD /path' to scope lists")
        if isinstance(listing_resources, str):
            raise TypeError("listing_resources must be a list of resource names")
        if not isinstance(realm, str) or not realm or '"' in realm or "\\" in realm:
            raise ValueError("realm must be a non-empty string without quotes or backslashes")
        challenge = latin1_header(f'Bearer realm="{realm}"')
        if challenge is None:
            raise ValueError("realm must be Latin-1 text without control characters")
        self.admin_scopes: tuple[str, ...] = _admin_scopes(admin_scope)
        self.unmapped = unmapped
        self._admins = frozenset(self.admin_scopes)
        self._listing = frozenset(listing_resources)
        self._challenge: tuple[Header, ...] = ((b"www-authenticate", challenge),)

        merged: dict[str, Sequence[str]] = {}
        if use_default_mappings:
            merged.update(AGENTOS_DEFAULT_SCOPE_MAPPINGS)
            merged.update(AGENTOS_GAP_SCOPE_MAPPINGS)
        if scope_mappings:
            merged.update(scope_mappings)
        self.mappings: dict[str, tuple[str, ...]] = {}
        self._table: RouteTable[_Rule] = RouteTable()
        for key, value in merged.items():
            scopes = _scope_list(value, f"scope_mappings[{key!r}]")
            self.mappings[key] = scopes
            rule = self._compile(key, scopes)
            self._table.add(key, rule)
            if key.rstrip("/").endswith("/*"):  # Agno's trailing * covers the whole subtree
                self._table.add(key.rstrip("/") + "/**", rule)

        self._unmapped_rule: _Rule | None = None
        if default_scopes:
            scopes = _scope_list(default_scopes, "default_scopes")
            checks = tuple(Requirement(s, self._admins) for s in scopes)
            self._unmapped_rule = _Rule(None, scopes, checks, None, self._challenge)
        elif default_scopes is not None and not isinstance(default_scopes, (list, tuple)):
            raise TypeError("default_scopes must be a list of scope strings")
        elif unmapped == "deny":
            checks = (Requirement(self.admin_scopes[0], self._admins),)
            self._unmapped_rule = _Rule(None, self.admin_scopes, checks, None, self._challenge)
        self._allow_unmapped = Decision(True)

    def _compile(self, key: str, scopes: tuple[str, ...]) -> _Rule:
        method, segments, positions = _pattern_info(key)
        checks = tuple(Requirement(scope, self._admins, positions) for scope in scopes)
        listing: Requirement | None = None
        if (
            checks
            and method == "GET"
            and segments
            and checks[0].resource in self._listing
            and segments[-1] == checks[0].resource
            and checks[0].id_index is None
            and checks[0].prefix
        ):
            listing = checks[0]
        return _Rule(key, scopes, checks, listing, self._challenge)

    def decide(self, method: str, path: str, granted: frozenset[str] | None) -> Decision:
        """The decision for ``method`` on route ``path`` for a caller holding ``granted``
        (:func:`~agentos_mw.rbac.grammar.granted_scopes`), or ``None`` when there is no caller."""
        match = self._table.match(method, path)
        if match is None:
            return self.decide_unmapped(granted)
        rule = match.value
        wildcards = match.wildcards
        if not rule.checks:
            return rule.allow
        if granted is None:
            return rule.unauthenticated
        if not self._admins.isdisjoint(granted):
            return rule.allow_all
        visible: frozenset[str] | None = None
        for check in rule.checks:
            if check.satisfied(granted, wildcards):
                continue
            if check is rule.listing:
                visible = check.resource_ids(granted)
                continue
            return rule.deny
        if visible is None:
            return rule.allow_all
        return Decision(True, rule.allow.required_scopes, key=rule.key, accessible_ids=visible)

    def decide_unmapped(self, granted: frozenset[str] | None) -> Decision:
        """The decision for a route no mapping covers (``default_scopes`` / ``unmapped``)."""
        rule = self._unmapped_rule
        if rule is None:
            return self._allow_unmapped
        if granted is None:
            return rule.unauthenticated
        if not self._admins.isdisjoint(granted):
            return rule.allow_all
        for check in rule.checks:
            if not check.satisfied(granted):
                return rule.deny
        return rule.allow_all

    def required_scopes(self, method: str, path: str) -> tuple[str, ...] | None:
        """The scopes mapped to a route (``()`` = none needed), or ``None`` when unmapped."""
        match = self._table.match(method, path)
        if match is None:
            rule = self._unmapped_rule
            return None if rule is None else rule.allow.required_scopes
        return match.value.allow.required_scopes
