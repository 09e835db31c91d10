"""Jinja2 helpers of the console's templates (autoescape is on everywhere).

Times are shown in the business's time zone. Text from outside (names, messages, captions) is
escaped by Jinja and placed in ``<bdi>`` elements by the templates, so right-to-left override
characters cannot reorder the page around it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import jinja2

from agent_service.domain.working_hours import WorkingHours
from parley_shared.contracts import new_id

STAGES = {"situation": "Situation", "problem": "Problem", "implication": "Implication", "need_payoff": "Need-payoff"}
OUTCOMES = {"open": "Open", "agreed": "Agreed", "declined": "Declined", "uncertain": "Uncertain"}
CATEGORIES = {
    "prospect": "Prospect",
    "spam": "Spam",
    "personal": "Personal",
    "supplier": "Supplier",
    "job_seeker": "Job seeker",
    "wrong_number": "Wrong number",
    "other": "Other",
}
STATUSES = {"unknown": "Not classified yet", "client": "Client", "non_client": "Non-client"}
MESSAGE_KINDS = {
    "text": "Text",
    "voice": "Voice note",
    "audio": "Audio",
    "image": "Image",
    "document": "Document",
    "video": "Video",
    "sticker": "Sticker",
    "location": "Location",
    "contact": "Contact card",
    "reaction": "Reaction",
    "interactive": "Button reply",
    "other": "Message",
    "reply": "AI reply",
    "follow_up": "Follow-up",
    "operator": "Manager",
}
AUDIT = {
    "takeover": "took the conversation over",
    "message": "wrote to the prospect",
    "handback": "handed the conversation back to the AI",
    "classification": "changed the classification",
    "outcome": "changed the outcome",
    "notes": "edited the notes",
    "call_confirmed": "confirmed a call",
    "call_cancelled": "cancelled a call",
    "call_done": "closed a call",
    "call_reopened": "reopened a call",
    "call_rescheduled": "moved a call",
    "call_notes": "edited a call's notes",
    "follow_ups_cancelled": "cancelled the follow-ups",
    "follow_ups_resumed": "resumed the follow-ups",
}
STRATEGIES = {
    "reminder": "Reminder",
    "value_proposition": "Value proposition",
    "social_proof": "Social proof",
    "urgency": "Urgency",
    "farewell": "Farewell",
}


def configure(env: jinja2.Environment, hours: WorkingHours, static_url: Callable[[str], str]) -> None:
    def local(value: datetime | None, fmt: str = "%a %d %b %H:%M") -> str:
        return hours.local(value).strftime(fmt) if value is not None else ""

    def iso_local(value: datetime | None) -> str:
        return hours.local(value).isoformat(timespec="minutes") if value is not None else ""

    def input_local(value: datetime | None) -> str:
        """The value of a ``datetime-local`` input, in business time."""
        return hours.local(value).strftime("%Y-%m-%dT%H:%M") if value is not None else ""

    def local_text(value: object) -> str:
        """An ISO time kept as text (the audit trail's details), in business time."""
        try:
            return local(datetime.fromisoformat(str(value)))
        except ValueError:
            return str(value)

    env.filters.update(local=local, iso_local=iso_local, input_local=input_local, local_text=local_text)
    env.globals.update(
        static=static_url,
        new_client_message_id=new_id,
        timezone=hours.tz.key,
        working_hours=f"{hours.start_hour:02d}:00-{hours.end_hour:02d}:00",
        STAGES=STAGES,
        OUTCOMES=OUTCOMES,
        CATEGORIES=CATEGORIES,
        STATUSES=STATUSES,
        MESSAGE_KINDS=MESSAGE_KINDS,
        AUDIT=AUDIT,
        STRATEGIES=STRATEGIES,
    )
