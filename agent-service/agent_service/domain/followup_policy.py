"""Follow-up decisions as pure functions: who gets a sequence, when each touch is due, what stops it.

A *sequence* starts when the AI has just messaged an eligible contact. Touch ``n`` is planned
``interval[n] - interval[n-1]`` after touch ``n-1`` (touch 1: ``interval[1]`` after the agent's
message), then moved into working hours by :func:`schedule_after`. Chaining keeps the configured
spacing between touches even when one was pushed over a weekend (touch 1 due Saturday goes on
Monday; touch 2 is then planned from Monday, not from the Friday message), and no touch is ever
earlier than its interval from the agent's message.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent_service.domain.contact import ContactView
from agent_service.domain.working_hours import WorkingHours, schedule_after

META_WINDOW = timedelta(hours=24)  # Meta: free-form messages only within 24 h of the prospect's last message


class Strategy(enum.StrEnum):
    REMINDER = "reminder"
    VALUE_PROPOSITION = "value_proposition"
    SOCIAL_PROOF = "social_proof"
    URGENCY = "urgency"
    FAREWELL = "farewell"


DEFAULT_STRATEGIES = tuple(Strategy)


class StopReason(enum.StrEnum):
    """Why a contact gets no (more) touches; ``reason`` on cancelled rows and on the contact."""

    DISABLED = "follow_ups_disabled"
    STOPPED = "follow_ups_stopped"
    NON_CLIENT = "non_client"
    HUMAN = "held_by_human"
    NEEDS_HUMAN = "needs_human"
    CALL_SCHEDULED = "call_scheduled"
    AGREED = "agreed"
    DECLINED = "declined"
    REPLIED = "replied"
    SUPERSEDED = "superseded"
    MANAGER = "manager_request"


# Outcomes that end follow-ups for good (the contact row is marked ``follow_ups_stopped``).
FINAL_OUTCOMES = {"agreed": StopReason.AGREED, "declined": StopReason.DECLINED}


@dataclass(frozen=True)
class FollowUpPolicy:
    hours: WorkingHours
    intervals: tuple[timedelta, ...]  # from the agent's message, cumulative, strictly increasing
    strategies: tuple[Strategy, ...]  # one per interval
    spread_minutes: int = 30
    enabled: bool = True

    def __post_init__(self) -> None:
        if not self.intervals or len(self.intervals) != len(self.strategies):
            raise ValueError("follow-ups need one strategy per interval")
        if any(b <= a for a, b in zip((timedelta(0), *self.intervals), self.intervals, strict=False)):
            raise ValueError("follow-up intervals must be positive and strictly increasing")

    @property
    def touches(self) -> int:
        """Touches in a sequence: up to and including the first farewell."""
        if Strategy.FAREWELL in self.strategies:
            return self.strategies.index(Strategy.FAREWELL) + 1
        return len(self.strategies)

    def gap(self, touch: int) -> timedelta:
        """Time between touch ``touch - 1`` (0: the agent's message) and touch ``touch``."""
        previous = self.intervals[touch - 2] if touch > 1 else timedelta(0)
        return self.intervals[touch - 1] - previous


@dataclass(frozen=True)
class PlannedTouch:
    touch: int
    strategy: Strategy
    due_at: datetime  # UTC


def touch_key(contact_id: int, sequence_no: int, touch: int) -> str:
    return f"{contact_id}:{sequence_no}:{touch}"


def plan(
    policy: FollowUpPolicy, *, after: datetime, contact_id: int, sequence_no: int, first_touch: int = 1
) -> list[PlannedTouch]:
    """Touches ``first_touch..`` of a sequence, chained from ``after`` (the agent's message, or the
    moment touch ``first_touch - 1`` actually went out)."""
    planned: list[PlannedTouch] = []
    previous = after
    for touch in range(first_touch, policy.touches + 1):
        due = schedule_after(
            previous + policy.gap(touch),
            policy.hours,
            spread_minutes=policy.spread_minutes,
            key=touch_key(contact_id, sequence_no, touch),
        )
        planned.append(PlannedTouch(touch, policy.strategies[touch - 1], due))
        previous = due
    return planned


@dataclass(frozen=True)
class Eligibility:
    ok: bool
    reason: StopReason | None = None
    final: bool = False  # the contact gave a definitive answer: stop for good


def eligibility(contact: ContactView, *, enabled: bool, call_booked: bool = False) -> Eligibility:
    """May this contact get follow-up touches now?

    Only clients held by the AI with an open or uncertain outcome and no upcoming call
    (``call_booked``) do; a definitive yes or no is ``final``. An unclassified contact
    (``client_status='unknown'``) gets none until the moderator has called it a client.
    """
    if contact.outcome in FINAL_OUTCOMES:
        return Eligibility(False, FINAL_OUTCOMES[contact.outcome], final=True)
    if not enabled:
        return Eligibility(False, StopReason.DISABLED)
    if contact.follow_ups_stopped:
        return Eligibility(False, StopReason.STOPPED)
    if contact.client_status != "client":
        return Eligibility(False, StopReason.NON_CLIENT)
    if contact.owner == "human":
        return Eligibility(False, StopReason.HUMAN)
    if contact.needs_human:
        return Eligibility(False, StopReason.NEEDS_HUMAN)
    if call_booked:
        return Eligibility(False, StopReason.CALL_SCHEDULED)
    return Eligibility(True)


def needs_template(contact: ContactView, now: datetime) -> bool:
    """Meta accepts free-form text only within 24 h of the prospect's last message."""
    if contact.provider != "meta":
        return False
    return contact.last_inbound_at is None or now - contact.last_inbound_at >= META_WINDOW


def parse_strategies(values: Sequence[str]) -> tuple[Strategy, ...]:
    return tuple(Strategy(v) for v in values)
