"""The route template of a request (``/agents/{agent_id}``), read after the app has routed it.

Starlette's router writes the matched route object into the scope it was given
(``scope["route"] = route``, then ``scope.update(child_scope)``); FastAPI does the same with its
``APIRoute``. Middleware outside the app shares that scope dict, so once the app has returned (or
sent its response) ``scope["route"].path_format`` is the template. A ``Mount`` adds its matched
prefix to ``scope["root_path"]`` and hands the *same* scope to the sub-app, so for mounted routes
the prefix is rebuilt from the mounts' own templates (never from the concrete root path, which
carries parameter values and would make labels unbounded).

Unmatched requests (404, slash redirects, a middleware that copied the scope) have no route: the
caller maps them to one fixed label, or to a pattern from a user-supplied list for bare ASGI apps.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._asgi import Scope
from ..paths import RouteTable, route_path

_MOUNT_CACHE_MAX = 1024
_mount_prefixes: dict[tuple[int, str], tuple[Any, str | None]] = {}
_endpoint_routes: dict[tuple[int, int], tuple[Any, Any, tuple[tuple[Any, str], ...]]] = {}


def _mount_template(routes: Iterable[Any], extra: str) -> str | None:
    """Template of the mounts that consumed ``extra`` (the root_path they added), or None."""
    if not extra:
        return ""
    for route in routes:
        regex = getattr(route, "path_regex", None)
        fmt = getattr(route, "path_format", None)
        sub_routes = getattr(route, "routes", None)
        if regex is None or not isinstance(fmt, str) or not fmt.endswith("/{path}"):
            continue
        match = regex.match(extra + "/")
        if match is None or "path" not in match.groupdict():
            continue
        remaining = "/" + match.group("path")
        remaining = remaining.rstrip("/")
        own = fmt[: -len("/{path}")]
        if not remaining:
            return own
        if sub_routes:
            inner = _mount_template(sub_routes, remaining)
            if inner is not None:
                return own + inner
    return None


def _mount_prefix(scope: Scope, extra: str) -> str | None:
    """The template of the mounts that added ``extra`` to the root path (cached, bounded)."""
    router = scope.get("router")
    key = (id(router), extra)
    cached = _mount_prefixes.get(key)
    if cached is not None and cached[0] is router:
        return cached[1]
    prefix = _mount_template(getattr(router, "routes", None) or (), extra)
    if len(_mount_prefixes) >= _MOUNT_CACHE_MAX:
        _mount_prefixes.clear()
    _mount_prefixes[key] = (router, prefix)
    return prefix


def _by_endpoint(scope: Scope, endpoint: Any) -> str | None:
    """FastAPI's router records ``scope["route"]`` for its own ``APIRoute`` only; its plain
    Starlette routes (``/docs``, ``/openapi.json``, ``add_route``) leave just the endpoint."""
    router = scope.get("router")
    key = (id(router), id(endpoint))
    cached = _endpoint_routes.get(key)
    if cached is None or cached[0] is not router or cached[1] is not endpoint:
        candidates = tuple(
            (route.path_regex, route.path_format)
            for route in getattr(router, "routes", None) or ()
            if getattr(route, "endpoint", None) is endpoint
            and isinstance(getattr(route, "path_format", None), str)
            and getattr(route, "path_regex", None) is not None
        )
        if len(_endpoint_routes) >= _MOUNT_CACHE_MAX:
            _endpoint_routes.clear()
        cached = _endpoint_routes[key] = (router, endpoint, candidates)
    candidates = cached[2]
    if len(candidates) == 1:
        return candidates[0][1]
    path = route_path(scope)
    for regex, fmt in candidates:
        if regex.match(path):
            return fmt
    return None


def route_template(scope: Scope, root_path: str) -> str | None:
    """The template of the route the app matched, or None when it matched none.

    ``root_path`` is the scope's root path as it was *before* the app ran (mounts extend it).
    """
    route = scope.get("route")
    final_root: str = scope.get("root_path") or ""
    if route is not None and final_root == root_path:  # the common case: no mount on the way
        fmt = getattr(route, "path_format", None)
        return fmt if isinstance(fmt, str) else None
    extra = final_root[len(root_path) :] if final_root.startswith(root_path) else ""
    if route is None:
        endpoint = scope.get("endpoint")
        if endpoint is None or scope.get("router") is None:
            return None
        if extra:  # a mounted plain ASGI app under FastAPI's router
            prefix = _mount_prefix(scope, extra)
            return None if prefix is None else prefix + "/{path}"
        return _by_endpoint(scope, endpoint)
    fmt = getattr(route, "path_format", None)
    if not isinstance(fmt, str):
        return None
    if not extra:
        return fmt
    prefix = _mount_prefix(scope, extra)
    if prefix is None:
        return fmt  # unknown mount layout: the route's own template is still bounded
    if fmt.endswith("/{path}") and getattr(route, "routes", None) is not None:
        # The final route is itself a mount (static files, a plain ASGI sub-app): the prefix
        # already contains it.
        return prefix + "/{path}"
    return prefix + fmt


class RouteLabeler:
    """Callable ``(scope, root_path) -> str``: the route template, a user pattern for apps that
    do not record routes, or ``unmatched``."""

    def __init__(self, routes: Iterable[str] = (), unmatched: str = "<unmatched>") -> None:
        if isinstance(routes, str):
            raise TypeError("routes must be a list of path patterns, not a single string")
        if not isinstance(unmatched, str) or not unmatched:
            raise ValueError("unmatched label must be a non-empty string")
        patterns = list(routes)
        self._table: RouteTable[str] | None = (
            RouteTable((p, p.partition(" ")[2] or p) for p in patterns) if patterns else None
        )
        self.unmatched = unmatched

    @property
    def has_patterns(self) -> bool:
        """False when :meth:`lookup` is exactly :func:`route_template` (no ``routes`` given):
        callers on the hot path then call that directly."""
        return self._table is not None

    def lookup(self, scope: Scope, root_path: str) -> str | None:
        """The template, or None for an unmatched request."""
        template = route_template(scope, root_path)
        if template is None and self._table is not None:
            found = self._table.match(scope.get("method") or "*", route_path(scope))
            if found is not None:
                return found.value
        return template

    def __call__(self, scope: Scope, root_path: str) -> str:
        template = self.lookup(scope, root_path)
        return self.unmatched if template is None else template
