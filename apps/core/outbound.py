"""Outbound HTTP requests to addresses people typed (webhooks, Slack alerts, feeds) that refuse internal targets.

A URL people enter could point the server at itself or its network: loopback, private ranges, link-local
(with the cloud metadata endpoints on it), shared address space, multicast, reserved ranges, or the IPv6 forms
that embed such an IPv4 address (IPv4-mapped, 6to4, NAT64). So:

- `url_check` is the save-time check: it refuses other schemes than http/https, and a host that resolves to
  any internal address, with a reason people can read. A host that does not resolve now passes: it is
  checked again on every request.
- `url_open` makes the request. Its connections resolve the host, refuse it when ANY address is internal,
  and connect to the vetted address itself, so a DNS answer that changes between the check and the connect
  (rebinding) cannot slip through. The Host header, TLS SNI and the certificate check keep the host name.
  Every redirect hop is checked the same way, up to `max_redirects`; environment proxies are not used.

`settings.OUTBOUND_ALLOW_NETWORKS` lists CIDRs that are allowed although internal (an operator's own
receivers); the cloud metadata endpoints in `METADATA_NETWORKS` are refused even then.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.core.errors import ServiceError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Vetter = Callable[[str, int], list[str]]

SCHEMES = {"http": 80, "https": 443}
ALLOW_SETTING = "OUTBOUND_ALLOW_NETWORKS"
METADATA_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.169.254/32", "169.254.170.2/32", "100.100.100.200/32", "fd00:ec2::254/128")
)
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog"})
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
# The first that applies names the refusal; the order puts the most telling name first.
_KINDS: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("a loopback address", lambda ip: ip.is_loopback),
    ("the unspecified address", lambda ip: ip.is_unspecified),
    ("a link-local address", lambda ip: ip.is_link_local),
    ("a multicast address", lambda ip: ip.is_multicast),
    ("a shared address space (100.64.0.0/10) address", lambda ip: ip in SHARED_ADDRESS_SPACE),
    ("a reserved address", lambda ip: ip.is_reserved),
    ("a private address", lambda ip: ip.is_private),
    ("a non-public address", lambda ip: not ip.is_global),
)


class OutboundError(ServiceError):
    """A request refused by policy (scheme, internal address, redirects); the message says why."""


# --- addresses ----------------------------------------------------------------------------------------
def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The operator's allow list, read when used (so a settings override applies at once)."""
    try:
        return [ipaddress.ip_network(str(n), strict=False) for n in settings.OUTBOUND_ALLOW_NETWORKS]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{ALLOW_SETTING} must list CIDRs like 10.0.0.0/8: {exc}") from None


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, 6to4, NAT64 64:ff9b::/96), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    nat64 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64_PREFIX else None
    return ip.ipv4_mapped or ip.sixtofour or nat64


def _kind(ip: IPAddress) -> str | None:
    return next((label for label, applies in _KINDS if applies(ip)), None)


def address_refusal(address: str) -> str | None:
    """Why `address` may not be reached ("a private address; set ..."), or None when it may."""
    ip = ipaddress.ip_address(address)
    target = embedded_ipv4(ip) or ip
    if any(ip in n or target in n for n in METADATA_NETWORKS):
        return "a cloud metadata endpoint, which is never allowed"
    kind = _kind(target)
    if kind is None or any(ip in n or target in n for n in allowed_networks()):
        return None
    where = kind if target is ip else f"which stands for {target}, {kind}"
    return f"{where}; set {ALLOW_SETTING} to allow it"


def resolve_vetted(*, host: str, port: int, subject: str) -> list[str]:
    """Every address of `host`, when all may be reached; OutboundError naming the first that may not.

    `subject` starts the message ("webhook URL http://x/"). Resolution errors (socket.gaierror) pass through."""
    if host.lower().rstrip(".") in METADATA_HOSTS:
        raise OutboundError(f"{subject} names a cloud metadata host, which is never allowed")
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        refusal = address_refusal(address)
        if refusal:
            raise OutboundError(f"{subject} resolves to {address}, {refusal}")
    return addresses


def _host_port(url: str, what: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise OutboundError(f"the {what} must start with http:// or https:// and name a host")
    try:
        return parts.hostname, parts.port or SCHEMES[parts.scheme]
    except ValueError:
        raise OutboundError(f"the {what} {url} has an invalid port") from None


def url_check(*, url: str, what: str, field: str | None = None) -> str:
    """Save-time check of a URL people entered; OutboundError (with `field`) when it is refused.

    A host that does not resolve now is accepted: every request checks it again."""
    try:
        host, port = _host_port(url, what)
        resolve_vetted(host=host, port=port, subject=f"{what} {url}")
    except OutboundError as exc:
        raise OutboundError(exc.message, field=field) from None
    except UnicodeError:  # a label the IDNA codec refuses (empty, too long)
        raise OutboundError(f"the {what} {url} has an invalid host name", field=field) from None
    except OSError:
        pass
    return url


# --- connections --------------------------------------------------------------------------------------
def _connect(addresses: list[str], port: int, timeout: float | None) -> socket.socket:
    error: OSError = OSError("no address to connect to")
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout)
        except OSError as exc:
            error = exc
    raise error


class _VettedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, *, vet: Vetter, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._vet = vet

    def connect(self) -> None:
        self.sock = _connect(self._vet(self.host, self.port), self.port, self.timeout)


class _VettedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, *, vet: Vetter, tls: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(host, context=tls, **kwargs)
        self._vet, self._tls = vet, tls

    def connect(self) -> None:
        raw = _connect(self._vet(self.host, self.port), self.port, self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)  # SNI and cert check on the name


@dataclass
class _Chain:
    """One request and its redirects: what to call it in messages, and how many hops are left."""

    what: str
    first_url: str
    max_redirects: int
    hops: int = 0

    def subject(self, url: str) -> str:
        if not self.hops:
            return f"{self.what} {url}"
        return f"{self.what} {self.first_url} redirected to {url}, which"

    def redirect_refusal(self, newurl: str, code: int) -> str | None:
        start = f"{self.what} {self.first_url}"
        if urlsplit(newurl).scheme not in SCHEMES:
            return f"{start} redirects to {newurl}, which is not an http(s) URL"
        if not self.max_redirects:
            return f"{start} redirects to {newurl} (HTTP {code}); redirects are not followed"
        if self.hops >= self.max_redirects:
            return f"{start} redirected more than {self.max_redirects} times (last to {newurl})"
        return None

    def vetter(self, url: str) -> Vetter:
        return lambda host, port: resolve_vetted(host=host, port=port, subject=self.subject(url))


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, chain: _Chain) -> None:
        super().__init__()
        self.chain = chain

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        vet = self.chain.vetter(req.full_url)

        def connection(host: str, **kwargs: Any) -> http.client.HTTPConnection:
            return _VettedHTTPConnection(host, vet=vet, **kwargs)

        return self.do_open(connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, chain: _Chain) -> None:
        super().__init__()
        self.chain, self.tls = chain, ssl.create_default_context()

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        vet = self.chain.vetter(req.full_url)

        def connection(host: str, **kwargs: Any) -> http.client.HTTPConnection:
            return _VettedHTTPSConnection(host, vet=vet, tls=self.tls, **kwargs)

        return self.do_open(connection, req)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    def __init__(self, chain: _Chain) -> None:
        self.chain = chain

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        refusal = self.chain.redirect_refusal(newurl, code)
        if refusal:
            fp.close()
            raise OutboundError(refusal)
        self.chain.hops += 1
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def url_open(
    *, request: urllib.request.Request, what: str, timeout: float, max_redirects: int = 0
) -> http.client.HTTPResponse:
    """Send `request` to a URL people entered, refusing internal addresses on every hop.

    Raises OutboundError for a refusal, urllib's HTTPError/URLError and OSError like urlopen does."""
    _host_port(request.full_url, what)
    chain = _Chain(what=what, first_url=request.full_url, max_redirects=max_redirects)
    opener = urllib.request.OpenerDirector()
    for handler in (
        _HTTPHandler(chain),
        _HTTPSHandler(chain),
        _RedirectHandler(chain),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.UnknownHandler(),
    ):
        opener.add_handler(handler)
    response: http.client.HTTPResponse = opener.open(request, timeout=timeout)
    return response
