"""``GET /analytics``: the funnel, message volumes, first-response time, follow-ups, calls, handoffs, tokens.

Each figure is one grouped SQL query over an indexed time range; the arithmetic on the small
aggregates (local days, percentiles, rates) is in ``agent_service.domain.analytics``.
Definitions (also in ``docs/api.md``):

* The contact figures (funnel, non-client share, handoffs) are about the **cohort** of contacts
  first seen in the period, as they stand now.
* Messages, tokens and operator messages count what was created in the period; follow-up sends
  count touches sent in it (``replied``: the prospect answered that touch); calls count bookings
  made in it.
* First response: for each contact whose first inbound message falls in the period, the delay
  until the first reply or operator message that was not suppressed or failed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, ColumnClause, ColumnElement, Integer, case, cast, func, literal_column, select

from agent_service.context import AGENT
from agent_service.db import tables
from agent_service.domain import analytics as calc
from parley_shared.db import Session, TupleRows, dialect_name
from parley_shared.http import HTTPError, json_response, read_query
from parley_shared.openapi import describe

_ALIASED = ConfigDict(serialize_by_alias=True, validate_by_name=True)


class AnalyticsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_: str | None = Field(
        None,
        alias="from",
        max_length=40,
        description="Start: a date (the whole day, business timezone) or an ISO 8601 datetime "
        "(no offset = business time). Default: 29 days before today.",
        examples=["2026-01-01"],
    )
    to: str | None = Field(
        None,
        max_length=40,
        description="End: a date (inclusive: the whole day) or an ISO 8601 datetime (exclusive). "
        "Default: the end of today.",
        examples=["2026-01-31"],
    )


class PeriodOut(BaseModel):
    model_config = _ALIASED
    from_: datetime = Field(alias="from", description="UTC, inclusive")
    to: datetime = Field(description="UTC, exclusive")
    timezone: str
    days: int


class Funnel(BaseModel):
    contacts: int
    clients: int
    non_clients: int
    unclassified: int
    stages: dict[str, int] = Field(description="Clients by current SPIN stage")
    reached: dict[str, int] = Field(description="Clients at this SPIN stage or further")
    agreed: int
    declined: int
    outcomes: dict[str, int] = Field(description="Contacts by outcome (open, agreed, declined, uncertain)")


class DayCount(BaseModel):
    model_config = _ALIASED
    date: date
    in_: int = Field(alias="in")
    out: int


class Messages(BaseModel):
    model_config = _ALIASED
    in_: int = Field(alias="in")
    out: int
    by_kind: dict[str, dict[str, int]] = Field(description="direction -> kind -> count")
    per_day: list[DayCount] = Field(description="Every day of the period (business timezone), zeros included")


class FirstResponse(BaseModel):
    answered: int
    unanswered: int
    p50_s: float | None = Field(description="Median seconds from a new contact's first message to the first answer")
    p90_s: float | None


class Touch(BaseModel):
    touch: int
    sent: int
    replied: int
    reply_rate: float | None


class FollowUps(BaseModel):
    sent: int
    replied: int
    reply_rate: float | None
    per_touch: list[Touch]


class Calls(BaseModel):
    requested: int
    confirmed: int = Field(description="Confirmed or done")
    by_status: dict[str, int]


class Handoffs(BaseModel):
    needs_human: int = Field(description="Cohort contacts flagged for a manager")
    owned_by_human: int = Field(description="Cohort contacts held by a manager now")
    operator_messages: int = Field(description="Messages managers sent in the period")


class TokenCount(BaseModel):
    model_config = _ALIASED
    in_: int = Field(alias="in")
    out: int
    messages: int


class Tokens(BaseModel):
    model_config = _ALIASED
    in_: int = Field(alias="in")
    out: int
    by_model: dict[str, TokenCount]


class AnalyticsOut(BaseModel):
    """Funnel and activity figures for one period."""

    period: PeriodOut
    funnel: Funnel
    non_client_share: float | None = Field(description="Non-clients among classified cohort contacts")
    messages: Messages
    first_response: FirstResponse
    follow_ups: FollowUps
    calls: Calls
    handoffs: Handoffs
    tokens: Tokens


def epoch_bucket(column: Any, dialect: str, size: int) -> ColumnElement[int]:
    """``floor(epoch seconds / size)`` of a UTC timestamp column (``size`` inlined: PostgreSQL must
    see the same expression in SELECT and GROUP BY)."""
    if dialect == "postgresql":
        return cast(func.floor(func.extract("epoch", column) / literal_column(str(int(size)))), BigInteger)
    # SQLite: integer division (``//``; SQLAlchemy renders ``/`` as true division, ``/ (n + 0.0)``)
    divisor: ColumnClause[int] = literal_column(str(int(size)), Integer)
    return cast(func.strftime("%s", column), Integer) // divisor


async def compute(session: Session, period: calc.Period) -> dict[str, Any]:
    c, m, f, s = tables.contacts.c, tables.messages.c, tables.follow_ups.c, tables.scheduled_calls.c
    start, end = period.start, period.end

    cohort: TupleRows = await session.execute(
        select(c.client_status, c.spin_stage, c.outcome, c.needs_human, c.owner, func.count())
        .where(c.first_seen_at >= start, c.first_seen_at < end)
        .group_by(c.client_status, c.spin_stage, c.outcome, c.needs_human, c.owner)
    )
    result = calc.contact_summary([tuple(row) for row in cohort])

    size = calc.bucket_seconds(period)
    bucket = epoch_bucket(m.created_at, dialect_name(session), size)
    volume: TupleRows = await session.execute(
        select(bucket, m.direction, m.kind, func.count())
        .where(m.created_at >= start, m.created_at < end)
        .group_by(bucket, m.direction, m.kind)
    )
    result["messages"] = calc.message_series([tuple(row) for row in volume], size, period)
    result["handoffs"]["operator_messages"] = result["messages"]["by_kind"].get("out", {}).get("operator", 0)

    first_in = (
        select(m.contact_id, func.min(m.created_at).label("first_in"))
        .where(m.direction == "in", m.created_at < end)
        .group_by(m.contact_id)
        .having(func.min(m.created_at) >= start)
        .subquery()
    )
    answer = tables.messages.alias("answer").c
    first_answer = (
        select(func.min(answer.created_at))
        .where(
            answer.contact_id == first_in.c.contact_id,
            answer.direction == "out",
            answer.kind.in_(("reply", "operator")),
            answer.status.not_in(("failed", "suppressed")),
            answer.created_at >= first_in.c.first_in,
        )
        .scalar_subquery()
    )
    pairs: TupleRows = await session.execute(select(first_in.c.first_in, first_answer))
    result["first_response"] = calc.first_response([tuple(row) for row in pairs])

    touches: TupleRows = await session.execute(
        select(f.touch, func.count(), func.sum(case((f.replied, 1), else_=0)))
        .where(f.status == "sent", f.sent_at >= start, f.sent_at < end)
        .group_by(f.touch)
    )
    result["follow_ups"] = calc.follow_up_touches([(t, n, int(r or 0)) for t, n, r in touches])

    calls: TupleRows = await session.execute(
        select(s.status, func.count()).where(s.created_at >= start, s.created_at < end).group_by(s.status)
    )
    result["calls"] = calc.call_counts([tuple(row) for row in calls])

    usage: TupleRows = await session.execute(
        select(m.model, func.sum(m.tokens_in), func.sum(m.tokens_out), func.count())
        .where(
            m.created_at >= start,
            m.created_at < end,
            (m.tokens_in.is_not(None)) | (m.tokens_out.is_not(None)),
        )
        .group_by(m.model)
    )
    by_model = {
        model or "unknown": {"in": int(t_in or 0), "out": int(t_out or 0), "messages": n}
        for model, t_in, t_out, n in usage
    }
    result["tokens"] = {
        "in": sum(v["in"] for v in by_model.values()),
        "out": sum(v["out"] for v in by_model.values()),
        "by_model": by_model,
    }
    result["period"] = {"from": start, "to": end, "timezone": period.tz.key, "days": len(period.days())}
    return result


@describe(
    "Funnel and activity analytics for a period",
    description="Days are the business timezone's (WORKING_TZ). Default period: the last 30 days, today included; "
    f"at most {calc.MAX_DAYS} days.",
    query=AnalyticsQuery,
    responses={200: AnalyticsOut},
    tags=("analytics",),
)
async def analytics(request: web.Request) -> web.Response:
    query = await read_query(request, AnalyticsQuery)
    service = request.app[AGENT]
    runtime, reporting = service.runtime, service.reporting
    try:
        period = calc.resolve_period(query.from_, query.to, now=runtime.clock.now(), tz=service.business_tz)
    except calc.PeriodError as exc:
        raise HTTPError(400, str(exc)) from None
    key, now = (period.start, period.end), runtime.clock.now()
    answer = reporting.cached(key, now)
    if answer is None:
        async with reporting.session() as session:
            answer = AnalyticsOut.model_validate(await compute(session, period))
        reporting.remember(key, answer, now)
    return json_response(answer)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/analytics", analytics)
