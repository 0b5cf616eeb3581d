"""The SSRF guard for webhook targets (SPEC 3.8).

A target is refused unless its scheme is http(s) and every address its host resolves to is a
public one: loopback, private, link-local, multicast, reserved, unspecified, shared (CGNAT)
and other non-global ranges are refused, including IPv4-mapped IPv6 and the integer, hex and
octal spellings of IPv4 that resolvers accept (`2130706433`, `0x7f000001`, `0177.0.0.1`).
It runs at registration and again at send time, and the sender connects to the address
checked here, so a DNS answer that changes in between cannot redirect it.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from registry.errors import Invalid

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written in the URL (the Host header and TLS name)
    port: int
    address: IPAddress  # the checked address to connect to
    path: str  # path and query


def _numeric_ipv4(host: str) -> IPAddress | None:
    """The inet_aton spellings: one to four parts, each decimal, 0x-hex or 0-octal."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(parts):
        return None
    try:
        numbers = [
            int(part, 16)
            if part.lower().startswith("0x")
            else int(part, 8)
            if len(part) > 1 and part.startswith("0")
            else int(part, 10)
            for part in parts
        ]
    except ValueError:
        return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(parts)):
        return None
    value = 0
    for n in head:
        value = value * 256 + n
    value = value * 256 ** (5 - len(parts)) + last
    if value > 0xFFFFFFFF:
        return None
    return ipaddress.IPv4Address(value)


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally (any spelling), or None for a hostname."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare.split("%")[0])
    except ValueError:
        return _numeric_ipv4(bare)


def refusal(address: IPAddress) -> str | None:
    """Why an address may not be a webhook target, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            reason = refusal(mapped)
            return f"{reason} (in {address})" if reason else None
    checks = (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    )
    for name, hit in checks:
        if hit:
            return f"{address} is a {name} address"
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Invalid(f"the webhook host {host} does not resolve ({exc})") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Invalid(f"the webhook host {host} does not resolve")
    # IPv4 first: the address connected to is the first, and IPv6 routes are rarer.
    return sorted(addresses, key=lambda address: address.version)


def check_url(url: str, *, allow_private: bool | None = None) -> Target:
    """The target to connect to, or Invalid naming why the URL is refused."""
    if allow_private is None:
        allow_private = settings.WEBHOOK_ALLOW_PRIVATE
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Invalid(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Invalid("a webhook URL must use http or https")
    if parts.username or parts.password:
        raise Invalid("a webhook URL may not carry credentials")
    host = parts.hostname
    if not host:
        raise Invalid("a webhook URL needs a host")
    port = port or (443 if scheme == "https" else 80)
    addresses = resolve(host, port)
    if not allow_private:
        for address in addresses:
            reason = refusal(address)
            if reason:
                raise Invalid(
                    f"webhook target {host} refused: {reason} "
                    "(loopback, private and link-local targets are not allowed)"
                )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=scheme, host=host, port=port, address=addresses[0], path=path)
