"""Agno's AgentOS quick start, with agentos_mw's JWTMiddleware in place of Agno's, plus RBAC.

The only change from Agno's JWT example is the import line; ``unmapped="deny"`` is an optional
hardening (a route missing from the scope map then needs the admin scope instead of none).

Needs: pip install 'agentos-mw[agno]' openai   (running an agent also needs OPENAI_API_KEY;
starting the server and listing agents do not: the model is only called by a run)

Run:  export AGENTOS_MW_SECRET=$(python -c "import secrets; print(secrets.token_urlsafe(32))")
      uvicorn examples.agent_os:app --port 8000
Token: TOKEN=$(agentos-mw token --sub alice --scopes "agents:support:read agents:support:run" \
        --secret "$AGENTOS_MW_SECRET")
Try:  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/agents    (lists only support)
      curl -i -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/agents/research   (403)
      curl -H "Authorization: Bearer $TOKEN" -F message=Hello -F stream=false \
        http://127.0.0.1:8000/agents/support/runs                  (needs OPENAI_API_KEY)

Without AGENTOS_MW_SECRET a random key is generated and logged as a warning: the server then
starts, but no token minted elsewhere verifies.
"""

from __future__ import annotations

import logging
import os
import secrets

from agno.agent import Agent
from agno.db.in_memory import InMemoryDb
from agno.models.openai import OpenAIChat
from agno.os import AgentOS

# from agno.os.middleware import JWTMiddleware   <- Agno's; the line below replaces it
from agentos_mw import JWTMiddleware

log = logging.getLogger("examples.agent_os")

SECRET = os.environ.get("AGENTOS_MW_SECRET", "")
if not SECRET:
    SECRET = secrets.token_urlsafe(32)
    log.warning("AGENTOS_MW_SECRET is not set: using a random key; tokens minted elsewhere fail")

# Constructing the model makes no call and needs no API key; a run does.
support = Agent(
    id="support",
    name="Support",
    model=OpenAIChat(id="gpt-4o-mini"),
    instructions="You answer customer questions briefly.",
    markdown=True,
)
research = Agent(
    id="research",
    name="Research",
    model=OpenAIChat(id="gpt-4o-mini"),
    instructions="You summarise sources with citations.",
)

agent_os = AgentOS(
    id="agentos-mw-example",
    description="AgentOS behind agentos_mw",
    agents=[support, research],
    db=InMemoryDb(),  # type: ignore[no-untyped-call]
    telemetry=False,
)
app = agent_os.get_app()

app.add_middleware(
    JWTMiddleware,
    verification_keys=[SECRET],
    algorithm="HS256",
    authorization=True,  # AgentOS's route-to-scope map: GET /agents needs agents:read, ...
    unmapped="deny",
)

if __name__ == "__main__":
    agent_os.serve(app="examples.agent_os:app")
