"""A contact as the domain reads it: frozen, typed, built from a ``contacts`` row at the edge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from agent_service.domain.vocabulary import (
    ClassifiedBy,
    ClientCategory,
    ClientStatus,
    Owner,
    ProspectOutcome,
    SpinStage,
)


@dataclass(frozen=True)
class ContactView:
    id: int
    phone: str
    name: str | None = None
    client_status: ClientStatus = "unknown"
    client_category: ClientCategory | None = None
    classification_confidence: float | None = None
    classified_by: ClassifiedBy | None = None
    classified_turns: int = 0
    spin_stage: SpinStage = "situation"
    outcome: ProspectOutcome = "open"
    owner: Owner = "ai"
    owner_name: str | None = None
    needs_human: bool = False
    language: str | None = None
    provider: str | None = None
    follow_ups_stopped: bool = False
    last_inbound_at: datetime | None = None
    last_outbound_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> ContactView:
        """The view of a ``contacts`` row (columns the domain does not read are left out); ``row`` is
        read by column name (SQLAlchemy's ``RowMapping`` types its keys as columns too)."""
        values = {f.name: row[f.name] for f in fields(cls) if f.name in row and row[f.name] is not None}
        return cls(**values)
