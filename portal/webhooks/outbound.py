"""Outgoing HTTP that cannot be turned against us (server-side request forgery).

The URL must be https (plain http only with WEBHOOKS_ALLOW_HTTP, for development). The host
is resolved once and every address checked: private, loopback, link-local (the cloud metadata
service at 169.254.169.254 included), carrier-grade NAT, multicast and reserved ranges are
refused, IPv4-mapped IPv6 too. The connection then goes to the checked address itself (TLS
still verifies the host name), so a second DNS answer cannot swap it, and redirects are
never followed: http.client does not follow them. WEBHOOKS_ALLOW_LOOPBACK lets tests and
development reach a receiver on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app

TIMEOUT_SECONDS = 10.0
EXCERPT_BYTES = 4096


class Refused(ValueError):
    """The URL or its address is not one we send to; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str


@dataclass(frozen=True)
class Result:
    status: int | None
    excerpt: str
    latency_ms: int
    error: str | None = None
    retry_after: str | None = None


def _address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback and current_app.config["WEBHOOKS_ALLOW_LOOPBACK"]:
        return True
    return address.is_global and not address.is_multicast


def check_url(url: str) -> Target:
    """Parse, resolve and check `url`; raises Refused with a reason an admin can act on."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise Refused("That is not a valid URL.") from None
    allow_http = current_app.config["WEBHOOKS_ALLOW_HTTP"]
    if parts.scheme != "https" and not (parts.scheme == "http" and allow_http):
        raise Refused("The URL must start with https://.")
    if not parts.hostname:
        raise Refused("The URL has no host.")
    if parts.username or parts.password:
        raise Refused("Put credentials in the receiver's configuration, not in the URL.")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Refused(f"The host {parts.hostname} does not resolve.") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise Refused(f"The host {parts.hostname} does not resolve.")
    refused = [a for a in addresses if not _address_allowed(a)]
    if refused:
        raise Refused(f"{parts.hostname} resolves to {refused[0]}, a private or reserved "
                      "address: webhooks only go to the public internet.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, path, str(addresses[0]))


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout,
                         context=ssl.create_default_context())
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str],
         timeout: float = TIMEOUT_SECONDS) -> Result:
    """POST once, to the checked address; never raises for network trouble."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = check_url(url)
    except Refused as exc:
        return Result(None, "", elapsed(), f"Refused: {exc}")
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else \
        _PinnedHTTPConnection
    connection = connection_class(target, timeout)
    try:
        connection.request("POST", target.path, body=body,
                           headers={**headers, "Content-Length": str(len(body))})
        response = connection.getresponse()
        excerpt = response.read(EXCERPT_BYTES).decode("utf-8", "replace")
        return Result(response.status, excerpt, elapsed(),
                      retry_after=response.getheader("Retry-After"))
    except (OSError, http.client.HTTPException) as exc:
        return Result(None, "", elapsed(), f"{type(exc).__name__}: {exc}"[:300])
    finally:
        connection.close()
