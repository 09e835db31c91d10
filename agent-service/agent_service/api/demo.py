"""Demo only (``DEMO_MODE=true``): move the agent's clock forward to watch a follow-up sequence in minutes.

The agent's clock is then an :class:`~parley_shared.clock.OffsetClock`: system time plus an
offset that ``POST /demo/clock`` increases. Follow-up due times, working hours, message times
and analytics all read that clock, so a touch due "in 24 hours" goes out right after
``{"advance_hours": 24}``. Never enabled unless the setting is on; refused in production.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from agent_service.context import AGENT
from parley_shared.clock import OffsetClock
from parley_shared.http import json_response, read_model
from parley_shared.openapi import describe


class AdvanceClock(BaseModel):
    model_config = ConfigDict(extra="forbid")
    advance_hours: float = Field(gt=0, le=24 * 60, description="How far to move the clock forward")


class ClockOut(BaseModel):
    """The agent's clock after the move."""

    now: str
    offset_hours: float


@describe("Demo: move the agent's clock forward", body=AdvanceClock, responses={200: ClockOut}, tags=("demo",))
async def advance_clock(request: web.Request) -> web.Response:
    clock = request.app[AGENT].runtime.clock
    assert isinstance(clock, OffsetClock)  # add_routes installs this route only then
    body = await read_model(request, AdvanceClock)
    now = clock.advance(timedelta(hours=body.advance_hours))
    return json_response(ClockOut(now=now.isoformat(), offset_hours=clock.offset.total_seconds() / 3600))


def add_routes(app: web.Application) -> None:
    if isinstance(app[AGENT].runtime.clock, OffsetClock):
        app.router.add_post("/demo/clock", advance_clock, name="demo-clock")
