"""Managers' contacts API: the filtered, paginated list, manager overrides and the CSV export.

``GET /contacts/{phone}`` (one contact with its conversation) lives in ``api/conversation.py``.
Phones leave this API in full E.164 (managers call them back) but never reach a log line.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ColumnElement, and_, or_, select, update

from agent_service.api.params import PHONE_PARAM, QueryDatetime, parse_phone
from agent_service.context import AGENT
from agent_service.db import tables
from agent_service.domain.followup_policy import StopReason
from parley_shared.db import Session, SessionFactory
from parley_shared.http import HTTPError, json_response, read_model, read_query
from parley_shared.openapi import Response, describe

log = structlog.get_logger(__name__)

Outcome = Literal["open", "agreed", "declined", "uncertain"]
Stage = Literal["situation", "problem", "implication", "need_payoff"]
Category = Literal["prospect", "spam", "personal", "supplier", "job_seeker", "wrong_number", "other"]
PAGE_MAX = 200
EXPORT_BATCH = 500
_PHONE_LIKE = re.compile(r"^[\d\s+\-().]+$")


class ContactFilters(BaseModel):
    """Query parameters shared by the list and the CSV export."""

    model_config = ConfigDict(extra="forbid")

    is_client: bool | None = Field(None, description="true: client_status=client; false: client_status=non_client")
    outcome: Outcome | None = Field(None, description="The prospect's outcome")
    stage: Stage | None = Field(None, description="SPIN stage (contacts.spin_stage)")
    needs_human: bool | None = Field(None, description="Flagged for a manager")
    owner: Literal["ai", "human"] | None = Field(None, description="Who holds the conversation")
    q: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Search: name contains (case-insensitive); a phone-like value also matches phone digits",
    )
    updated_since: QueryDatetime | None = Field(
        None, description="ISO 8601 with an offset (encode + as %2B), e.g. 2026-01-05T00:00:00Z"
    )


class ContactListQuery(ContactFilters):
    cursor: str | None = Field(None, max_length=200, description="next_cursor of the previous page")
    limit: int = Field(50, ge=1, le=PAGE_MAX, description=f"Page size (1..{PAGE_MAX})")


class ContactOut(BaseModel):
    """A contact as managers see it (vocabulary in ``agent_service/db/tables.py``)."""

    id: int
    phone: str = Field(description="E.164")
    name: str | None
    client_status: str = Field(description="unknown | client | non_client")
    client_category: str | None
    classification_reason: str | None
    classification_confidence: float | None
    classified_by: str | None = Field(description="moderator | manager")
    spin_stage: str
    outcome: str
    owner: str = Field(description="ai | human")
    owner_name: str | None
    needs_human: bool
    needs_human_reason: str | None
    language: str | None
    provider: str | None
    notes: str | None
    follow_ups_stopped: bool
    follow_ups_stop_reason: str | None
    first_seen_at: datetime
    last_inbound_at: datetime | None
    last_outbound_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ContactPage(BaseModel):
    """One page of contacts, newest update first."""

    items: list[ContactOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")


class ContactPatch(BaseModel):
    """A manager's override. Fields left out are unchanged; ``notes: null`` clears the notes."""

    model_config = ConfigDict(extra="forbid")

    client_status: Literal["client", "non_client"] | None = None
    client_category: Category | None = Field(
        None, description="With client_status: prospect for clients; spam, personal, ... for non-clients"
    )
    reason: str | None = Field(None, min_length=1, max_length=500, description="Why (required with client_status)")
    outcome: Outcome | None = None
    notes: str | None = Field(None, max_length=10_000)

    @model_validator(mode="after")
    def _consistent(self) -> ContactPatch:
        given = self.model_fields_set
        if not given & {"client_status", "outcome", "notes"}:
            raise ValueError("nothing to change: give client_status, outcome or notes")
        if "client_status" in given and self.client_status is None:
            raise ValueError("client_status cannot be null")
        if "outcome" in given and self.outcome is None:
            raise ValueError("outcome cannot be null")
        if self.client_status is None and (self.reason is not None or self.client_category is not None):
            raise ValueError("reason and client_category go with client_status")
        if self.client_status is not None and self.reason is None:
            raise ValueError("client_status needs a reason")
        if self.client_status == "client" and self.client_category not in (None, "prospect"):
            raise ValueError("a client's category is prospect")
        if self.client_status == "non_client" and self.client_category == "prospect":
            raise ValueError("a non-client's category cannot be prospect")
        return self


# ---------------------------------------------------------------------------- queries


class CursorError(ValueError):
    pass


def encode_cursor(updated_at: datetime, contact_id: int) -> str:
    raw = json.dumps([updated_at.isoformat(), contact_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (updated_at, id) a page ended at; :class:`CursorError` for anything that is not a cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, contact_id = json.loads(raw)
        when = datetime.fromisoformat(stamp)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, RecursionError):
        raise CursorError("invalid cursor") from None
    if when.tzinfo is None or type(contact_id) is not int:
        raise CursorError("invalid cursor")
    return when, contact_id


def filter_clauses(filters: ContactFilters) -> list[ColumnElement[bool]]:
    c = tables.contacts.c
    where: list[ColumnElement[bool]] = []
    if filters.is_client is not None:
        where.append(c.client_status == ("client" if filters.is_client else "non_client"))
    if filters.outcome is not None:
        where.append(c.outcome == filters.outcome)
    if filters.stage is not None:
        where.append(c.spin_stage == filters.stage)
    if filters.needs_human is not None:
        where.append(c.needs_human == filters.needs_human)
    if filters.owner is not None:
        where.append(c.owner == filters.owner)
    if filters.q is not None:
        match = c.name.icontains(filters.q, autoescape=True)
        if not filters.q.isascii():  # SQLite folds only ASCII case: try the usual spellings of a name too
            variants = {filters.q.lower(), filters.q.upper(), filters.q.title(), filters.q.capitalize()}
            match = or_(match, *(c.name.contains(v, autoescape=True) for v in sorted(variants)))
        digits = re.sub(r"\D", "", filters.q)
        if digits and _PHONE_LIKE.match(filters.q):
            match = or_(match, c.phone.contains(digits, autoescape=True))
        where.append(match)
    if filters.updated_since is not None:
        where.append(c.updated_at >= filters.updated_since)
    return where


async def fetch_page(
    session: Session, filters: ContactFilters, after: tuple[datetime, int] | None, limit: int
) -> tuple[Sequence[Mapping[str, Any]], tuple[datetime, int] | None]:
    """Up to ``limit`` contacts after ``after`` in (updated_at, id) descending order, and the next position."""
    c = tables.contacts.c
    where = filter_clauses(filters)
    if after is not None:
        when, contact_id = after
        where.append(or_(c.updated_at < when, and_(c.updated_at == when, c.id < contact_id)))
    stmt = select(tables.contacts).where(*where).order_by(c.updated_at.desc(), c.id.desc()).limit(limit + 1)
    rows = (await session.execute(stmt)).mappings().all()
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], (last["updated_at"], last["id"])


# ---------------------------------------------------------------------------- routes


@describe(
    "List contacts (filters, cursor pagination)",
    query=ContactListQuery,
    responses={200: ContactPage},
    tags=("contacts",),
)
async def list_contacts(request: web.Request) -> web.Response:
    query = await read_query(request, ContactListQuery)
    try:
        after = decode_cursor(query.cursor) if query.cursor else None
    except CursorError as exc:
        raise HTTPError(400, str(exc)) from None
    async with request.app[AGENT].runtime.sessions() as session:
        rows, next_position = await fetch_page(session, query, after, query.limit)
    page = ContactPage(
        items=[ContactOut.model_validate(dict(row)) for row in rows],
        next_cursor=encode_cursor(*next_position) if next_position else None,
    )
    return json_response(page)


def _override_values(patch: ContactPatch, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {"updated_at": now}
    if patch.client_status is not None:
        values |= {
            "client_status": patch.client_status,
            "client_category": patch.client_category or ("prospect" if patch.client_status == "client" else "other"),
            "classification_reason": patch.reason,
            "classification_confidence": 1.0,
            "classified_by": "manager",
        }
    if patch.outcome is not None:
        values["outcome"] = patch.outcome
    if "notes" in patch.model_fields_set:
        values["notes"] = patch.notes
    return values


def _follow_up_stop_reason(patch: ContactPatch) -> StopReason | None:
    """Why a manager's override ends the contact's follow-ups for good (None: it does not)."""
    if patch.client_status == "non_client":
        return StopReason.NON_CLIENT
    if patch.outcome is not None and patch.outcome in (StopReason.AGREED, StopReason.DECLINED):
        return StopReason(patch.outcome)
    return None


@describe(
    "Override a contact's client status, outcome or notes",
    description="A client-status override is recorded with classified_by=manager and the reason. "
    "Marking a non-client or a definitive outcome (agreed, declined) stops pending follow-ups.",
    body=ContactPatch,
    path_params=PHONE_PARAM,
    responses={200: ContactOut, 404: "No contact with this phone"},
    tags=("contacts",),
)
async def patch_contact(request: web.Request) -> web.Response:
    phone = parse_phone(request)
    patch = await read_model(request, ContactPatch)
    runtime = request.app[AGENT].runtime
    now = runtime.clock.now()
    c = tables.contacts.c
    async with runtime.sessions() as session, session.begin():
        contact_id = await session.scalar(select(c.id).where(c.phone == phone).with_for_update())
        if contact_id is None:
            raise HTTPError(404, "no contact with this phone")
        await session.execute(update(tables.contacts).where(c.id == contact_id).values(_override_values(patch, now)))
        stop_reason = _follow_up_stop_reason(patch)
        if stop_reason is not None:
            await request.app[AGENT].follow_ups.stop(session, contact_id, stop_reason, now, permanent=True)
        row = (await session.execute(select(tables.contacts).where(c.id == contact_id))).mappings().one()
    log.info("contacts.overridden", contact_id=contact_id, fields=sorted(patch.model_fields_set))
    return json_response(ContactOut.model_validate(dict(row)))


CSV_COLUMNS = (
    "phone",
    "name",
    "client_status",
    "client_category",
    "classification_reason",
    "classified_by",
    "spin_stage",
    "outcome",
    "owner",
    "owner_name",
    "needs_human",
    "needs_human_reason",
    "language",
    "notes",
    "first_seen_at",
    "last_inbound_at",
    "last_outbound_at",
    "updated_at",
)
_FREE_TEXT = frozenset({"name", "classification_reason", "owner_name", "needs_human_reason", "notes"})


def csv_cell(column: str, value: Any) -> str:
    """One CSV cell. Free text that a spreadsheet would run as a formula is quoted with ``'``."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")  # as in the JSON API
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if column in _FREE_TEXT and text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


async def _stream_csv(response: web.StreamResponse, sessions: SessionFactory, filters: ContactFilters) -> int:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    await response.write(("\ufeff" + buffer.getvalue()).encode())  # the BOM makes spreadsheets read UTF-8
    count, after = 0, None
    while True:
        async with sessions() as session:
            rows, after = await fetch_page(session, filters, after, EXPORT_BATCH)
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([csv_cell(col, row[col]) for col in CSV_COLUMNS] for row in rows)
        await response.write(buffer.getvalue().encode())
        count += len(rows)
        if after is None:
            return count


@describe(
    "Export contacts as CSV (same filters as the list)",
    query=ContactFilters,
    responses={200: Response("UTF-8 CSV (with BOM), one row per contact", media_type="text/csv")},
    tags=("contacts",),
)
async def export_contacts(request: web.Request) -> web.StreamResponse:
    filters = await read_query(request, ContactFilters)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="contacts.csv"',
        }
    )
    await response.prepare(request)
    count = await _stream_csv(response, request.app[AGENT].runtime.sessions, filters)
    await response.write_eof()
    log.info("contacts.exported", rows=count)
    return response


def add_routes(app: web.Application) -> None:
    # export.csv before any /contacts/{phone} route (aiohttp also prefers the fixed path).
    app.router.add_get("/contacts", list_contacts)
    app.router.add_get("/contacts/export.csv", export_contacts)
    app.router.add_patch("/contacts/{phone}", patch_contact)
