"""Where a media file may be fetched from, when a provider's answer names the URL.

Meta's media lookup answers a ``url`` and Wappi's media download a ``file_link``: a URL chosen by
someone else, fetched from inside the network, with the provider's token attached. So:

* only the hosts on ``MEDIA_HOSTS`` (``lookaside.fbsbx.com``; ``*.wappi.pro`` means any subdomain);
* only ``https``;
* only public addresses: loopback, private, link-local, shared, reserved, multicast and
  unspecified addresses are refused -- for an IP literal here, for a name after DNS resolution
  (the resolver in ``providers/base.py`` asks :meth:`MediaHosts.address_allowed`);
* redirects are followed only to URLs that pass the same test, and a token never follows a
  redirect to another origin.

``MEDIA_ALLOW_LOCAL`` lifts the address rule and allows plain ``http`` (for tests and local fakes
only; refused in production). The host allow-list always applies.

Pure functions on strings; no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from yarl import URL

HOSTNAME = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DEFAULT_MEDIA_HOSTS = "lookaside.fbsbx.com,wappi.pro,*.wappi.pro"


def is_public_address(address: str) -> bool:
    """A globally routable unicast address (an IPv4-mapped IPv6 address is judged as its IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def parse_hosts(text: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """``MEDIA_HOSTS`` as (exact names, subdomain suffixes); ValueError for an entry that is no host."""
    exact: set[str] = set()
    suffixes: list[str] = []
    for raw in text.replace(";", ",").split(","):
        entry = raw.strip().lower().rstrip(".").strip("[]")
        if not entry:
            continue
        if not (HOSTNAME.match(entry) or _ip_literal(entry)):
            raise ValueError(f"not a host name: {entry!r}")
        if entry.startswith("*."):
            suffixes.append(entry[1:])  # ".wappi.pro"
        else:
            exact.add(entry)
    return frozenset(exact), tuple(suffixes)


@dataclass(frozen=True)
class MediaHosts:
    exact: frozenset[str]
    suffixes: tuple[str, ...]
    allow_local: bool = False

    @classmethod
    def parse(cls, text: str, *, allow_local: bool = False) -> MediaHosts:
        exact, suffixes = parse_hosts(text)
        return cls(exact, suffixes, allow_local)

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.exact or any(host.endswith(suffix) for suffix in self.suffixes)

    def address_allowed(self, address: str) -> bool:
        return self.allow_local or is_public_address(address)

    def refusal(self, url: URL) -> str | None:
        """Why ``url`` may not be fetched, or None when it may."""
        schemes = ("https", "http") if self.allow_local else ("https",)
        if url.scheme not in schemes:
            return f"scheme {url.scheme or 'none'} (https only)"
        if url.user is not None or url.password is not None:
            return "credentials in the url"
        host = url.host
        if not host:
            return "no host"
        if not self.allows_host(host):
            return f"host {host} is not on MEDIA_HOSTS"
        if _ip_literal(host) and not self.address_allowed(host.strip("[]")):
            return f"address {host} is not public"
        return None


def same_origin(a: URL, b: URL) -> bool:
    """Same scheme, host and port: where a token may follow a redirect."""
    return (a.scheme, (a.host or "").lower(), a.port) == (b.scheme, (b.host or "").lower(), b.port)
