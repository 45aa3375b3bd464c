"""IP truncation: IPv4 to /24, IPv6 to /48, before anything is stored or forwarded."""

from __future__ import annotations

import ipaddress


def truncate_ip(value: str) -> str | None:
    """The network part of an address, or None when `value` is not an IP address."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)
