"""Scope-based authorization (RBAC) with Agno AgentOS's scope grammar and default route map."""

from __future__ import annotations

from .defaults import (
    AGENTOS_COMPANY_SCOPE_MAPPINGS,
    AGENTOS_DEFAULT_SCOPE_MAPPINGS,
    AGENTOS_GAP_SCOPE_MAPPINGS,
)
from .grammar import (
    DEFAULT_ADMIN_SCOPE,
    LEGACY_RESOURCE_ALIASES,
    ParsedScope,
    granted_scopes,
    parse_scope,
    scopes_from_claim,
)
from .helpers import RequireScopes, accessible_ids, has_scope
from .middleware import RBACMiddleware, caller_scopes
from .policy import Decision, RBACPolicy

__all__ = [
    "AGENTOS_COMPANY_SCOPE_MAPPINGS",
    "AGENTOS_DEFAULT_SCOPE_MAPPINGS",
    "AGENTOS_GAP_SCOPE_MAPPINGS",
    "DEFAULT_ADMIN_SCOPE",
    "LEGACY_RESOURCE_ALIASES",
    "Decision",
    "ParsedScope",
    "RBACMiddleware",
    "RBACPolicy",
    "RequireScopes",
    "accessible_ids",
    "caller_scopes",
    "granted_scopes",
    "has_scope",
    "parse_scope",
    "scopes_from_claim",
]
