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
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, RowMapping, and_, or_, select

from agent_service.actions import contacts as contacts_actions
from agent_service.actions.audit import Actor
from agent_service.actions.contacts import ContactPatch
from agent_service.api.params import PHONE_PARAM, QueryDatetime, action_errors, parse_phone
from agent_service.context import AGENT
from agent_service.db import tables
from agent_service.domain.vocabulary import Owner, ProspectOutcome, SpinStage
from parley_shared.db import Session, SessionFactory
from parley_shared.http import HTTPError, json_response, read_model, read_query
from parley_shared.openapi import Response, describe
from parley_shared.untrusted import json_loads

log = structlog.get_logger(__name__)

PAGE_MAX = 200
EXPORT_BATCH = 500
_PHONE_LIKE = re.compile(r"^[\d\s+\-().]+$")


class ContactFilters(BaseModel):
    """Query parameters shared by the list and the CSV export."""

    model_config = ConfigDict(extra="forbid")

    is_client: bool | None = Field(None, description="true: client_status=client; false: client_status=non_client")
    outcome: ProspectOutcome | None = Field(None, description="The prospect's outcome")
    stage: SpinStage | None = Field(None, description="SPIN stage (contacts.spin_stage)")
    needs_human: bool | None = Field(None, description="Flagged for a manager")
    owner: Owner | None = Field(None, description="Who holds the conversation")
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
    phone: str = Field(description="E.164, or the LID chat id (...@lid) of a chat that shows no number")
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
    chat_id: str | None = Field(None, description="The provider's own chat id the contact last wrote from")
    referral: dict[str, Any] | None = Field(
        None, description="The ad or post the conversation started from (source_id, source_type, headline ...)"
    )
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
        stamp, contact_id = json_loads(raw)
        when = datetime.fromisoformat(stamp)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
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
    session: Session,
    filters: ContactFilters,
    after: tuple[datetime, int] | None,
    limit: int,
    *,
    extra: Sequence[ColumnElement[bool]] = (),
) -> tuple[Sequence[RowMapping], tuple[datetime, int] | None]:
    """Up to ``limit`` contacts after ``after`` in (updated_at, id) descending order, and the next position.

    ``extra``: more conditions (the console's "held by me" and "held by others")."""
    c = tables.contacts.c
    where = [*filter_clauses(filters), *extra]
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
    with action_errors():
        row = await contacts_actions.override(request.app[AGENT].desk, phone, patch, Actor.api())
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
# What makes a spreadsheet cell a formula (full-width forms included: some spreadsheets fold them).
_FORMULA_START = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# Where a spreadsheet may split a line into cells, quotes or not: "," and ";" (the list separator
# of Excel in Russian and Kazakh locales).
_SPLIT = re.compile(r"([,;])")


def spreadsheet_text(text: str) -> str:
    """``text`` that no spreadsheet runs as a formula, however it splits the line.

    Control characters go (line breaks and tabs become spaces), and every piece that could
    become a cell -- the start, and whatever follows a ``,`` or ``;`` -- gets a leading ``'`` when
    it would start with a formula character (after spaces and quotes).
    """
    text = "".join(
        " " if char in "\t\r\n" else char for char in text if char in "\t\r\n" or unicodedata.category(char) != "Cc"
    )
    pieces = _SPLIT.split(text)
    for i in range(0, len(pieces), 2):  # even indexes: text between separators
        if pieces[i].lstrip(' "')[:1] in _FORMULA_START:
            pieces[i] = "'" + pieces[i]
    return "".join(pieces)


def csv_cell(column: str, value: Any) -> str:
    """One CSV cell (every cell is quoted by the writer). Free text is made formula-safe."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")  # as in the JSON API
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return spreadsheet_text(text) if column in _FREE_TEXT else text


async def _stream_csv(response: web.StreamResponse, sessions: SessionFactory, filters: ContactFilters) -> int:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL)
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
    reporting = request.app[AGENT].reporting
    async with reporting.slot():  # a 429 before anything is sent when too many reports run
        await response.prepare(request)
        count = await _stream_csv(response, reporting.sessions, filters)
        await response.write_eof()
    log.info("contacts.exported", rows=count)
    return response


def add_routes(app: web.Application) -> None:
    # export.csv before any /contacts/{phone} route (aiohttp also prefers the fixed path).
    app.router.add_get("/contacts", list_contacts)
    app.router.add_get("/contacts/export.csv", export_contacts)
    app.router.add_patch("/contacts/{phone}", patch_contact)
