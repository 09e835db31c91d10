"""Parameters the managers' routes share: a contact's phone in the path or the query, times in
query strings, and the contact-or-404 lookup."""

from __future__ import annotations

import re
from typing import Annotated, Any

from aiohttp import web
from pydantic import AwareDatetime, BeforeValidator
from sqlalchemy import RowMapping

from agent_service.db import repository as repo
from parley_shared.db import Session
from parley_shared.http import HTTPError
from parley_shared.phone import PhoneError, to_e164

PHONE_PARAM = {"phone": "E.164 (other formats are normalised; encode + as %2B)"}
_OFFSET_LOST_PLUS = re.compile(r" (\d{2}:?\d{2})$")


def restore_offset_plus(value: Any) -> Any:
    """An unencoded ``+05:00`` in a query string arrives as `` 05:00``: put the plus back."""
    return _OFFSET_LOST_PLUS.sub(r"+\1", value) if isinstance(value, str) else value


QueryDatetime = Annotated[AwareDatetime, BeforeValidator(restore_offset_plus)]


def parse_phone(request: web.Request) -> str:
    """The ``{phone}`` of the route, as E.164 (400 if it is not a phone)."""
    return query_phone(request.match_info["phone"])


def query_phone(raw: str) -> str:
    """A phone given by a manager, as E.164 (400 if it is not a phone)."""
    try:
        return to_e164(raw)
    except PhoneError as exc:
        raise HTTPError(400, f"invalid phone: {exc}") from None


async def contact_or_404(session: Session, phone: str) -> RowMapping:
    """The contact with this phone, or a 404 for the caller's route."""
    contact = await repo.contact_by_phone(session, phone)
    if contact is None:
        raise HTTPError(404, "no contact with this phone")
    return contact
