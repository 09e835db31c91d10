"""What becomes of a turn, decided from the contact as it is when the turn's result is written (pure).

The model call happens outside any transaction; by the time its result is written a manager may
have taken the contact over, or called it a non-client. So the outcome is decided again, from
the contact row locked in the writing transaction:

* ``REPLIED`` -- the AI's reply goes to the prospect (the messages are ``handled``);
* ``SUPPRESSED`` -- the reply is kept as a draft for the manager who holds the contact (or it
  lost the race against a manager's verdict); nothing is sent, the messages are ``silent``;
* ``NON_CLIENT`` -- the moderator judged a non-client: no reply, the verdict is recorded;
* ``SILENT`` -- nothing was planned (a manager holds it and drafts are off, a settled
  non-client): the messages are ``silent``.
"""

from __future__ import annotations

import enum

from agent_service.domain.contact import ContactView
from agent_service.domain.moderation import ModerationPolicy


class TurnOutcome(enum.StrEnum):
    REPLIED = "replied"
    SUPPRESSED = "suppressed"
    NON_CLIENT = "non_client"
    SILENT = "silent"


def turn_outcome(contact: ContactView, *, planned: bool, has_reply: bool, policy: ModerationPolicy) -> TurnOutcome:
    """The outcome of a turn whose plan (``planned``; with a reply or not) meets ``contact`` as it is now."""
    if not planned:
        return TurnOutcome.SILENT
    if not has_reply:
        return TurnOutcome.NON_CLIENT
    if not policy.ai_answers(contact):
        return TurnOutcome.SUPPRESSED
    return TurnOutcome.REPLIED
