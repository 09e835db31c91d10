"""Composition root of the gateway: settings in, a wired aiohttp application out.

Wiring: the provider chosen by ``WHATSAPP_PROVIDER`` -> one :class:`Ingestor` for every inbound
path (Wappi poller, Meta webhook, sandbox route) -> outbox -> ``incoming_messages`` /
``voice_transcription``; the transcriber consumes ``voice_transcription``; the sender consumes
``outgoing_messages`` and ``outgoing_campaign`` through one paced, prioritised account.

``clock`` and ``sleep`` are injectable so tests drive the sender's pacing and backoff without waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from gateway.api import erasure as erasure_api
from gateway.api import ignore_list as ignore_list_api
from gateway.api import media as media_api
from gateway.api import sandbox as sandbox_api
from gateway.api import stats as stats_api
from gateway.api import webhooks as webhooks_api
from gateway.context import GATEWAY, Gateway
from gateway.db import MIGRATIONS, tables
from gateway.ignore_list import IgnoreList
from gateway.ingest import Ingestor
from gateway.media import MediaKeeper
from gateway.media_store import MediaStore
from gateway.outbound import OutboundLog
from gateway.privacy import GatewayPrivacy, retention_rules
from gateway.providers import build_provider
from gateway.providers.wappi import WappiProvider
from gateway.settings import GatewaySettings, ProviderName
from gateway.workers.media import MediaWorker
from gateway.workers.poller import WappiPoller
from gateway.workers.sender import AccountPacer, Sender
from gateway.workers.transcriber import Transcriber
from parley_shared.clock import Clock
from parley_shared.retention import Retention
from parley_shared.service import service_app
from parley_shared.topology import CAMPAIGN, ERASURE, MEDIA, OUTGOING, VOICE

log = structlog.get_logger(__name__)
TRANSCRIBER_PREFETCH = 8
MEDIA_PREFETCH = 8


def create_app(
    settings: GatewaySettings,
    *,
    clock: Clock | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> web.Application:
    app, runtime = service_app(
        service="gateway",
        settings=settings,
        database_url=settings.database_url,
        migrations=MIGRATIONS,
        outbox_table=tables.outbox,
        inbox_table=tables.inbox,
        clock=clock,
    )
    pace_sleep = sleep or asyncio.sleep
    media_store = MediaStore(settings.media_dir)
    provider = build_provider(settings, runtime.sessions, runtime.clock, media_store, runtime.drains)
    ignore_list = IgnoreList(runtime.sessions, runtime.clock, settings.ignored_phones())
    outbound = OutboundLog(runtime, provider.name)
    ingestor = Ingestor(runtime, ignore_list, outbound)
    pacer = AccountPacer(
        rate_per_min=settings.send_rate_per_min,
        clock=runtime.clock,
        sleep=pace_sleep,
        provider=provider.name.value,
        concurrency=min(settings.send_concurrency, provider.max_concurrent_sends or settings.send_concurrency),
    )
    sender = Sender(
        runtime=runtime, provider=provider, outbound=outbound, pacer=pacer, settings=settings, sleep=pace_sleep
    )
    keeper = MediaKeeper(
        provider=provider,
        store=media_store,
        attempts=settings.media_download_attempts,
        backoff_s=settings.media_backoff_s,
        sleep=pace_sleep,
    )
    transcriber = Transcriber(runtime=runtime, keeper=keeper, settings=settings, sleep=pace_sleep)
    media_worker = MediaWorker(runtime=runtime, keeper=keeper)
    poller = (
        WappiPoller(runtime=runtime, provider=provider, ingestor=ingestor, settings=settings)
        if isinstance(provider, WappiProvider)
        else None
    )
    privacy = GatewayPrivacy(runtime.sessions, runtime.clock, settings, runtime.inbox, media_store)
    retention = Retention(runtime.sessions, runtime.clock, retention_rules(settings))
    gateway = Gateway(
        settings=settings,
        runtime=runtime,
        provider=provider,
        ignore_list=ignore_list,
        outbound=outbound,
        ingestor=ingestor,
        pacer=pacer,
        sender=sender,
        transcriber=transcriber,
        media_store=media_store,
        media_worker=media_worker,
        poller=poller,
        privacy=privacy,
    )
    app[GATEWAY] = gateway

    # Consumers: replies first (their own queue, full prefetch), campaign traffic with a small one.
    runtime.add_consumer(OUTGOING, sender.handle)
    runtime.add_consumer(CAMPAIGN, sender.handle, prefetch=settings.campaign_prefetch)
    runtime.add_consumer(VOICE, transcriber.handle, prefetch=TRANSCRIBER_PREFETCH)
    runtime.add_consumer(MEDIA, media_worker.handle, prefetch=MEDIA_PREFETCH)
    runtime.add_consumer(ERASURE, privacy.handle, prefetch=1)
    runtime.add_worker("sender-pacer", pacer.run)
    runtime.add_periodic("retention", retention.prune_once, interval_s=settings.retention_interval_s)
    if poller is not None:
        runtime.add_periodic("wappi-poller", poller.poll, interval_s=settings.poll_interval_s, backoff=poller.backoff())

    async def provider_health() -> dict[str, Any]:
        missing = settings.missing_credentials()
        result: dict[str, Any] = {"provider": provider.name.value, "missing": missing}
        result.update(await provider.health())
        if poller is not None:
            result["poller"] = await poller.health()
            result["ok"] = result["ok"] and result["poller"]["ok"]
        result["ok"] = result["ok"] and not missing
        return result

    async def stop_sending() -> None:
        pacer.close()  # messages still waiting for a turn go back to RabbitMQ
        await provider.release_waiters()  # parked long polls answer now: the server need not wait for them

    runtime.add_health_check("provider", provider_health)
    runtime.on_start(provider.start)  # before the runtime consumes; closed after it stopped
    runtime.on_start(ignore_list.sync_configured)  # the database is migrated by now
    runtime.on_stopping(stop_sending)
    runtime.on_stop(provider.close)
    runtime.on_stop(transcriber.close)

    ignore_list_api.add_routes(app)
    stats_api.add_routes(app)
    erasure_api.add_routes(app)
    media_api.add_routes(app)
    if settings.provider is ProviderName.SANDBOX:
        sandbox_api.add_routes(app)
    if settings.provider is ProviderName.META:
        webhooks_api.add_routes(app)
    missing = settings.missing_credentials()
    if missing:
        log.warning("gateway.provider_credentials_missing", provider=settings.provider.value, missing=missing)
    return app
