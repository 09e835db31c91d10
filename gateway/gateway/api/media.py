"""Files prospects sent, for managers (bearer token like every management route).

* ``GET /media/{key}`` -> the file (``key`` is ``media.stored`` of the message, as the agent's
  conversation API shows it), always as a download: ``Content-Disposition: attachment``,
  ``X-Content-Type-Options: nosniff`` and a sandboxing ``Content-Security-Policy``, so that a file
  claiming to be a page never runs in a browser. 404 for a key the gateway does not keep (never
  kept, or erased).
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web
from sqlalchemy import select

from gateway.context import GATEWAY
from gateway.db import tables
from parley_shared.http import HTTPError
from parley_shared.openapi import Response, describe


@describe(
    "A file a prospect sent (a download)",
    path_params={"key": "media.stored of the message"},
    responses={200: Response("The file", media_type="application/octet-stream"), 404: "No such file"},
    tags=("media",),
)
async def get_media(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    key = request.match_info["key"]
    t = tables.media_files
    async with gateway.runtime.sessions() as session:
        row = (await session.execute(select(t).where(t.c.key == key))).first()
    if row is None:
        raise HTTPError(404, "no such file")
    try:
        path = gateway.media_store.path(key)
    except ValueError:
        raise HTTPError(404, "no such file") from None
    if not path.is_file():
        raise HTTPError(404, "the file is no longer kept")
    name = row.file_name or f"{row.kind}-{key[:8]}"
    headers = {
        "Content-Type": row.mime_type,
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "private, no-store",
    }
    return web.FileResponse(path, headers=headers)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/media/{key}", get_media, name="media")
