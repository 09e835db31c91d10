"""Wiring of follow-ups and scheduled calls into the agent service (called from ``app.py``).

:func:`install` builds the pieces from the settings, registers the managers' routes
(``/follow-ups/...``, ``/contacts/{phone}/follow-ups``, ``/scheduled-calls``) and the scheduler
worker, and returns the hooks the conversation code calls.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from agent_service.calls.service import CallBooker
from agent_service.domain.profile import BusinessProfile
from agent_service.followups.scheduler import FollowUpScheduler
from agent_service.followups.service import FollowUps
from agent_service.followups.text import PROMPT_FILE, FollowUpWriter, Knowledge, Templates
from parley_shared.contracts import TemplateRef
from parley_shared.gemini import gemini_configured, make_client
from parley_shared.service import Runtime

if TYPE_CHECKING:
    from agent_service.settings import AgentSettings

FOLLOW_UPS = web.AppKey("follow_ups", FollowUps)
CALL_BOOKER = web.AppKey("call_booker", CallBooker)
SCHEDULER = web.AppKey("follow_up_scheduler", FollowUpScheduler)
WRITERS = 8  # follow-up texts written at once per replica


def build_writer(
    settings: AgentSettings, business: BusinessProfile, *, knowledge: Knowledge | None = None
) -> FollowUpWriter:
    """Templates offline; Gemini when a key is set and ``LLM_ENGINE`` is not ``offline``."""
    prompts = Path(settings.prompts_dir)
    use_gemini = settings.llm_engine != "offline" and gemini_configured(settings)
    return FollowUpWriter(
        Templates.load(prompts),
        business_name=business.name,
        business_description=business.description,
        synonyms=business.synonyms,
        knowledge=knowledge,
        gemini=make_client(settings, timeout_s=settings.llm_timeout_s) if use_gemini else None,
        model=settings.gemini_model,
        system_prompt=(prompts / PROMPT_FILE).read_text(encoding="utf-8") if use_gemini else "",
        timeout_s=settings.llm_timeout_s,
    )


def build_scheduler(
    runtime: Runtime, settings: AgentSettings, business: BusinessProfile, *, knowledge: Knowledge | None = None
) -> FollowUpScheduler:
    template = (
        TemplateRef(name=settings.follow_up_template_name, language=settings.follow_up_template_language)
        if settings.follow_up_template_name
        else None
    )
    return FollowUpScheduler(
        sessions=runtime.sessions,
        outbox=runtime.outbox,
        policy=settings.follow_up_policy(),
        writer=build_writer(settings, business, knowledge=knowledge),
        clock=runtime.clock,
        template=template,
        batch_size=settings.follow_up_batch_size,
        check_interval_s=settings.follow_up_check_interval_s,
        lease=claim_lease(settings),
        history_messages=settings.history_messages,
        concurrency=WRITERS,
    )


def claim_lease(settings: AgentSettings) -> timedelta:
    """Long enough to write a whole batch even if every model call times out (then the template
    is used), so a live replica never loses its claim; short enough to recover from a dead one."""
    rounds = math.ceil(settings.follow_up_batch_size / WRITERS)
    return max(timedelta(minutes=5), timedelta(seconds=2 * rounds * settings.llm_timeout_s + 60))


def install(
    app: web.Application,
    runtime: Runtime,
    settings: AgentSettings,
    *,
    business: BusinessProfile,
    knowledge: Knowledge | None = None,
) -> tuple[FollowUps, CallBooker]:
    """Register routes and workers; return the hooks the conversation code calls.

    ``knowledge``: the knowledge base, for grounded facts in follow-up texts (optional).
    """
    from agent_service.api import follow_ups as follow_ups_api
    from agent_service.api import scheduled_calls as scheduled_calls_api

    follow_ups, booker = FollowUps(settings.follow_up_policy()), CallBooker(settings.call_rules())
    scheduler = build_scheduler(runtime, settings, business, knowledge=knowledge)
    app[FOLLOW_UPS] = follow_ups
    app[CALL_BOOKER] = booker
    app[SCHEDULER] = scheduler
    follow_ups_api.add_routes(app)
    scheduled_calls_api.add_routes(app)
    runtime.add_worker("follow-ups", scheduler.run)
    return follow_ups, booker
