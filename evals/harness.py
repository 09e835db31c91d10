"""Running the labelled sets through the agent's own turn logic, and scoring what comes out.

Each sample business is set up the way the service sets it up (its business file, its
knowledge base, the prompts, the configured engine) and every message goes through
:meth:`SalesAgent.plan` -- the moderator and the sales decision in one engine call for a new
contact, the computed quotes, the grounding guard. A call the agent schedules is booked with
the service's own rules (:func:`~agent_service.domain.call_slots.refusal`): booked at the time
asked, or slots proposed. Nothing here touches a database or a queue.

Scores:

* classification: the verdict's status (client or not) and category against the label;
* answerable facts: a turn that expects facts is right when every fact is in the reply and
  the reply is no handoff;
* invented numbers: prices, percentages and other numbers the engine wrote (before the guard)
  that neither the business's documents, its business file nor a computed quote state;
* handoffs: a turn the documents cannot answer must go to a manager;
* bookings: a call asked for at a bookable time is booked at that time; one asked for at a
  time that cannot be booked gets slots and no booking;
* the conversation's shape: outcome, SPIN stage, no out-of-place question, no question after
  an agreement.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent_service.app import build_agent, build_knowledge
from agent_service.business import load_business
from agent_service.domain.call_slots import CallRules, booked_text, proposal_text, propose, refusal
from agent_service.domain.contact import ContactView
from agent_service.domain.grounding import extract_claims, ungrounded_claims
from agent_service.domain.profile import BusinessProfile
from agent_service.engines import build_engine, engine_name
from agent_service.engines.base import HistoryItem
from agent_service.knowledge.base import KnowledgeBase
from agent_service.prompts import PromptBook
from agent_service.sales import InboundText, SalesAgent, TurnInput
from agent_service.settings import AgentSettings
from evals.sets import BUSINESSES, ROOT, Conversation, LabelledMessage, Turn

NUMERIC = ("money", "percent", "number")
HISTORY_MESSAGES = 12  # the service's default HISTORY_MESSAGES
CLASSIFY_AT = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)  # any fixed moment: classification does not depend on it


@dataclass
class Business:
    key: str
    agent: SalesAgent
    profile: BusinessProfile
    rules: CallRules
    knowledge: KnowledgeBase

    @property
    def documents(self) -> str:
        return self.knowledge.all_text()


@contextlib.asynccontextmanager
async def business(key: str, engine: str) -> AsyncIterator[Business]:
    """A sample business as the service would run it, on ``engine`` (offline, gemini or auto)."""
    settings = AgentSettings(
        business_file=str(BUSINESSES[key]),
        prompts_dir=str(ROOT / "prompts"),
        llm_engine=engine,
        knowledge_embeddings=False,
        _env_file=None,  # type: ignore[call-arg]
    )
    profile = load_business(settings)
    knowledge = build_knowledge(settings, profile)
    await knowledge.ensure_loaded()
    prompts = PromptBook(settings.prompts_dir, profile)
    model = build_engine(settings, prompts)
    agent = build_agent(settings, profile, knowledge=knowledge, engine=model, prompts=prompts)
    try:
        yield Business(key, agent, profile, settings.call_rules(), knowledge)
    finally:
        await model.close()
        await knowledge.close()


def resolved_engine(engine: str) -> str:
    """What ``auto`` means here: gemini with ``GEMINI_API_KEY`` set, else offline."""
    return engine_name(AgentSettings(llm_engine=engine))


def new_contact(name: str | None = None) -> dict[str, Any]:
    return {
        "id": 1,
        "phone": "+77010000000",
        "name": name,
        "language": None,
        "spin_stage": "situation",
        "outcome": "open",
        "client_status": "unknown",
        "client_category": None,
        "classified_by": None,
        "classification_confidence": None,
        "classified_turns": 0,
        "owner": "ai",
    }


# ---------------------------------------------------------------------------- classification
@dataclass(frozen=True)
class Verdict:
    message: LabelledMessage
    status: str
    category: str
    confidence: float

    @property
    def status_right(self) -> bool:
        return self.status == self.message.status

    @property
    def category_right(self) -> bool:
        return self.category == self.message.label


async def classify_all(
    messages: Iterable[LabelledMessage], businesses: dict[str, Business], concurrency: int = 8
) -> list[Verdict]:
    """Each message as a new contact's first message (the service's own first turn)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(message: LabelledMessage) -> Verdict:
        async with gate:
            turn = TurnInput(ContactView.from_row(new_contact()), [InboundText(message.text)], [], [], CLASSIFY_AT)
            plan = await businesses[message.business].agent.plan(turn)
        verdict = plan.classification
        assert verdict is not None, "a new contact is always classified"
        return Verdict(message, verdict.status, verdict.category, verdict.confidence)

    return list(await asyncio.gather(*(one(m) for m in messages)))


# ---------------------------------------------------------------------------- conversations
@dataclass
class TurnResult:
    conversation: Conversation
    index: int
    turn: Turn
    reply: str
    handoff: bool
    booked: datetime | None  # local
    slots: bool
    outcome: str
    stage: str
    invented: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)  # facts | handoff | booking | shape -> right?

    @property
    def failed(self) -> list[str]:
        return [name for name, ok in self.checks.items() if not ok]


async def run_conversation(conversation: Conversation, business: Business) -> list[TurnResult]:
    """The conversation turn by turn, as the turn runner would run it (two minutes between turns)."""
    tz = ZoneInfo(business.profile.timezone)
    now = datetime.fromisoformat(conversation.now).replace(tzinfo=tz).astimezone(UTC)
    contact = new_contact(conversation.name)
    history: list[HistoryItem] = []
    results = []
    for index, turn in enumerate(conversation.turns):
        again = int(contact["classified_turns"] or 0) > 0
        first_texts = [h.text for h in history if h.direction == "in"] if again else []
        plan = await business.agent.plan(
            TurnInput(
                ContactView.from_row(contact), [InboundText(turn.say)], history[-HISTORY_MESSAGES:], first_texts, now
            )
        )
        reply = plan.reply or ""
        decision = plan.decision
        booked, slots = None, False
        if decision is not None and decision.action == "schedule_call":
            requested = decision.proposed_call_time
            if requested is not None and refusal(requested, now, business.rules) is None:
                booked = requested.astimezone(tz)
                reply = f"{reply}\n{booked_text(requested, business.rules.hours, plan.language)}"
            else:
                slots = True
                offered = propose(now, business.rules, requested)
                reply = f"{reply}\n{proposal_text(offered, business.rules.hours, plan.language)}"
        contact.update(plan.contact_values)
        raw = plan.draft or plan.reply or ""
        sources = [business.documents, business.profile.source_text(), *plan.computed]
        missing = set(ungrounded_claims(raw, sources))
        invented = [c.text for c in extract_claims(raw) if c.kind in NUMERIC and c.text in missing]
        result = TurnResult(
            conversation,
            index,
            turn,
            reply,
            handoff=bool(plan.handoff),
            booked=booked,
            slots=slots,
            outcome=str(contact.get("outcome")),
            stage=str(contact.get("spin_stage")),
            invented=invented,
        )
        result.checks = score(result, business.profile)
        results.append(result)
        history += [HistoryItem("in", "text", turn.say)]
        if plan.reply is not None:
            history += [HistoryItem("out", "reply", reply)]
        now += timedelta(minutes=2)
    return results


def score(result: TurnResult, profile: BusinessProfile) -> dict[str, bool]:
    turn, reply = result.turn, result.reply
    checks: dict[str, bool] = {}
    if turn.facts:
        present = all(any(alt in reply for alt in options) for options in turn.facts)
        checks["facts"] = present and not result.handoff and not any(a in reply for a in turn.absent)
    if turn.handoff is not None:
        checks["handoff"] = result.handoff == turn.handoff
    if turn.booking is not None:
        if turn.booking == "slots":
            checks["booking"] = result.booked is None and result.slots
        else:
            expected = datetime.fromisoformat(turn.booking)
            checks["booking"] = result.booked is not None and result.booked.replace(tzinfo=None) == expected
    shape: list[bool] = []
    if turn.outcome is not None:
        shape.append(result.outcome == turn.outcome)
    if turn.stage is not None:
        shape.append(result.stage == turn.stage)
    if turn.avoid_stage is not None:
        language = _language(reply)
        shape.append(not any(q in reply for q in profile.spin_questions(language, turn.avoid_stage)))
    if turn.no_question:
        shape.append("?" not in reply)
    if shape:
        checks["shape"] = all(shape)
    return checks


def _language(text: str) -> str:
    from agent_service.domain.language import detect_language

    return detect_language(text)


# ---------------------------------------------------------------------------- the whole run
@dataclass
class Report:
    engine: str
    verdicts: list[Verdict]
    turns: list[TurnResult]

    def classification_rows(self) -> list[tuple[str, int, float, float]]:
        """(group, messages, status accuracy, category accuracy) per split and language."""
        groups: dict[str, list[Verdict]] = {}
        for v in self.verdicts:
            groups.setdefault(f"{v.message.split}", []).append(v)
            groups.setdefault(f"{v.message.split} / {v.message.language}", []).append(v)
            groups.setdefault(f"all / {v.message.language}", []).append(v)
            groups.setdefault("all", []).append(v)
        order = sorted(groups, key=lambda g: (g.startswith("all"), g))
        return [
            (g, len(vs), _share(v.status_right for v in groups[g]), _share(v.category_right for v in groups[g]))
            for g in order
            for vs in [groups[g]]
        ]

    def conversation_rows(self) -> list[tuple[str, dict[str, tuple[int, int]], int]]:
        """(group, {check: (right, of)}, invented numbers) per split and business."""
        groups: dict[str, list[TurnResult]] = {}
        for t in self.turns:
            groups.setdefault(f"{t.conversation.split} / {t.conversation.business}", []).append(t)
            groups.setdefault(t.conversation.split, []).append(t)
            groups.setdefault("all", []).append(t)
        rows = []
        for g in sorted(groups, key=lambda g: (g == "all", g)):
            counts: dict[str, tuple[int, int]] = {}
            for name in ("facts", "handoff", "booking", "shape"):
                marks = [t.checks[name] for t in groups[g] if name in t.checks]
                counts[name] = (sum(marks), len(marks))
            rows.append((g, counts, sum(len(t.invented) for t in groups[g])))
        return rows

    def totals(self, splits: Iterable[str] | None = None) -> dict[str, Any]:
        """The figures over the given sets (every set by default)."""
        wanted = set(splits) if splits is not None else None
        verdicts = [v for v in self.verdicts if wanted is None or v.message.split in wanted]
        turns = [t for t in self.turns if wanted is None or t.conversation.split in wanted]
        checks = ("facts", "handoff", "booking", "shape")
        marks = {name: [t.checks[name] for t in turns if name in t.checks] for name in checks}
        return {
            "engine": self.engine,
            "sets": sorted(wanted) if wanted is not None else "all",
            "classification_messages": len(verdicts),
            "classification_status": _share(v.status_right for v in verdicts),
            "classification_category": _share(v.category_right for v in verdicts),
            "turns": len(turns),
            **{f"{name}_right": _share(m) for name, m in marks.items()},
            **{f"{name}_turns": len(m) for name, m in marks.items()},
            "invented_numbers": sum(len(t.invented) for t in turns),
        }


def _share(marks: Iterable[bool]) -> float:
    values = list(marks)
    return round(sum(values) / len(values), 3) if values else 1.0


async def evaluate(
    engine: str = "auto",
    *,
    classification_splits: Iterable[str],
    conversation_splits: Iterable[str],
) -> Report:
    from evals import sets

    name = resolved_engine(engine)
    messages = [m for split in classification_splits for m in sets.classification(split)]
    conversations = [c for split in conversation_splits for c in sets.conversations(split)]
    async with contextlib.AsyncExitStack() as stack:
        businesses = {key: await stack.enter_async_context(business(key, name)) for key in BUSINESSES}
        verdicts = await classify_all(messages, businesses, concurrency=8 if name == "gemini" else 1)
        turns: list[TurnResult] = []
        for conversation in conversations:
            turns += await run_conversation(conversation, businesses[conversation.business])
    return Report(name, verdicts, turns)
