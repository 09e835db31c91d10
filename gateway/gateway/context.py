"""The gateway's wired components, reachable from route handlers as ``request.app[GATEWAY]``."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.ignore_list import IgnoreList
from gateway.ingest import Ingestor
from gateway.media_store import MediaStore
from gateway.outbound import OutboundLog
from gateway.privacy import GatewayPrivacy
from gateway.providers.base import WhatsAppProvider
from gateway.settings import GatewaySettings
from gateway.workers.media import MediaWorker
from gateway.workers.poller import WappiPoller
from gateway.workers.sender import AccountPacer, Sender
from gateway.workers.transcriber import Transcriber
from parley_shared.service import Runtime


@dataclass
class Gateway:
    settings: GatewaySettings
    runtime: Runtime
    provider: WhatsAppProvider
    ignore_list: IgnoreList
    outbound: OutboundLog
    ingestor: Ingestor
    pacer: AccountPacer
    sender: Sender
    transcriber: Transcriber
    media_store: MediaStore
    media_worker: MediaWorker
    poller: WappiPoller | None
    privacy: GatewayPrivacy


GATEWAY = web.AppKey("gateway", Gateway)
