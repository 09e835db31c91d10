"""The agent service's wired components, reachable from route handlers as ``request.app[AGENT]``."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from aiohttp import web

from agent_service.calls.service import CallBooker
from agent_service.engines.base import Engine
from agent_service.followups.scheduler import FollowUpScheduler
from agent_service.followups.service import FollowUps
from agent_service.knowledge.base import KnowledgeBase
from agent_service.sales import SalesAgent
from agent_service.settings import AgentSettings
from agent_service.workers.incoming import IncomingHandler
from agent_service.workers.status import StatusHandler
from agent_service.workers.turns import TurnRunner
from parley_shared.service import Runtime


@dataclass
class AgentService:
    settings: AgentSettings
    runtime: Runtime
    business_tz: ZoneInfo
    knowledge: KnowledgeBase
    engine: Engine
    agent: SalesAgent
    follow_ups: FollowUps
    booker: CallBooker
    scheduler: FollowUpScheduler
    turns: TurnRunner
    incoming: IncomingHandler
    statuses: StatusHandler


AGENT = web.AppKey("agent", AgentService)
