"""The client's address, and its privacy-safe hash: no raw IP is ever stored."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Final

_IP_MAX_LEN: Final = 64


def client_ip(forwarded_for: str | None, remote_addr: str | None, trusted_hops: int = 1) -> str | None:
    """The client address as the trusted front end saw it, else the socket peer.

    Each proxy appends the address it received from to X-Forwarded-For, and a client may send the
    header with anything in it, so only entries our own front end wrote count: the `trusted_hops`-th
    from the right (1: Cloud Run's front end appends the client; 2: an external Application Load
    Balancer appends "client, load balancer"). With fewer entries than that, the request did not come
    through those proxies and the socket peer is used. Normalised ("::ffff:1.2.3.4" becomes
    "1.2.3.4"); None if no valid address is found."""
    entries = (forwarded_for or "").rsplit(",", trusted_hops) if trusted_hops > 0 else []
    ip = _parse_ip(entries[-trusted_hops]) if len(entries) >= trusted_hops > 0 else None
    if ip is None:
        ip = _parse_ip(remote_addr)
    return None if ip is None else str(ip)


def hash_ip(ip: str | None, salt: str) -> str | None:
    """Hex HMAC-SHA256 of the address's network (IPv4 /24, IPv6 /48), keyed by a secret salt.

    Truncating first means one hash covers 256 (or 2**80) hosts, so even someone holding the
    salt cannot map a hash back to one person's address by trying all 2**32 IPv4 addresses.
    """
    address = _parse_ip(ip)
    if address is None:
        return None
    prefix = 24 if address.version == 4 else 48
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return hmac.new(salt.encode("utf-8"), str(network).encode("ascii"), hashlib.sha256).hexdigest()


def _parse_ip(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse an address as proxies write it: optional quotes, "[v6]:port", "v4:port", "%zone"."""
    text = (value or "").strip().strip('"')
    if not text or len(text) > _IP_MAX_LEN:
        return None
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    text = text.partition("%")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address
