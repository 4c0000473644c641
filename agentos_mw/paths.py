"""Route paths and compiled path patterns shared by every middleware.

Pattern grammar (matched against the *route path*: ``scope["path"]`` with ``root_path`` removed):

* a literal segment matches itself exactly (case-sensitive);
* ``*`` or ``{name}`` (also ``{name:int}`` etc.) matches exactly one non-empty segment;
* ``**`` or ``{name:path}`` matches zero or more segments;
* a trailing slash is ignored on both the pattern and the path.

Keys may carry a method: ``"GET /agents/{agent_id}"``; a bare path, or ``"*"`` as the method,
applies to every method. ``HEAD`` falls back to the ``GET`` entry of the same pattern, since
Starlette serves ``HEAD`` with the ``GET`` handler.

When several patterns match, the most specific wins, whatever the insertion order: segments are
compared left to right and a literal beats a one-segment wildcard, which beats ``**``. Between
equally specific paths a method-specific entry beats an any-method entry. Registering the same
pattern shape twice (``/a/*`` then ``/a/{id}``) keeps the later value, which is how user
mappings override defaults.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ._asgi import Scope

V = TypeVar("V")

ANY_METHOD = "*"
_CACHE_MAX = 4096
_CACHEABLE_PATH_LEN = 256
_CACHEABLE_METHOD_LEN = 32
_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?\}$")
_METHOD = re.compile(r"^[A-Z]+$")


def route_path(scope: Scope) -> str:
    """The path inside the app: ``root_path`` removed (only on a segment boundary)."""
    path: str = scope.get("path") or "/"
    root_path: str = scope.get("root_path") or ""
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        if not rest:
            return "/"
        if rest[0] == "/":
            return rest
    return path


def normalize_path(path: str) -> str:
    """Drop one trailing slash (``/agents/`` and ``/agents`` are the same route)."""
    if len(path) > 1 and path.endswith("/"):
        return path[:-1]
    return path


class RouteMatch(Generic[V]):
    """The winning entry for a request: its value, the key it was registered under, and the
    segments captured by ``{name}`` (in ``params``) and by every one-segment wildcard, in order
    (in ``wildcards``). A plain slotted class: built on every uncached lookup, so it stays cheap.
    """

    __slots__ = ("key", "params", "value", "wildcards")

    def __init__(
        self,
        value: V,
        key: str,
        params: Mapping[str, str] | None = None,
        wildcards: tuple[str, ...] = (),
    ) -> None:
        self.value = value
        self.key = key
        self.params: Mapping[str, str] = params if params is not None else {}
        self.wildcards = wildcards

    def __repr__(self) -> str:
        return f"RouteMatch({self.value!r}, {self.key!r}, {self.params!r}, {self.wildcards!r})"


@dataclass
class _Entry(Generic[V]):
    value: V
    key: str
    names: tuple[str | None, ...]


class _Node(Generic[V]):
    __slots__ = ("double", "entries", "literals", "single")

    def __init__(self) -> None:
        self.literals: dict[str, _Node[V]] = {}
        self.single: _Node[V] | None = None
        self.double: _Node[V] | None = None
        self.entries: dict[str, _Entry[V]] = {}


def parse_key(key: str) -> tuple[str, str]:
    """Split ``"METHOD /path"`` into ``(method, path)``; a bare path means any method."""
    if not isinstance(key, str):
        raise TypeError(f"route pattern must be a string, got {type(key).__name__}")
    text = key.strip()
    method, sep, path = text.partition(" ")
    if not sep:
        method, path = ANY_METHOD, text
    method = method.upper()
    path = path.strip()
    if method != ANY_METHOD and not _METHOD.match(method):
        raise ValueError(f"invalid method in route pattern {key!r}")
    if not path.startswith("/"):
        raise ValueError(f"route pattern path must start with '/': {key!r}")
    return method, path


def _segments(path: str) -> list[str]:
    path = normalize_path(path)
    return [] if path == "/" else path[1:].split("/")


class RouteTable(Generic[V]):
    """Patterns compiled once into a segment trie; :meth:`match` finds the most specific entry.

    Lookups are cached (bounded) so a hot route costs one dictionary hit.
    """

    def __init__(self, entries: Mapping[str, V] | Iterable[tuple[str, V]] = ()) -> None:
        self._root: _Node[V] = _Node()
        self._cache: dict[tuple[str, str], RouteMatch[V] | None] = {}
        self._size = 0
        items = entries.items() if isinstance(entries, Mapping) else entries
        for key, value in items:
            self.add(key, value)

    def __len__(self) -> int:
        return self._size

    def add(self, key: str, value: V) -> None:
        """Register ``value`` under ``key``; the same pattern shape replaces the earlier value."""
        method, path = parse_key(key)
        node = self._root
        names: list[str | None] = []
        for segment in _segments(path):
            kind, name = _classify(segment, key)
            if kind == "literal":
                node = node.literals.setdefault(segment, _Node())
            elif kind == "single":
                if node.single is None:
                    node.single = _Node()
                node = node.single
                names.append(name)
            else:
                if node.double is None:
                    node.double = _Node()
                node = node.double
        if method not in node.entries:
            self._size += 1
        node.entries[method] = _Entry(value, key, tuple(names))
        self._cache.clear()

    def match(self, method: str, path: str) -> RouteMatch[V] | None:
        """The most specific entry for ``method`` and route ``path``, or ``None``."""
        cache_key = (method, path)
        try:
            return self._cache[cache_key]
        except KeyError:
            pass
        found = self._search(self._root, _segments(path), 0, [], method)
        result: RouteMatch[V] | None = None
        if found is not None:
            entry, captured = found
            params = {
                name: seg
                for name, seg in zip(entry.names, captured, strict=True)
                if name is not None
            }
            result = RouteMatch(entry.value, entry.key, params, tuple(captured))
        # long paths and methods (h11 accepts any token up to the head limit) are not kept
        if len(path) <= _CACHEABLE_PATH_LEN and len(method) <= _CACHEABLE_METHOD_LEN:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[cache_key] = result
        return result

    def matches(self, path: str, method: str = ANY_METHOD) -> bool:
        """True when some entry matches; handy for exclusion lists."""
        return self.match(method, path) is not None

    def _search(
        self,
        node: _Node[V],
        segments: list[str],
        index: int,
        captured: list[str],
        method: str,
    ) -> tuple[_Entry[V], list[str]] | None:
        if index == len(segments):
            entry = _pick(node.entries, method)
            if entry is not None:
                return entry, list(captured)
        else:
            segment = segments[index]
            child = node.literals.get(segment)
            if child is not None:
                found = self._search(child, segments, index + 1, captured, method)
                if found is not None:
                    return found
            if node.single is not None and segment:
                captured.append(segment)
                found = self._search(node.single, segments, index + 1, captured, method)
                captured.pop()
                if found is not None:
                    return found
        if node.double is not None:
            for end in range(index, len(segments) + 1):
                found = self._search(node.double, segments, end, captured, method)
                if found is not None:
                    return found
        return None


def _pick(entries: dict[str, _Entry[V]], method: str) -> _Entry[V] | None:
    if not entries:
        return None
    entry = entries.get(method)
    if entry is None and method == "HEAD":
        entry = entries.get("GET")
    if entry is None:
        entry = entries.get(ANY_METHOD)
    return entry


def _classify(segment: str, key: str) -> tuple[str, str | None]:
    if segment == "*":
        return "single", None
    if segment == "**":
        return "double", None
    param = _PARAM.match(segment)
    if param:
        return ("double" if param.group(2) == "path" else "single"), param.group(1)
    if "*" in segment or "{" in segment or "}" in segment:
        raise ValueError(
            f"unsupported segment {segment!r} in route pattern {key!r}: "
            "use a whole-segment '*', '**' or '{name}'"
        )
    if not segment:
        raise ValueError(f"empty segment in route pattern {key!r}")
    return "literal", None


class PathSet:
    """A set of path patterns (no values) for exclusions: ``"/health"``, ``"/docs/**"``."""

    def __init__(self, patterns: Iterable[str]) -> None:
        if isinstance(patterns, str):
            raise TypeError("patterns must be a list of strings, not a single string")
        self._table: RouteTable[bool] = RouteTable((p, True) for p in patterns)
        #: ``path in self`` answers by path (one dict lookup per request on known paths).
        self._answers: dict[str, bool] = {}

    def __contains__(self, item: Any) -> bool:
        answer = self._answers.get(item) if type(item) is str else None
        if answer is not None:
            return answer
        if not isinstance(item, str):
            return False
        answer = self._table.matches(item)
        if len(item) <= _CACHEABLE_PATH_LEN:  # bounded like the table's own cache
            if len(self._answers) >= _CACHE_MAX:
                self._answers.clear()
            self._answers[item] = answer
        return answer

    def __len__(self) -> int:
        return len(self._table)

    def matches(self, method: str, path: str) -> bool:
        return self._table.match(method, path) is not None
