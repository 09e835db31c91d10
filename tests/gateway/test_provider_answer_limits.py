"""Provider answers are read up to a cap, never whole first: a 150 MiB Graph lookup answer took
the gateway from 153 to 664 MiB, a 60 MiB Wappi ``file_b64`` to 354 MiB.

Every answer is capped at a few MiB; those that may carry a media file as base64 (Wappi's media
download and its poll pages) at about 1.4 x ``MAX_MEDIA_BYTES``. The memory each call held at
its peak is measured with ``tracemalloc`` (the server's answer is built before measuring).
"""

from __future__ import annotations

import asyncio
import base64
import json
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.domain.retry import Outcome
from gateway.providers.base import MAX_ANSWER_BYTES, HttpProvider, MediaError, ProviderUnavailable, SendError
from gateway.providers.meta import MetaProvider
from gateway.providers.wappi import WappiProvider
from gateway.settings import GatewaySettings
from parley_shared.clock import ManualClock
from parley_shared.contracts import MediaRef, OutgoingKind, OutgoingMessage
from tests.support.raw_http import RawHTTPServer, chunked, head, path, trickle

MiB = 1024 * 1024
MESSAGE = OutgoingMessage(
    message_id="m1", correlation_id="c1", phone="+77010000001", text="hi", kind=OutgoingKind.REPLY
)


def padded_json(size: int, **fields: Any) -> bytes:
    """A valid JSON object with ``fields``, padded to ``size`` bytes."""
    base = json.dumps({**fields, "padding": ""}).encode()
    return json.dumps({**fields, "padding": "x" * (size - len(base))}).encode()


def answering(routes: dict[str, bytes], *, framing: str = "chunked") -> RawHTTPServer:
    """Answers each path with its body, framed in advance (only the client's memory is measured)."""
    framed = {}
    for route, body in routes.items():
        if framing == "chunked":
            framed[route] = head(Transfer_Encoding="chunked", Content_Type="application/json") + chunked(body)
        else:
            framed[route] = head(Content_Length=str(len(body)), Content_Type="application/json") + body

    async def answer(request: bytes, writer: asyncio.StreamWriter) -> None:
        await trickle(writer, framed[path(request)])

    return RawHTTPServer(answer)


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """Yields a list that holds, afterwards, the peak bytes allocated inside the block."""
    peak: list[int] = []
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


Make = Callable[..., Awaitable[Any]]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    opened: list[HttpProvider | RawHTTPServer] = []

    async def build(kind: type[HttpProvider], server: RawHTTPServer, **overrides: Any) -> Any:
        await server.start()
        opened.append(server)
        values: dict[str, Any] = {
            "app_env": "test",
            "meta_graph_base_url": server.url,
            "meta_access_token": "t",
            "meta_phone_number_id": "1",
            "wappi_base_url": server.url,
            "wappi_token": "t",
            "wappi_profile_id": "p",
            "send_timeout_s": 20,
            **overrides,
        }
        provider = kind(GatewaySettings(**values), ManualClock(datetime(2026, 1, 5, 7, 0, tzinfo=UTC)))  # type: ignore[call-arg]
        await provider.start()
        opened.append(provider)
        return provider

    yield build
    for item in reversed(opened):
        await item.close()


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_a_huge_graph_media_lookup_answer_is_refused_without_being_held(make: Make, framing: str) -> None:
    server = answering(
        {
            "/v21.0/voice": padded_json(40 * MiB, url="http://127.0.0.1:9/file", mime_type="audio/ogg"),
        },
        framing=framing,
    )
    meta: MetaProvider = await make(MetaProvider, server)
    with peak_memory() as peak, pytest.raises(MediaError):
        await meta.download_media(MediaRef(media_id="voice", mime_type="audio/ogg"))
    assert peak[0] < 3 * MAX_ANSWER_BYTES, f"held {peak[0] / MiB:.1f} MiB of a 40 MiB answer"


async def test_a_huge_wappi_file_b64_is_refused_without_being_held(make: Make) -> None:
    limit = 2 * MiB
    server = answering(
        {
            "/api/sync/message/media/download": padded_json(
                0, status="done", file_b64=base64.b64encode(bytes(12 * MiB)).decode()
            )
        }
    )
    wappi: WappiProvider = await make(WappiProvider, server, max_media_bytes=limit)
    with peak_memory() as peak, pytest.raises(MediaError):
        await wappi.download_media(MediaRef(media_id="PTT1", mime_type="audio/ogg"))
    assert peak[0] < 3 * wappi.media_answer_bytes < 16 * MiB, f"held {peak[0] / MiB:.1f} MiB of a 16 MiB answer"


async def test_a_wappi_file_b64_within_the_limit_still_arrives(make: Make) -> None:
    data = bytes(range(256)) * (6 * 1024)  # 1.5 MiB, under a 2 MiB limit, 2 MiB as base64
    server = answering(
        {
            "/api/sync/message/media/download": json.dumps(
                {"status": "done", "file_b64": base64.b64encode(data).decode()}
            ).encode()
        }
    )
    wappi: WappiProvider = await make(WappiProvider, server, max_media_bytes=2 * MiB)
    media = await wappi.download_media(MediaRef(media_id="PTT1", mime_type="audio/ogg"))
    assert media.data == data


async def test_a_wappi_poll_page_over_its_cap_fails_the_poll(make: Make) -> None:
    message = {"id": "A1", "type": "chat", "from": "77010000001@c.us", "fromMe": False, "time": 1, "body": "hi"}
    server = answering({"/api/sync/messages/all/get": padded_json(10 * MiB, status="done", messages=[message])})
    wappi: WappiProvider = await make(WappiProvider, server, max_media_bytes=2 * MiB)
    with peak_memory() as peak, pytest.raises(ProviderUnavailable, match="more than"):
        await wappi.fetch_page(limit=10, offset=0)
    assert peak[0] < 3 * wappi.media_answer_bytes


async def test_a_send_answered_with_a_huge_body_is_an_unknown_outcome(make: Make) -> None:
    """Its message id is somewhere in there: the send may have gone out, so it is never retried."""
    server = answering({"/v21.0/1/messages": padded_json(10 * MiB, messages=[{"id": "wamid.X"}])})
    meta: MetaProvider = await make(MetaProvider, server)
    with peak_memory() as peak, pytest.raises(SendError) as caught:
        await meta.send(MESSAGE)
    assert caught.value.failure.outcome is Outcome.AMBIGUOUS
    assert peak[0] < 3 * MAX_ANSWER_BYTES
