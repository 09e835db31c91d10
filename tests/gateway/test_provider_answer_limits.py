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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from gateway.domain.failures import FailureKind
from gateway.providers.base import MAX_ANSWER_BYTES, MediaError, ProviderUnavailable, SendError
from gateway.providers.meta import MetaProvider
from gateway.providers.wappi import WappiProvider
from parley_shared.contracts import MediaRef, OutgoingKind, OutgoingMessage
from tests.gateway.helpers import P, StartedProviders
from tests.support.raw_http import Answer, RawHTTPServer, RawServers, chunked, head, path, trickle

MiB = 1024 * 1024
MESSAGE = OutgoingMessage(
    message_id="m1", correlation_id="c1", phone="+77010000001", text="hi", kind=OutgoingKind.REPLY
)


def padded_json(size: int, **fields: Any) -> bytes:
    """A valid JSON object with ``fields``, padded to ``size`` bytes."""
    base = json.dumps({**fields, "padding": ""}).encode()
    return json.dumps({**fields, "padding": "x" * (size - len(base))}).encode()


def framed(routes: dict[str, bytes], *, framing: str = "chunked") -> Answer:
    """Answers each path with its body, framed in advance (only the client's memory is measured)."""
    ready = {}
    for route, body in routes.items():
        if framing == "chunked":
            ready[route] = head(Transfer_Encoding="chunked", Content_Type="application/json") + chunked(body)
        else:
            ready[route] = head(Content_Length=str(len(body)), Content_Type="application/json") + body

    async def answer(request: bytes, writer: asyncio.StreamWriter) -> None:
        await trickle(writer, ready[path(request)])

    return answer


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


async def on(providers: StartedProviders, kind: type[P], server: RawHTTPServer, **overrides: Any) -> P:
    """A provider of ``kind`` whose API is ``server``."""
    credentials = {"meta_access_token": "t", "meta_phone_number_id": "1", "wappi_token": "t", "wappi_profile_id": "p"}
    urls = {"meta_graph_base_url": server.url, "wappi_base_url": server.url}
    return await providers.start(kind, **credentials, **urls, **{"send_timeout_s": 20, **overrides})


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_a_huge_graph_media_lookup_answer_is_refused_without_being_held(
    providers: StartedProviders, raw_servers: RawServers, framing: str
) -> None:
    answer = framed(
        {
            "/v21.0/voice": padded_json(40 * MiB, url="http://127.0.0.1:9/file", mime_type="audio/ogg"),
        },
        framing=framing,
    )
    meta = await on(providers, MetaProvider, await raw_servers.serve(answer))
    with peak_memory() as peak, pytest.raises(MediaError):
        await meta.download_media(MediaRef(media_id="voice", mime_type="audio/ogg"))
    assert peak[0] < 3 * MAX_ANSWER_BYTES, f"held {peak[0] / MiB:.1f} MiB of a 40 MiB answer"


async def test_a_huge_wappi_file_b64_is_refused_without_being_held(
    providers: StartedProviders, raw_servers: RawServers
) -> None:
    limit = 2 * MiB
    answer = framed(
        {
            "/api/sync/message/media/download": padded_json(
                0, status="done", file_b64=base64.b64encode(bytes(12 * MiB)).decode()
            )
        }
    )
    wappi = await on(providers, WappiProvider, await raw_servers.serve(answer), max_media_bytes=limit)
    with peak_memory() as peak, pytest.raises(MediaError):
        await wappi.download_media(MediaRef(media_id="PTT1", mime_type="audio/ogg"))
    assert peak[0] < 3 * wappi.media_answer_bytes < 16 * MiB, f"held {peak[0] / MiB:.1f} MiB of a 16 MiB answer"


async def test_a_wappi_file_b64_within_the_limit_still_arrives(
    providers: StartedProviders, raw_servers: RawServers
) -> None:
    data = bytes(range(256)) * (6 * 1024)  # 1.5 MiB, under a 2 MiB limit, 2 MiB as base64
    answer = framed(
        {
            "/api/sync/message/media/download": json.dumps(
                {"status": "done", "file_b64": base64.b64encode(data).decode()}
            ).encode()
        }
    )
    wappi = await on(providers, WappiProvider, await raw_servers.serve(answer), max_media_bytes=2 * MiB)
    media = await wappi.download_media(MediaRef(media_id="PTT1", mime_type="audio/ogg"))
    assert media.data == data


async def test_a_wappi_poll_page_over_its_cap_fails_the_poll(
    providers: StartedProviders, raw_servers: RawServers
) -> None:
    message = {"id": "A1", "type": "chat", "from": "77010000001@c.us", "fromMe": False, "time": 1, "body": "hi"}
    answer = framed({"/api/sync/messages/all/get": padded_json(10 * MiB, status="done", messages=[message])})
    wappi = await on(providers, WappiProvider, await raw_servers.serve(answer), max_media_bytes=2 * MiB)
    with peak_memory() as peak, pytest.raises(ProviderUnavailable, match="more than"):
        await wappi.fetch_page(limit=10, offset=0)
    assert peak[0] < 3 * wappi.media_answer_bytes


async def test_a_send_answered_with_a_huge_body_is_an_unknown_outcome(
    providers: StartedProviders, raw_servers: RawServers
) -> None:
    """Its message id is somewhere in there: the send may have gone out, so it is never retried."""
    answer = framed({"/v21.0/1/messages": padded_json(10 * MiB, messages=[{"id": "wamid.X"}])})
    meta = await on(providers, MetaProvider, await raw_servers.serve(answer))
    with peak_memory() as peak, pytest.raises(SendError) as caught:
        await meta.send(MESSAGE)
    assert caught.value.failure.kind is FailureKind.AMBIGUOUS
    assert peak[0] < 3 * MAX_ANSWER_BYTES


async def test_an_answer_nested_deeper_than_the_parser_goes_is_junk_not_a_crash(
    providers: StartedProviders, raw_servers: RawServers
) -> None:
    """``json.loads`` raises RecursionError on such a body: it is read as "not JSON" instead."""
    answer = framed({"/v21.0/1/messages": b"[" * 100_000 + b"]" * 100_000})
    meta = await on(providers, MetaProvider, await raw_servers.serve(answer))
    with pytest.raises(SendError) as caught:
        await meta.send(MESSAGE)
    assert caught.value.failure.kind is FailureKind.PERMANENT  # a 200 without a message id, as for any junk
