"""The SSRF guard of webhook URLs: where may the platform send a bot's updates?

A webhook makes the server open connections to an address a bot chose, so by
default only HTTPS to **public** addresses is allowed, judged **after resolving
the name**: every address the name resolves to must be public, and delivery then
connects to one of exactly those addresses (never resolving again in between, so
DNS rebinding cannot swap in an internal one). Refused: loopback, private,
link-local, unique-local (fc00::/7), shared (100.64.0.0/10), multicast,
unspecified and reserved addresses, IPv4-mapped and IPv4-compatible IPv6
addresses, and 6to4 / NAT64 / Teredo addresses that wrap a non-public IPv4 one.
Redirects are never followed (the dispatcher treats a 3xx as a failed delivery).

``BOTGW_WEBHOOK_ALLOW`` lists host names, IP addresses or CIDR networks that are
trusted explicitly (a local receiver in development and tests, an internal
service): a URL whose host is such a name, or whose addresses all fall in such
networks, may use plain ``http`` and non-public addresses.

No I/O except the name resolution; no Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "MAX_URL_LENGTH",
    "Allowlist",
    "UrlRefused",
    "WebhookTarget",
    "address_problem",
    "check_url",
    "resolve_target",
]

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_S = 5.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_COMPATIBLE = ipaddress.ip_network("::/96")


_HTTP_REFUSED = (
    "the URL must use https:// (plain http is only for hosts the operator allows in "
    "BOTGW_WEBHOOK_ALLOW)"
)


class UrlRefused(ValueError):
    """A webhook URL the guard refuses; ``reason`` says why, in words for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Allowlist:
    """Hosts and networks trusted explicitly (``BOTGW_WEBHOOK_ALLOW``)."""

    def __init__(self, items: Iterable[str] = ()) -> None:
        self.names: set[str] = set()
        self.networks: list[IPNetwork] = []
        for item in items:
            text = item.strip().lower()
            if not text:
                continue
            try:
                self.networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                self.names.add(text.rstrip("."))

    def allows_name(self, host: str) -> bool:
        return host in self.names

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def __bool__(self) -> bool:
        return bool(self.names or self.networks)


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A checked URL and the addresses delivery may connect to, in order."""

    url: str
    scheme: str
    host: str  # lowercase, IDNA-encoded; an IP literal without brackets
    port: int
    target: str  # path and query, what goes on the request line
    addresses: tuple[str, ...]
    trusted: bool  # explicitly allowed by BOTGW_WEBHOOK_ALLOW

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def url_for(self, address: str) -> str:
        """The URL with the host replaced by one vetted address (no second lookup)."""
        literal = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{literal}:{self.port}{self.target}"


def _embedded_problem(embedded: ipaddress.IPv4Address, kind: str) -> str | None:
    inner = address_problem(embedded)
    return None if inner is None else f"a {kind} address wrapping {embedded}, {inner}"


def address_problem(address: IPAddress) -> str | None:
    """Why ``address`` is not a public address a webhook may reach, or None."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        if address.teredo is not None:
            return "a Teredo address"
        if address.sixtofour is not None:
            return _embedded_problem(address.sixtofour, "6to4")
        if address in _NAT64 or address in _NAT64_LOCAL:
            return _embedded_problem(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64")
        if address in _COMPATIBLE and not (address.is_loopback or address.is_unspecified):
            return "an IPv4-compatible IPv6 address"
        if address in _UNIQUE_LOCAL:
            return "a unique local address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a public address"
    return None


def check_url(url: str, allow: Allowlist) -> WebhookTarget:
    """Syntax and scheme checks (no lookup); ``addresses`` is empty until resolved and
    ``trusted`` says whether the host itself is allowed explicitly."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise UrlRefused("the URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port_given = parts.port
    except ValueError as exc:
        raise UrlRefused(f"the URL cannot be parsed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRefused("the URL must start with https://")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused(
            "the URL must not carry credentials; use secret_token to authenticate deliveries"
        )
    raw_host = parts.hostname
    if not raw_host:
        raise UrlRefused("the URL has no host")
    host = raw_host.rstrip(".")
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UrlRefused(f"the host name {raw_host!r} is not valid") from None
    if not host:
        raise UrlRefused("the URL has no host")
    port = port_given if port_given is not None else (443 if scheme == "https" else 80)
    if port == 0:
        raise UrlRefused("port 0 cannot be used")
    literal: IPAddress | None = None
    with contextlib.suppress(ValueError):
        literal = ipaddress.ip_address(host)
    trusted = allow.allows_name(host) or (literal is not None and allow.allows_address(literal))
    if scheme == "http" and not trusted and (literal is not None or not allow.networks):
        # (a name may still resolve into an allowed network: decided after the lookup)
        raise UrlRefused(_HTTP_REFUSED)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return WebhookTarget(
        url=url,
        scheme=scheme,
        host=host,
        port=port,
        target=target,
        addresses=(),
        trusted=trusted,
    )


async def _lookup(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP),
            timeout=RESOLVE_TIMEOUT_S,
        )
    except TimeoutError:
        raise UrlRefused(f"the host name {host!r} could not be resolved in time") from None
    except (OSError, UnicodeError):
        raise UrlRefused(f"the host name {host!r} could not be resolved") from None
    seen: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        if address not in seen:
            seen.append(address)
    if not seen:
        raise UrlRefused(f"the host name {host!r} has no address")
    return seen


async def resolve_target(url: str, allow: Allowlist) -> WebhookTarget:
    """Check ``url``, resolve its host and vet every address; :class:`UrlRefused` says
    why not. Called when the webhook is set and again before deliveries."""
    checked = check_url(url, allow)
    addresses = await _lookup(checked.host, checked.port)
    parsed = [ipaddress.ip_address(a) for a in addresses]
    trusted = checked.trusted or all(allow.allows_address(a) for a in parsed)
    if checked.scheme == "http" and not trusted:
        raise UrlRefused(_HTTP_REFUSED)
    if not checked.trusted:
        for address in parsed:
            if allow.allows_address(address):
                continue
            problem = address_problem(address)
            if problem is not None:
                raise UrlRefused(
                    f"the host {checked.host!r} resolves to {address}, {problem}; "
                    "webhooks may only reach public addresses"
                )
    return WebhookTarget(
        url=checked.url,
        scheme=checked.scheme,
        host=checked.host,
        port=checked.port,
        target=checked.target,
        addresses=tuple(addresses),
        trusted=trusted,
    )
