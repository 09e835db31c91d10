"""The conversation's vocabularies, declared once (the database columns, the decision, the API
and the console all use these).

``contacts.client_status`` / ``client_category`` / ``classified_by``, ``contacts.spin_stage``,
``contacts.outcome`` and ``contacts.owner`` hold exactly these strings (``db/tables.py``).
"""

from __future__ import annotations

from typing import Literal, get_args

SpinStage = Literal["situation", "problem", "implication", "need_payoff"]
ProspectOutcome = Literal["open", "agreed", "declined", "uncertain"]
ClientStatus = Literal["unknown", "client", "non_client"]
Verdict = Literal["client", "non_client"]  # what a moderator or a manager decides
ClientCategory = Literal["prospect", "spam", "personal", "supplier", "job_seeker", "wrong_number", "other"]
ClassifiedBy = Literal["moderator", "manager"]
Owner = Literal["ai", "human"]
InboundStatus = Literal["pending", "handled", "silent"]

SPIN_STAGES: tuple[SpinStage, ...] = get_args(SpinStage)
OUTCOMES: tuple[ProspectOutcome, ...] = get_args(ProspectOutcome)
CATEGORIES: tuple[ClientCategory, ...] = get_args(ClientCategory)
NON_CLIENT_CATEGORIES: tuple[ClientCategory, ...] = CATEGORIES[1:]
CLIENT: Verdict = "client"
NON_CLIENT: Verdict = "non_client"
UNKNOWN: ClientStatus = "unknown"
