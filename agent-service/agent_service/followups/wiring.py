"""Wiring of follow-ups and scheduled calls into the agent service (called from ``app.py``).

STATUS: interface only -- the follow-up/calls issue registers its routes (``/follow-ups/...``,
``/scheduled-calls``) and its scheduler worker here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from agent_service.calls.service import CallBooker
from agent_service.followups.service import FollowUps
from parley_shared.service import Runtime

if TYPE_CHECKING:
    from agent_service.settings import AgentSettings

FOLLOW_UPS = web.AppKey("follow_ups", FollowUps)
CALL_BOOKER = web.AppKey("call_booker", CallBooker)


def install(app: web.Application, runtime: Runtime, settings: AgentSettings) -> tuple[FollowUps, CallBooker]:
    """Register routes and workers; return the hooks the conversation code calls."""
    follow_ups, booker = FollowUps(), CallBooker()
    app[FOLLOW_UPS] = follow_ups
    app[CALL_BOOKER] = booker
    return follow_ups, booker
