"""Wiring of the conversation (consumers, turn runner, sales agent, engines, knowledge, routes).

Called from ``app.py``; the follow-up/call hooks come from ``followups.wiring.install``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from agent_service.api import conversation as conversation_api
from agent_service.api import handoff as handoff_api
from agent_service.api import knowledge as knowledge_api
from agent_service.calls.service import CallBooker
from agent_service.domain.profile import BusinessProfile
from agent_service.engines import build_engine, engine_name
from agent_service.engines.base import Engine
from agent_service.followups.service import FollowUps
from agent_service.knowledge import KNOWLEDGE, KnowledgeBase
from agent_service.knowledge.embeddings import GeminiEmbedder
from agent_service.prompts import PromptBook
from agent_service.sales import SalesAgent
from agent_service.workers.incoming import IncomingHandler
from agent_service.workers.status import StatusHandler
from agent_service.workers.turns import TurnRunner
from parley_shared.gemini import make_client
from parley_shared.service import Runtime
from parley_shared.topology import INCOMING, STATUS

if TYPE_CHECKING:
    from agent_service.settings import AgentSettings

TURNS = web.AppKey("turns", TurnRunner)
ENGINE = web.AppKey("engine", Engine)  # type: ignore[type-abstract]


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
        top_k=settings.knowledge_top_k,
        min_confidence=settings.moderator_min_confidence,
        max_classification_turns=settings.moderator_max_turns,
    )


def install(
    app: web.Application,
    runtime: Runtime,
    settings: AgentSettings,
    business: BusinessProfile,
    *,
    follow_ups: FollowUps,
    booker: CallBooker,
    knowledge: KnowledgeBase,
    engine: Engine | None = None,
) -> TurnRunner:
    """Register the consumers, the turn sweeper and the conversation routes; return the turn runner."""
    prompts = PromptBook(settings.prompts_dir, business)
    engine = engine or build_engine(settings, prompts)
    agent = build_agent(settings, business, knowledge=knowledge, engine=engine, prompts=prompts)
    runner = TurnRunner(
        sessions=runtime.sessions,
        outbox=runtime.outbox,
        agent=agent,
        clock=runtime.clock,
        follow_ups=follow_ups,
        booker=booker,
        window_s=settings.buffer_window_s,
        lease_s=settings.turn_lease_s,
        max_concurrent=settings.max_concurrent_turns,
        history_limit=settings.history_messages,
        sweep_interval_s=settings.turn_sweep_interval_s,
        min_confidence=settings.moderator_min_confidence,
        max_classification_turns=settings.moderator_max_turns,
    )
    incoming = IncomingHandler(
        sessions=runtime.sessions,
        inbox=runtime.inbox,
        clock=runtime.clock,
        follow_ups=follow_ups,
        schedule=runner.schedule,
        window_s=settings.buffer_window_s,
        min_confidence=settings.moderator_min_confidence,
        max_classification_turns=settings.moderator_max_turns,
    )
    statuses = StatusHandler(runtime.sessions)
    runtime.add_consumer(INCOMING, incoming)
    runtime.add_consumer(STATUS, statuses)
    runtime.drain_at_stop(incoming.group_commit, statuses.group_commit)
    runtime.add_worker("turn-sweeper", runner.run_sweeper)
    runtime.on_stop(engine.close)
    runtime.on_stop(knowledge.close)
    runtime.on_stop(lambda: runner.stop(settings.shutdown_timeout_s / 2))

    async def load_knowledge(_app: web.Application) -> None:
        await knowledge.ensure_loaded()

    app.on_startup.append(load_knowledge)
    app[KNOWLEDGE] = knowledge
    app[TURNS] = runner
    app[ENGINE] = engine
    conversation_api.add_routes(app)
    handoff_api.add_routes(app)
    knowledge_api.add_routes(app)
    return runner
