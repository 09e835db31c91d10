"""Meta WhatsApp Cloud API webhook (registered only with ``WHATSAPP_PROVIDER=meta``; public routes).

* ``GET /webhook`` -- subscription check: ``hub.mode=subscribe`` and ``hub.verify_token`` equal to
  ``META_VERIFY_TOKEN`` -> 200 with ``hub.challenge`` as the body; anything else -> 403.
* ``POST /webhook`` -- ``X-Hub-Signature-256`` is checked against the RAW body with
  ``META_APP_SECRET`` (constant time): missing -> 401, wrong -> 403, and nothing is published.
  Junk -> 400. A valid body is committed to ``message_logs`` + outbox BEFORE the 200 (an
  acknowledged webhook can never be lost); publishing happens after the answer. A database that
  is away -> 503, so Meta retries (and the retry is deduplicated on the wamid).
"""

from __future__ import annotations

import hmac

import structlog
from aiohttp import web
from pydantic import BaseModel

from gateway.context import GATEWAY
from gateway.domain.admission import PayloadError, SkippedItem
from gateway.domain.meta import (
    SIGNATURE_HEADER,
    SignatureCheck,
    check_signature,
    parse_body,
    parse_webhook,
    split_stale,
)
from gateway.ingest import count_skipped
from parley_shared.http import HTTPError, json_response, public
from parley_shared.openapi import Response, describe

log = structlog.get_logger(__name__)


class WebhookAck(BaseModel):
    """The webhook was stored; what it held."""

    received: int
    statuses: int


@public
@describe(
    "Meta webhook subscription check",
    responses={200: Response("hub.challenge, echoed", media_type="text/plain"), 403: "Wrong verify token"},
    tags=("webhooks",),
)
async def verify(request: web.Request) -> web.Response:
    settings = request.app[GATEWAY].settings
    expected = settings.meta_verify_token.get_secret_value() if settings.meta_verify_token else ""
    given = request.query.get("hub.verify_token", "")
    challenge = request.query.get("hub.challenge", "")
    if (
        not expected
        or request.query.get("hub.mode") != "subscribe"
        or not hmac.compare_digest(given.encode(), expected.encode())
        or not challenge
    ):
        raise HTTPError(403, "verification failed")
    return web.Response(text=challenge[:1000], content_type="text/plain")


@public
@describe(
    "Meta webhook: messages and delivery statuses (signed with X-Hub-Signature-256)",
    responses={
        200: WebhookAck,
        400: "Not a WhatsApp webhook body",
        401: "Signature missing",
        403: "Signature wrong",
        503: "Storage unavailable, retry",
    },
    tags=("webhooks",),
)
async def receive(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    secret = gateway.settings.meta_app_secret.get_secret_value() if gateway.settings.meta_app_secret else ""
    raw = await request.read()
    if not secret:
        raise HTTPError(403, "webhook signing is not configured (META_APP_SECRET)")
    check = check_signature(secret.encode(), raw, request.headers.get(SIGNATURE_HEADER))
    if check is SignatureCheck.MISSING:
        raise HTTPError(401, f"missing {SIGNATURE_HEADER}")
    if check is SignatureCheck.INVALID:
        log.warning("webhook.bad_signature")
        raise HTTPError(403, "invalid signature")
    try:
        batch = parse_webhook(parse_body(raw))
    except PayloadError as exc:
        raise HTTPError(400, str(exc)) from None
    if batch.malformed:
        log.warning("webhook.malformed_items", count=batch.malformed)
    count_skipped("meta", batch.skipped)
    messages, stale = split_stale(batch.messages, gateway.runtime.clock.now())
    if stale:
        count_skipped("meta", [SkippedItem("stale", m.provider_message_id, m.sender) for m in stale])
        oldest = min(m.sent_at for m in stale)
        log.warning("webhook.stale_messages", count=len(stale), oldest_sent_at=oldest.isoformat())
    # A database that is away raises a transient error: the shared error middleware answers 503.
    # Meta is answered once the batch committed; its publish goes on after the answer.
    await gateway.ingestor.ingest(messages, statuses=batch.statuses)
    return json_response(WebhookAck(received=len(messages), statuses=len(batch.statuses)))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/webhook", verify, name="webhook-verify")
    app.router.add_post("/webhook", receive, name="webhook-receive")
