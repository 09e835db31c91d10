"""Follow-up rows and their scheduler (I/O edge). Timing rules live in ``agent_service.domain``.

The conversation code (``agent_service`` turn handling) calls these hooks **inside its own
transaction**, passing the session and the contact row as it stands after the turn's update.

STATUS: interface only -- the follow-up issue fills it in. The hooks are no-ops until then.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


class FollowUps:
    async def on_inbound(self, session: AsyncSession, contact: Mapping[str, Any], now: datetime) -> None:
        """The prospect wrote: cancel the pending touches of the current sequence (and note the reply)."""

    async def on_agent_message(self, session: AsyncSession, contact: Mapping[str, Any], now: datetime) -> None:
        """The AI just replied (the reply is staged in this transaction): start a new sequence if eligible.

        ``contact`` carries the turn's outcome, owner and client status; ineligible contacts
        (non-clients, held by a human, definitive yes/no, follow-ups disabled) get none.
        """

    async def stop(self, session: AsyncSession, contact_id: int, reason: str, now: datetime) -> None:
        """Cancel pending touches for good (handoff, takeover, non-client, manager's request)."""
