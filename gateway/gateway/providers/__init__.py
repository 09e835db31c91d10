"""WhatsApp providers behind one interface (``base.WhatsAppProvider``), chosen by ``WHATSAPP_PROVIDER``."""

from __future__ import annotations

from gateway.media_store import MediaStore
from gateway.providers.base import WhatsAppProvider
from gateway.providers.meta import MetaProvider
from gateway.providers.sandbox import SandboxProvider
from gateway.providers.wappi import WappiProvider
from gateway.settings import GatewaySettings, ProviderName
from gateway.uploads import UploadedMedia
from parley_shared.clock import Clock
from parley_shared.db import SessionFactory
from parley_shared.shutdown import Drains


def build_provider(
    settings: GatewaySettings, sessions: SessionFactory, clock: Clock, store: MediaStore, drains: Drains
) -> WhatsAppProvider:
    if settings.provider is ProviderName.WAPPI:
        return WappiProvider(settings, clock)
    if settings.provider is ProviderName.META:
        uploads = UploadedMedia(
            sessions,
            clock,
            provider=ProviderName.META.value,
            account=settings.meta_phone_number_id,
            reuse_days=settings.meta_media_reuse_days,
        )
        return MetaProvider(settings, clock, uploads)
    return SandboxProvider(
        sessions,
        clock,
        settings.max_media_bytes,
        store=store,
        drains=drains,
        batch_max_size=settings.batch_max_size,
        failure_rate=settings.sandbox_send_429_rate,
        retry_after_s=settings.sandbox_retry_after_s,
    )
