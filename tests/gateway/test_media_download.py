"""Media downloads arrive whole or fail typed: files of several MiB, slow servers, chunked and
close-delimited bodies, a ``Content-Length`` that lies, bodies over ``MAX_MEDIA_BYTES``.

``content.read(n)`` returns what happens to be buffered, not ``n`` bytes: a 1 MiB voice note came
back as 98,304 bytes. The providers now read to the end, counting.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.providers.base import MediaError
from gateway.providers.meta import MetaProvider
from parley_shared.contracts import MediaRef
from tests.gateway.helpers import LOCAL_MEDIA, StartedProviders
from tests.support.fake_meta import FakeMeta
from tests.support.raw_http import RawServers, chunked, head, trickle

MiB = 1024 * 1024
LIMIT = 2 * MiB  # MAX_MEDIA_BYTES of the tests that cross it


def payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)


@pytest.fixture
async def graph() -> AsyncIterator[FakeMeta]:
    fake = await FakeMeta().start()
    yield fake
    await fake.close()


@pytest.mark.parametrize("size", [1 * MiB, 5 * MiB, 12 * MiB])
async def test_a_voice_note_of_several_mib_arrives_whole(
    providers: StartedProviders, graph: FakeMeta, size: int
) -> None:
    data = payload(size)
    graph.media["voice"] = (data, "audio/ogg; codecs=opus")
    meta = await providers.start(
        MetaProvider,
        meta_graph_base_url=graph.url,
        meta_access_token=graph.access_token,
        meta_phone_number_id=graph.phone_number_id,
        **LOCAL_MEDIA,
    )
    media = await meta.download_media(MediaRef(media_id="voice", mime_type="audio/ogg"))
    assert len(media.data) == size and media.data == data


async def media_client(providers: StartedProviders, **overrides: Any) -> MetaProvider:
    """A provider to call ``fetch_file`` on (the file download every provider shares)."""
    return await providers.start(MetaProvider, **LOCAL_MEDIA, **overrides)


@pytest.mark.parametrize("framing", ["content-length", "chunked", "until-close"])
async def test_a_slow_server_is_read_to_the_end_whatever_the_framing(
    providers: StartedProviders, raw_servers: RawServers, framing: str
) -> None:
    data = payload(5 * MiB)

    async def answer(_request: bytes, writer: asyncio.StreamWriter) -> None:
        if framing == "content-length":
            writer.write(head(Content_Length=str(len(data)), Content_Type="audio/ogg"))
            await trickle(writer, data, chunk=48 * 1024, pause_s=0.002)
        elif framing == "chunked":
            writer.write(head(Transfer_Encoding="chunked", Content_Type="audio/ogg"))
            await trickle(writer, chunked(data, 40 * 1024), chunk=32 * 1024, pause_s=0.002)
        else:
            writer.write(head(Connection="close", Content_Type="audio/ogg"))
            await trickle(writer, data, chunk=48 * 1024, pause_s=0.002)

    server = await raw_servers.serve(answer)
    media = await (await media_client(providers)).fetch_file(f"{server.url}/voice.ogg")
    assert media.data == data and media.mime_type == "audio/ogg"


async def test_a_body_cut_short_of_its_content_length_is_an_error_not_a_shorter_file(
    providers: StartedProviders, raw_servers: RawServers
) -> None:
    data = payload(1 * MiB)

    async def answer(_request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head(Content_Length=str(2 * len(data)), Content_Type="audio/ogg"))
        await trickle(writer, data)  # then the connection closes: half of what was announced

    server = await raw_servers.serve(answer)
    with pytest.raises(MediaError) as caught:
        await (await media_client(providers)).fetch_file(f"{server.url}/voice.ogg")
    assert caught.value.transient  # another attempt (with a fresh link) may get it whole


@pytest.mark.parametrize("framing", ["chunked", "until-close"])
async def test_a_body_over_the_limit_fails_as_too_large_whatever_its_framing(
    providers: StartedProviders, raw_servers: RawServers, framing: str
) -> None:
    data = payload(LIMIT + 1)

    async def answer(_request: bytes, writer: asyncio.StreamWriter) -> None:
        if framing == "chunked":
            writer.write(head(Transfer_Encoding="chunked"))
            await trickle(writer, chunked(data))
        else:
            writer.write(head(Connection="close"))
            await trickle(writer, data)

    server = await raw_servers.serve(answer)
    provider = await media_client(providers, max_media_bytes=LIMIT)
    with pytest.raises(MediaError, match="too large") as caught:
        await provider.fetch_file(f"{server.url}/voice.ogg")
    assert not caught.value.transient


async def test_a_content_length_below_what_is_sent_ends_the_body(
    providers: StartedProviders, raw_servers: RawServers
) -> None:
    """It announces 1,000 bytes, then keeps sending: HTTP framing ends the body there. The answer
    is those bytes, or an error when the client notices the extra data first; never more."""
    data = payload(LIMIT + 1)

    async def answer(_request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head(Content_Length="1000", Connection="close"))
        await trickle(writer, data)

    server = await raw_servers.serve(answer)
    provider = await media_client(providers, max_media_bytes=LIMIT)
    try:
        media = await provider.fetch_file(f"{server.url}/voice.ogg")
    except MediaError:
        return
    assert media.data == data[:1000]


async def test_a_declared_size_over_the_limit_is_refused_before_reading(
    providers: StartedProviders, raw_servers: RawServers
) -> None:
    """The server announces LIMIT + 1 bytes and then sends nothing: waiting for them would time out."""
    hold = asyncio.Event()

    async def answer(_request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(head(Content_Length=str(LIMIT + 1)))
        await writer.drain()
        await hold.wait()

    server = await raw_servers.serve(answer)
    provider = await media_client(providers, max_media_bytes=LIMIT, send_timeout_s=30)
    try:
        with pytest.raises(MediaError, match="too large"):
            await asyncio.wait_for(provider.fetch_file(f"{server.url}/voice.ogg"), 20)
    finally:
        hold.set()
