"""Media URLs named by a provider's answer are fetched only from ``MEDIA_HOSTS``, over https, at
public addresses (checked again after DNS), redirects only within the same rules, and a token
never goes anywhere else.

The review had the gateway fetch an internal address named in a Graph lookup answer, with the
Meta access token attached, and follow redirects anywhere.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from yarl import URL

from gateway.domain.media_hosts import DEFAULT_MEDIA_HOSTS, MediaHosts, is_public_address
from gateway.providers.base import MediaError
from gateway.providers.meta import MetaProvider
from gateway.providers.wappi import WappiProvider
from gateway.settings import GatewaySettings
from parley_shared.contracts import MediaRef
from parley_shared.settings import ConfigurationError
from tests.gateway.helpers import StartedProviders
from tests.support.raw_http import Answer, RawHTTPServer, RawServers, head, path

TOKEN = "provider-secret-token"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("172.16.5.4", False),
        ("192.168.0.10", False),
        ("169.254.169.254", False),  # cloud metadata
        ("fe80::1", False),
        ("fc00::1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:10.0.0.1", False),
        ("not an address", False),
    ],
)
def test_only_globally_routable_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert is_public_address(address) is public


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1&ext=2&hash=3", True),
        ("https://LOOKASIDE.fbsbx.com./x", True),
        ("https://wappi.pro/files/a.ogg", True),
        ("https://cdn.wappi.pro/files/a.ogg", True),
        ("http://lookaside.fbsbx.com/x", False),  # https only
        ("ftp://wappi.pro/x", False),
        ("https://evil.example/x", False),
        ("https://wappi.pro.evil.example/x", False),
        ("https://evilwappi.pro/x", False),
        ("https://user:pass@wappi.pro/x", False),
        ("https://169.254.169.254/latest/meta-data", False),
        ("https://127.0.0.1/x", False),
    ],
)
def test_the_default_policy_allows_https_to_the_providers_media_hosts_only(url: str, allowed: bool) -> None:
    assert (MediaHosts.parse(DEFAULT_MEDIA_HOSTS).refusal(URL(url)) is None) is allowed


def test_an_allowed_ip_literal_must_still_be_public_unless_local_is_allowed() -> None:
    hosts = "169.254.169.254,127.0.0.1,::1"
    assert "not public" in (MediaHosts.parse(hosts).refusal(URL("https://169.254.169.254/x")) or "")
    assert "not public" in (MediaHosts.parse(hosts).refusal(URL("https://[::1]/x")) or "")
    assert MediaHosts.parse(hosts, allow_local=True).refusal(URL("http://127.0.0.1:8080/x")) is None


def test_the_settings_check_media_hosts_and_production_refuses_local_media() -> None:
    with pytest.raises(ConfigurationError, match="MEDIA_HOSTS"):
        GatewaySettings(media_hosts="lookaside.fbsbx.com, http://x/y")  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="MEDIA_ALLOW_LOCAL"):
        GatewaySettings(  # type: ignore[call-arg]
            app_env="production",
            api_token="Zq8-w3xV_r7Lp2sK",
            erasure_key="erasure-key-0123456789abcdef",
            media_allow_local=True,
        )
    assert GatewaySettings().media_policy() == MediaHosts.parse(DEFAULT_MEDIA_HOSTS)  # type: ignore[call-arg]


# ----------------------------------------------------------------------------- against servers
Routes = dict[str, Callable[[], bytes]]


def json_answer(body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    return head(Content_Length=str(len(data)), Content_Type="application/json") + data


def file_answer(data: bytes) -> bytes:
    return head(Content_Length=str(len(data)), Content_Type="audio/ogg") + data


def redirect(location: str) -> bytes:
    return head(302, Location=location, Content_Length="0")


def authorization(request: bytes) -> str | None:
    for line in request.decode().split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "authorization":
            return value.strip()
    return None


def routed(routes: Routes) -> Answer:
    async def answer(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(routes[path(request)]())
        await writer.drain()

    return answer


async def serve(raw_servers: RawServers, routes: Routes) -> RawHTTPServer:
    return await raw_servers.serve(routed(routes))


def port(server: RawHTTPServer) -> int:
    return URL(server.url).port or 0


async def meta_on(providers: StartedProviders, graph: RawHTTPServer, **overrides: Any) -> MetaProvider:
    """The Meta provider with ``graph`` as its Graph API (the default media policy unless overridden)."""
    credentials = {"meta_access_token": TOKEN, "meta_phone_number_id": "1"}
    return await providers.start(MetaProvider, meta_graph_base_url=graph.url, **credentials, **overrides)


VOICE = MediaRef(media_id="voice", mime_type="audio/ogg")


async def test_a_graph_lookup_naming_an_internal_address_is_not_fetched_and_gets_no_token(
    providers: StartedProviders, raw_servers: RawServers
) -> None:
    internal = await serve(raw_servers, {"/latest/meta-data": lambda: file_answer(b"instance secrets")})
    graph = await serve(raw_servers, {"/v21.0/voice": lambda: json_answer({"url": f"{internal.url}/latest/meta-data"})})
    meta = await meta_on(providers, graph)  # the defaults: MEDIA_HOSTS of the providers, public https only
    with pytest.raises(MediaError, match="refused") as caught:
        await meta.download_media(VOICE)
    assert not caught.value.transient
    assert internal.requests == [], "the internal address was contacted"
    assert authorization(graph.requests[0]) == f"Bearer {TOKEN}"  # the token went to the Graph API only


async def test_an_allowed_name_that_resolves_to_a_private_address_is_refused_after_resolution(
    providers: StartedProviders, raw_servers: RawServers
) -> None:
    internal = await serve(raw_servers, {"/x": lambda: file_answer(b"internal")})
    graph = await serve(
        raw_servers, {"/v21.0/voice": lambda: json_answer({"url": f"https://localhost:{port(internal)}/x"})}
    )
    meta = await meta_on(providers, graph, media_hosts="localhost")  # on the list, https: only DNS tells
    with pytest.raises(MediaError, match="no public address") as caught:
        await meta.download_media(VOICE)
    assert not caught.value.transient
    assert internal.requests == []


async def test_a_redirect_off_the_allow_list_is_not_followed(
    providers: StartedProviders, raw_servers: RawServers
) -> None:
    elsewhere = await serve(raw_servers, {"/file": lambda: file_answer(b"elsewhere")})
    media = await serve(raw_servers, {"/media": lambda: redirect(f"http://localhost:{port(elsewhere)}/file")})
    graph = await serve(raw_servers, {"/v21.0/voice": lambda: json_answer({"url": f"{media.url}/media"})})
    meta = await meta_on(providers, graph, media_hosts="127.0.0.1", media_allow_local=True)
    with pytest.raises(MediaError, match="not on MEDIA_HOSTS") as caught:
        await meta.download_media(VOICE)
    assert not caught.value.transient
    assert len(media.requests) == 1 and elsewhere.requests == []


async def test_a_token_follows_a_redirect_on_its_origin_and_never_to_another(
    providers: StartedProviders, raw_servers: RawServers
) -> None:
    other = await serve(raw_servers, {"/file": lambda: file_answer(b"OggS-voice")})
    media = await serve(
        raw_servers,
        {
            "/media": lambda: redirect("/moved"),  # same origin: the token stays
            "/moved": lambda: redirect(f"http://localhost:{port(other)}/file"),  # another: dropped
        },
    )
    graph = await serve(raw_servers, {"/v21.0/voice": lambda: json_answer({"url": f"{media.url}/media"})})
    meta = await meta_on(providers, graph, media_hosts="127.0.0.1,localhost", media_allow_local=True)
    fetched = await meta.download_media(VOICE)
    assert fetched.data == b"OggS-voice"
    assert [authorization(r) for r in media.requests] == [f"Bearer {TOKEN}", f"Bearer {TOKEN}"]
    assert [authorization(r) for r in other.requests] == [None]


async def test_redirects_end_after_a_few(providers: StartedProviders, raw_servers: RawServers) -> None:
    media = await serve(raw_servers, {"/media": lambda: redirect("/media")})
    graph = await serve(raw_servers, {"/v21.0/voice": lambda: json_answer({"url": f"{media.url}/media"})})
    meta = await meta_on(providers, graph, media_hosts="127.0.0.1", media_allow_local=True)
    with pytest.raises(MediaError, match="redirected more than"):
        await meta.download_media(VOICE)
    assert len(media.requests) == 4


async def test_a_wappi_file_link_to_an_internal_address_is_not_fetched(
    providers: StartedProviders, raw_servers: RawServers
) -> None:
    internal = await serve(raw_servers, {"/admin": lambda: file_answer(b"internal")})
    wappi_api = await serve(
        raw_servers,
        {
            "/api/sync/message/media/download": lambda: json_answer(
                {"status": "done", "mime_type": "audio/ogg", "file_link": f"{internal.url}/admin"}
            )
        },
    )
    wappi = await providers.start(WappiProvider, wappi_base_url=wappi_api.url, wappi_token=TOKEN, wappi_profile_id="p")
    with pytest.raises(MediaError, match="refused"):
        await wappi.download_media(MediaRef(media_id="PTT1", mime_type="audio/ogg"))
    assert internal.requests == []
