"""Composition root of the agent service: settings in, a wired aiohttp application out.

Wiring: ``incoming_messages`` -> :class:`IncomingHandler` (record, arm the contact's turn) ->
:class:`TurnRunner` (one turn per contact: :class:`SalesAgent` with the engine, the knowledge
base and the prompts; the follow-up and call-booking hooks) -> outbox -> ``outgoing_messages``;
``delivery_status`` -> :class:`StatusHandler`; the follow-up scheduler and the turn sweeper are
periodic jobs; the managers' JSON routes and the console (``/console``) read the components from
``request.app[AGENT]`` and act through its :class:`Desk`; live events reach every replica's
managers through the :class:`LiveFeed`.

:func:`build` wires the components onto a :class:`Runtime` (tests build on a runtime of their
own); :func:`create_app` adds the HTTP application around them. ``clock`` and ``engine`` are
injectable (the demo's fast-forward clock, tests' fake engines).
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web

from agent_service.actions import Desk
from agent_service.api import analytics as analytics_api
from agent_service.api import contacts as contacts_api
from agent_service.api import conversation as conversation_api
from agent_service.api import demo as demo_api
from agent_service.api import erasure as erasure_api
from agent_service.api import follow_ups as follow_ups_api
from agent_service.api import handoff as handoff_api
from agent_service.api import knowledge as knowledge_api
from agent_service.api import scheduled_calls as scheduled_calls_api
from agent_service.api import stats as stats_api
from agent_service.business import load_business
from agent_service.calls.service import CallBooker
from agent_service.console import routes as console
from agent_service.context import AGENT, AgentService
from agent_service.db import MIGRATIONS, tables
from agent_service.domain.profile import BusinessProfile
from agent_service.engines import build_engine, engine_name
from agent_service.engines.base import Engine
from agent_service.followups.scheduler import FollowUpScheduler
from agent_service.followups.service import FollowUps
from agent_service.followups.text import PROMPT_FILE, FollowUpWriter, Knowledge, Templates
from agent_service.knowledge.base import KnowledgeBase
from agent_service.knowledge.embeddings import GeminiEmbedder
from agent_service.knowledge.media import MediaLibrary
from agent_service.live import LiveFeed
from agent_service.privacy import AgentPrivacy, retention_rules
from agent_service.prompts import PromptBook
from agent_service.reporting import Reporting
from agent_service.sales import SalesAgent
from agent_service.settings import AgentSettings
from agent_service.workers.incoming import IncomingHandler
from agent_service.workers.status import StatusHandler
from agent_service.workers.turns import TurnRunner
from parley_shared.clock import Clock, OffsetClock
from parley_shared.contracts import TemplateRef
from parley_shared.gemini import gemini_configured, make_client
from parley_shared.retention import Retention
from parley_shared.service import Runtime, service_app
from parley_shared.topology import INCOMING, STATUS

WRITERS = 8  # follow-up texts written at once per replica


def create_app(settings: AgentSettings, *, clock: Clock | None = None, engine: Engine | None = None) -> web.Application:
    """``engine``: a decision engine to use instead of the configured one (tests pass fakes)."""
    if clock is None and settings.demo_mode:
        clock = OffsetClock()  # the demo's fast-forward moves it (POST /demo/clock)
    app, runtime = service_app(
        service="agent-service",
        settings=settings,
        database_url=settings.database_url,
        migrations=MIGRATIONS,
        outbox_table=tables.outbox,
        inbox_table=tables.inbox,
        clock=clock,
    )
    app[AGENT] = agent = build(runtime, settings, engine=engine)
    add_routes(app)
    console.install(app, agent)
    return app


def add_routes(app: web.Application) -> None:
    contacts_api.add_routes(app)  # before any /contacts/{phone} route: it adds /contacts/export.csv
    conversation_api.add_routes(app)
    handoff_api.add_routes(app)
    follow_ups_api.add_routes(app)
    scheduled_calls_api.add_routes(app)
    analytics_api.add_routes(app)
    knowledge_api.add_routes(app)
    stats_api.add_routes(app)
    demo_api.add_routes(app)
    erasure_api.add_routes(app)


def build(runtime: Runtime, settings: AgentSettings, *, engine: Engine | None = None) -> AgentService:
    """Every component of the service, wired onto ``runtime`` (consumers, periodic jobs, hooks)."""
    business_tz = ZoneInfo(settings.working_tz)  # a bad WORKING_TZ fails here, at start-up
    business = load_business(settings)  # the business file: a bad one fails here too
    knowledge = build_knowledge(settings, business)
    prompts = PromptBook(settings.prompts_dir, business)
    engine = engine or build_engine(settings, prompts)
    agent = build_agent(settings, business, knowledge=knowledge, engine=engine, prompts=prompts)
    follow_ups, booker = FollowUps(settings.follow_up_policy()), CallBooker(settings.call_rules())
    live = LiveFeed(runtime.broker, runtime.clock, runtime.drains)  # the managers' screens, across replicas
    scheduler = build_scheduler(runtime, settings, business, knowledge=knowledge, live=live)
    # What managers do (take over, write, hand back, override...), for the JSON API and the console.
    desk = Desk(runtime.sessions, runtime.outbox, runtime.clock, follow_ups, booker, live)
    turns = TurnRunner(
        sessions=runtime.sessions,
        outbox=runtime.outbox,
        agent=agent,
        clock=runtime.clock,
        follow_ups=follow_ups,
        booker=booker,
        lease_s=settings.turn_lease_s,
        max_concurrent=settings.max_concurrent_turns,
        history_limit=settings.history_messages,
        moderation=settings.moderation_policy(),
        order_gap_wait_s=settings.order_gap_wait_s,
        drains=runtime.drains,
        live=live,
        batch_size=settings.batch_max_size,
    )
    incoming = IncomingHandler(
        sessions=runtime.sessions,
        inbox=runtime.inbox,
        clock=runtime.clock,
        follow_ups=follow_ups,
        schedule=turns.schedule,
        drains=runtime.drains,
        window_s=settings.buffer_window_s,
        moderation=settings.moderation_policy(),
        live=live,
        batch_size=settings.batch_max_size,
    )
    statuses = StatusHandler(runtime.sessions, runtime.drains, live, batch_size=settings.batch_max_size)
    reporting = Reporting(settings)  # analytics and the CSV export, on a pool of their own
    privacy = AgentPrivacy(runtime.sessions, runtime.clock, settings, runtime.outbox)
    retention = Retention(runtime.sessions, runtime.clock, retention_rules(settings))

    runtime.on_start(knowledge.ensure_loaded)
    runtime.add_consumer(INCOMING, incoming)
    runtime.add_consumer(STATUS, statuses)
    runtime.add_periodic("turn-sweeper", turns.sweep_once, interval_s=settings.turn_sweep_interval_s)
    runtime.add_periodic("follow-ups", scheduler.tick, interval_s=settings.follow_up_check_interval_s)
    runtime.add_periodic("retention", retention.prune_once, interval_s=settings.retention_interval_s)
    runtime.add_worker("live-events", live.run)
    runtime.on_stopping(live.close_streams)  # open SSE streams end, so the server need not wait for them
    runtime.on_stop(engine.close)
    runtime.on_stop(knowledge.close)
    runtime.on_stop(reporting.close)
    runtime.on_stop(lambda: turns.stop(settings.shutdown_timeout_s / 2))
    return AgentService(
        settings=settings,
        runtime=runtime,
        business_tz=business_tz,
        knowledge=knowledge,
        engine=engine,
        agent=agent,
        follow_ups=follow_ups,
        booker=booker,
        scheduler=scheduler,
        turns=turns,
        incoming=incoming,
        statuses=statuses,
        reporting=reporting,
        privacy=privacy,
        live=live,
        desk=desk,
    )


def build_agent(
    settings: AgentSettings, business: BusinessProfile, *, knowledge: KnowledgeBase, engine: Engine, prompts: PromptBook
) -> SalesAgent:
    """One turn's thinking as the service runs it (also what ``evals/`` measures)."""
    return SalesAgent(
        engine=engine,
        knowledge=knowledge,
        prompts=prompts,
        profile=business,
        call_rules=settings.call_rules(),
        media=MediaLibrary(settings.knowledge_path, settings.price_list_file),
        top_k=settings.knowledge_top_k,
        moderation=settings.moderation_policy(),
    )


def build_knowledge(settings: AgentSettings, business: BusinessProfile) -> KnowledgeBase:
    embedder = None
    if settings.knowledge_embeddings and engine_name(settings) == "gemini":
        embedder = GeminiEmbedder(
            make_client(settings, timeout_s=settings.llm_timeout_s), settings.gemini_embedding_model
        )
    return KnowledgeBase(
        settings.knowledge_path,
        embedder=embedder,
        embed_timeout_s=settings.llm_timeout_s,
        synonyms=business.synonyms,
    )


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
    runtime: Runtime,
    settings: AgentSettings,
    business: BusinessProfile,
    *,
    knowledge: Knowledge | None = None,
    live: LiveFeed | None = None,
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
        lease=claim_lease(settings),
        history_messages=settings.history_messages,
        concurrency=WRITERS,
        live=live,
    )


def claim_lease(settings: AgentSettings) -> timedelta:
    """Long enough to write a whole batch even if every model call times out (then the template
    is used), so a live replica never loses its claim; short enough to recover from a dead one."""
    rounds = math.ceil(settings.follow_up_batch_size / WRITERS)
    return max(timedelta(minutes=5), timedelta(seconds=2 * rounds * settings.llm_timeout_s + 60))
