"""The ignore list over HTTP (bearer token).

* ``GET /ignore-list`` -> ``{"numbers": [{"phone", "note", "source", "created_at"}]}``
* ``POST /ignore-list`` ``{"phone": any format, "note"?}`` -> 201 (added) or 200 (already there)
* ``DELETE /ignore-list/{phone}`` -> 204; 404 when not listed; 409 for a number that comes from
  ``IGNORED_NUMBERS`` (remove it there: configuration is re-applied at every start).
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from gateway.context import GATEWAY
from parley_shared.http import HTTPError, json_response, read_model
from parley_shared.openapi import describe
from parley_shared.phone import PhoneError, typed_address


class AddNumber(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(
        min_length=1, max_length=64, description="Any format (national in PHONE_DEFAULT_REGION); stored as E.164"
    )
    note: str | None = Field(default=None, max_length=200)


class IgnoredOut(BaseModel):
    phone: str
    note: str | None
    source: str
    created_at: datetime


class IgnoreListOut(BaseModel):
    """The numbers whose messages are ignored."""

    numbers: list[IgnoredOut]


class AddedOut(BaseModel):
    """The number as stored, and whether it was new."""

    phone: str
    added: bool


def _e164(request: web.Request, value: str) -> str:
    try:
        return typed_address(value, request.app[GATEWAY].settings.phone_default_region)
    except PhoneError as exc:
        raise HTTPError(400, f"not a phone number: {exc}") from None


@describe("List the ignore list", responses={200: IgnoreListOut}, tags=("ignore list",))
async def list_numbers(request: web.Request) -> web.Response:
    numbers = await request.app[GATEWAY].ignore_list.list()
    return json_response(
        IgnoreListOut(
            numbers=[IgnoredOut(phone=n.phone, note=n.note, source=n.source, created_at=n.created_at) for n in numbers]
        )
    )


@describe(
    "Add a number to the ignore list",
    body=AddNumber,
    responses={201: AddedOut, 200: AddedOut, 400: "Not a phone number"},
    tags=("ignore list",),
)
async def add_number(request: web.Request) -> web.Response:
    body = await read_model(request, AddNumber)
    phone = _e164(request, body.phone)
    added = await request.app[GATEWAY].ignore_list.add(phone, body.note)
    return json_response(AddedOut(phone=phone, added=added), status=201 if added else 200)


@describe(
    "Remove a number from the ignore list",
    path_params={"phone": "The number, any format (URL-encode the +)"},
    responses={204: "Removed", 404: "Not on the list", 409: "Configured in IGNORED_NUMBERS"},
    tags=("ignore list",),
)
async def remove_number(request: web.Request) -> web.Response:
    ignore_list = request.app[GATEWAY].ignore_list
    phone = _e164(request, request.match_info["phone"])
    if phone in ignore_list.configured:
        raise HTTPError(409, "this number comes from IGNORED_NUMBERS; remove it there")
    if not await ignore_list.remove(phone):
        raise HTTPError(404, "number is not on the ignore list")
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ignore-list", list_numbers, name="ignore-list")
    app.router.add_post("/ignore-list", add_number, name="ignore-list-add")
    app.router.add_delete("/ignore-list/{phone}", remove_number, name="ignore-list-remove")
