"""What the managers' routes share: a contact's phone in the path or the query, times in query
strings, the contact-or-404 lookup, and the translation of a refused action into an answer."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Annotated, Any

from aiohttp import web
from pydantic import AwareDatetime, BeforeValidator
from sqlalchemy import RowMapping

from agent_service.actions import Conflict, NotBookable, NotFound
from agent_service.context import AGENT
from agent_service.db import repository as repo
from parley_shared.db import Session
from parley_shared.http import HTTPError
from parley_shared.phone import DEFAULT_REGION, PhoneError, typed_address

PHONE_PARAM = {
    "phone": "E.164, or a LID chat id (...@lid) for a chat without a number; national formats are read in "
    "PHONE_DEFAULT_REGION (encode + as %2B)"
}
_OFFSET_LOST_PLUS = re.compile(r" (\d{2}:?\d{2})$")


def restore_offset_plus(value: Any) -> Any:
    """An unencoded ``+05:00`` in a query string arrives as `` 05:00``: put the plus back."""
    return _OFFSET_LOST_PLUS.sub(r"+\1", value) if isinstance(value, str) else value


QueryDatetime = Annotated[AwareDatetime, BeforeValidator(restore_offset_plus)]


def parse_phone(request: web.Request) -> str:
    """The ``{phone}`` of the route, as a contact address (400 if it is none)."""
    return query_phone(request.match_info["phone"], region(request))


def region(request: web.Request) -> str:
    """``PHONE_DEFAULT_REGION``: where a number typed without its country code is read."""
    agent = request.app.get(AGENT)
    return agent.settings.phone_default_region if agent is not None else DEFAULT_REGION


def query_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """A phone given by a manager, as E.164 (national formats read in ``region``), or a LID chat
    id as it is (400 if it is neither)."""
    try:
        return typed_address(raw, region)
    except PhoneError as exc:
        raise HTTPError(400, f"invalid phone: {exc}") from None


async def contact_or_404(session: Session, phone: str) -> RowMapping:
    """The contact with this phone, or a 404 for the caller's route."""
    contact = await repo.contact_by_phone(session, phone)
    if contact is None:
        raise HTTPError(404, "no contact with this phone")
    return contact


@contextlib.contextmanager
def action_errors() -> Iterator[None]:
    """Translate an action's refusal (``agent_service.actions``) into the JSON API's answer."""
    try:
        yield
    except NotFound as exc:
        raise HTTPError(404, str(exc)) from None
    except Conflict as exc:
        raise HTTPError(409, str(exc)) from None
    except NotBookable as exc:
        raise HTTPError(422, str(exc), proposed_slots=[s.isoformat() for s in exc.proposed_slots]) from None
