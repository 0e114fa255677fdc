"""Where a webhook may go: URL syntax, registered hosts, and the addresses a host resolves to.

A callback URL names a host; the service must not become a way to reach what only it can reach
(its database, a cloud metadata endpoint, the LAN). So every address the host resolves to is
checked when the URL is registered and again at every delivery (a name can change what it points
to), and the delivery then connects to exactly the address that was checked. Private, loopback,
link-local, multicast, reserved and unspecified addresses are refused unless WEBHOOK_ALLOW_PRIVATE.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
MAX_ALLOWED_HOSTS = 50
_HOST_PATTERN = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*\Z")


class TargetRefused(ValueError):
    """A callback URL or host the service will not call; `code` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written, lowercase (an IPv6 address without brackets)
    port: int
    path: str  # path and query, at least "/"


def parse_url(url: object) -> Target:
    """The parts of an http(s) URL with a host and no credentials, or TargetRefused(invalid_callback_url)."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH or not url.isascii() \
            or any(c.isspace() or ord(c) < 32 for c in url):
        raise TargetRefused("invalid_callback_url", f"A callback URL is an http(s) URL of at most {MAX_URL_LENGTH} "
                            "ASCII characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("invalid_callback_url", "The callback URL is malformed") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("invalid_callback_url", "A callback URL starts with http:// or https:// and names a host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("invalid_callback_url", "A callback URL carries no user name or password")
    if parts.fragment:
        raise TargetRefused("invalid_callback_url", "A callback URL has no #fragment")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname.lower().rstrip("."), port or (443 if parts.scheme == "https" else 80), path)


def normalize_hosts(hosts: object) -> list[str]:
    """A list of host names (or `*.example.com`, or IP addresses) a per-upload callback_url may name."""
    if not isinstance(hosts, list) or len(hosts) > MAX_ALLOWED_HOSTS:
        raise TargetRefused("invalid_parameter", f"allowed_hosts is a list of at most {MAX_ALLOWED_HOSTS} host names")
    cleaned = []
    for host in hosts:
        value = host.strip().lower().rstrip(".") if isinstance(host, str) else ""
        if not (_HOST_PATTERN.match(value) or _is_address(value)) or len(value) > 253:
            raise TargetRefused("invalid_parameter", f"allowed_hosts: {str(host)[:80]!r} is not a host name")
        if value not in cleaned:
            cleaned.append(value)
    return cleaned


def host_allowed(host: str, allowed: list[str]) -> bool:
    return any(host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])) for pattern in allowed)


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


# IANA's special-purpose registries, beyond what ipaddress flags as private or reserved in every
# Python version: protocol assignments (192.0.0.8, 192.0.0.170...), documentation, benchmarking,
# shared address space (carrier NAT), the local-use NAT64 prefix, ORCHID, Teredo.
SPECIAL_PURPOSE = tuple(ipaddress.ip_network(network) for network in (
    "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24",
    "192.88.99.0/24", "192.175.48.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
    "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "2620:4f:8000::/48", "3fff::/20", "5f00::/16",
    "fc00::/7", "fe80::/10"))
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 one reaches through a transition mechanism, with the mechanism's name."""
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour  # 2002:7f00:1:: reaches 127.0.0.1 through a 6to4 relay
    if ip in NAT64:
        return "NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)  # 64:ff9b::7f00:1 is 127.0.0.1 behind NAT64
    if ip.teredo is not None:
        return "Teredo", ip.teredo[1]
    return None


def refusal(address: str) -> str | None:
    """Why an address may not be called (None: it is a public unicast address)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(ip)) is not None:
        mechanism, inner = embedded
        reason = refusal(str(inner))
        if mechanism == "IPv4-mapped":
            return reason
        if reason or mechanism == "Teredo":
            return f"{mechanism} address of a {reason or 'tunnelled'}"
        ip = inner
    for label, test in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                        ("multicast", ip.is_multicast), ("unspecified", ip.is_unspecified),
                        ("reserved", ip.is_reserved), ("private", ip.is_private)):
        if test:
            return label
    if any(ip in network for network in SPECIAL_PURPOSE if network.version == ip.version):
        return "special-purpose"
    return None if ip.is_global else "not globally routable"


def resolve(target: Target, allow_private: bool) -> list[str]:
    """Every address the target's host resolves to, all of them allowed; TargetRefused otherwise."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise TargetRefused("callback_unresolvable", f"The host {target.host} does not resolve") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow_private:
        for address in addresses:
            reason = refusal(address)
            if reason:
                raise TargetRefused("callback_not_allowed", f"{target.host} resolves to {address}, a {reason} address; "
                                    "webhooks go to public addresses only (WEBHOOK_ALLOW_PRIVATE)")
    if not addresses:
        raise TargetRefused("callback_unresolvable", f"The host {target.host} does not resolve")
    return addresses
