"""IP truncation: IPv4 to /24, IPv6 to /48, before anything is stored or forwarded."""

from __future__ import annotations

import ipaddress


def truncate_ip(value: str) -> str | None:
    """The network part of an address, or None when `value` is not an IP address."""
    if ":" not in value:
        return _truncate_ipv4(value.strip())
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def _truncate_ipv4(value: str) -> str | None:
    # The common case, without ipaddress's object construction (it dominated the stage cost).
    parts = value.split(".")
    if len(parts) != 4:
        return None
    for part in parts:
        if not (part.isascii() and part.isdigit()) or len(part) > 3 or int(part) > 255:
            return None
        if len(part) > 1 and part[0] == "0":
            return (
                None  # leading zeros are ambiguous (octal in some parsers); ipaddress refuses them
            )
    return f"{parts[0]}.{parts[1]}.{parts[2]}.0"
