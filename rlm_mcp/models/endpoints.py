"""What a model endpoint's URL says about it: on this machine or not, and whether its path looks right."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlparse

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_local(url: str | None) -> bool:
    """The URL points at this machine (loopback): a refused connection there means nothing is running."""
    if not url:
        return False
    host = (urlparse(url).hostname or "").lower()
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
