"""An Agno model that refuses to be called: AgentOS needs one to build its agents, and the
interop tests make no model calls (no provider SDK, no network). Import it after
``pytest.importorskip("agno")``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agno.models.base import Model


@dataclass
class OfflineModel(Model):
    id: str = "offline"
    name: str = "offline"
    provider: str = "offline"

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no model calls in interop tests")

    invoke = ainvoke = invoke_stream = ainvoke_stream = _refuse
    _parse_provider_response = _parse_provider_response_delta = _refuse
