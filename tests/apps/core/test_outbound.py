"""Outbound requests refuse internal addresses: on the check, on the connect and on every redirect hop.

Names resolve through a fake getaddrinfo (never the network); the servers listen on 127.0.0.1, which the tests
allow through OUTBOUND_ALLOW_NETWORKS where they mean to reach them.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.core import outbound
from apps.core.outbound import OutboundError

PUBLIC = "93.184.216.34"
LOCAL_ONLY = ["127.0.0.0/8"]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names the tests resolve: name -> addresses (an empty list fails like an unknown name)."""
    names: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in names:
            return real(host, port, *args, **kwargs)
        if not names[host]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [_info(address, int(port)) for address in names[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def _info(address: str, port: int) -> tuple[Any, ...]:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every (address, port) a connection is opened to."""
    seen: list[tuple[str, int]] = []
    real = socket.create_connection

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        seen.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return seen


class _Handler(BaseHTTPRequestHandler):
    redirects = {
        "/hop": "/ok",
        "/loop": "/loop",
        "/to-private": "http://10.0.0.5/feed",
        "/to-metadata": "http://metadata.google.internal/computeMetadata/v1/",
        "/to-ftp": "ftp://files.example/feed",
    }
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        _Handler.seen.append({"path": self.path, "host": self.headers.get("Host", "")})
        if self.path in self.redirects:
            self.send_response(302)
            self.send_header("Location", self.redirects[self.path])
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        return None


def _serve(wrap: Callable[[socket.socket], socket.socket] | None = None) -> Iterator[int]:
    _Handler.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    if wrap:
        httpd.socket = wrap(httpd.socket)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def port() -> Iterator[int]:
    yield from _serve()


def _get(url: str, *, max_redirects: int = 3) -> bytes:
    request = urllib.request.Request(url)
    with outbound.url_open(request=request, what="feed URL", timeout=5, max_redirects=max_redirects) as r:
        return r.read()


# --- which addresses ----------------------------------------------------------------------------------
REFUSED = [
    ("127.0.0.1", "a loopback address"),
    ("127.8.9.10", "a loopback address"),
    ("10.1.2.3", "a private address"),
    ("172.16.5.4", "a private address"),
    ("172.31.255.1", "a private address"),
    ("192.168.1.1", "a private address"),
    ("169.254.10.20", "a link-local address"),
    ("100.64.0.1", "a shared address space (100.64.0.0/10) address"),
    ("0.0.0.0", "the unspecified address"),
    ("224.0.0.251", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("192.0.2.10", "a private address"),  # documentation range
    ("::1", "a loopback address"),
    ("::", "the unspecified address"),
    ("fc00::1", "a private address"),
    ("fd12:3456::1", "a private address"),
    ("fe80::1", "a link-local address"),
    ("ff02::1", "a multicast address"),
    ("::ffff:127.0.0.1", "which stands for 127.0.0.1, a loopback address"),
    ("::ffff:10.0.0.1", "which stands for 10.0.0.1, a private address"),
    ("2002:7f00:1::1", "which stands for 127.0.0.1, a loopback address"),  # 6to4
    ("64:ff9b::a00:1", "which stands for 10.0.0.1, a private address"),  # NAT64
]


@pytest.mark.parametrize("address,kind", REFUSED)
def test_internal_addresses_are_refused_with_their_kind(address: str, kind: str) -> None:
    assert outbound.address_refusal(address) == f"{kind}; set OUTBOUND_ALLOW_NETWORKS to allow it"


@pytest.mark.parametrize(
    "address", [PUBLIC, "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address: str) -> None:
    assert outbound.address_refusal(address) is None


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "169.254.170.2", "fd00:ec2::254", "::ffff:169.254.169.254"]
)
def test_cloud_metadata_endpoints_are_refused_even_when_their_network_is_allowed(
    settings, address: str
) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = ["169.254.0.0/16", "fc00::/7", "::ffff:0:0/96"]
    assert outbound.address_refusal(address) == "a cloud metadata endpoint, which is never allowed"


def test_the_allow_setting_lets_operators_reach_their_own_networks(settings) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = ["10.0.0.0/8", "fd00:1::/32"]
    assert outbound.address_refusal("10.20.30.40") is None
    assert outbound.address_refusal("::ffff:10.20.30.40") is None  # the mapped form of an allowed address
    assert outbound.address_refusal("fd00:1::5") is None
    assert "a private address" in (outbound.address_refusal("192.168.1.1") or "")
    assert "a loopback address" in (outbound.address_refusal("127.0.0.1") or "")


def test_a_malformed_allow_setting_stops_with_a_clear_error(settings, monkeypatch) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = ["10.0.0.0/8", "intranet"]
    with pytest.raises(ImproperlyConfigured, match="OUTBOUND_ALLOW_NETWORKS must list CIDRs"):
        outbound.address_refusal("10.0.0.1")

    from apps.settings import _cidrs

    monkeypatch.setenv("X_NETWORKS", "10.20.0.0/16, 192.168.1.7,::1")
    assert _cidrs("X_NETWORKS") == ["10.20.0.0/16", "192.168.1.7/32", "::1/128"]
    monkeypatch.setenv("X_NETWORKS", "10.0.0.5/8")  # host bits set: say so rather than guess
    with pytest.raises(ImproperlyConfigured, match="X_NETWORKS must be comma-separated CIDRs"):
        _cidrs("X_NETWORKS")


# --- the save-time check ------------------------------------------------------------------------------
def test_url_check_names_the_url_the_address_and_the_setting() -> None:
    with pytest.raises(OutboundError) as refused:
        outbound.url_check(url="http://10.0.0.5/", what="webhook URL", field="channels")
    assert refused.value.message == (
        "webhook URL http://10.0.0.5/ resolves to 10.0.0.5, a private address; "
        "set OUTBOUND_ALLOW_NETWORKS to allow it"
    )
    assert refused.value.field == "channels"


@pytest.mark.parametrize(
    "url", ["http://[::1]:8080/hook", "http://[fe80::1]/", "https://[::ffff:127.0.0.1]/"]
)
def test_url_check_refuses_ipv6_literals(url: str) -> None:
    with pytest.raises(OutboundError, match="resolves to"):
        outbound.url_check(url=url, what="webhook URL")


@pytest.mark.parametrize("host", ["2130706433", "0x7f.0.0.1", "127.1", "localhost"])
def test_other_spellings_of_loopback_are_refused(host: str) -> None:
    with pytest.raises(OutboundError, match="a loopback address"):
        outbound.url_check(url=f"http://{host}:8000/", what="webhook URL")


def test_an_invalid_host_name_is_a_clear_error() -> None:
    with pytest.raises(OutboundError, match="has an invalid host name"):
        outbound.url_check(url=f"http://{'a' * 70}.example/", what="feed URL")


def test_a_name_is_refused_when_any_of_its_addresses_is_internal(dns) -> None:
    dns["mixed.example"] = [PUBLIC, "10.0.0.7"]
    dns["public.example"] = [PUBLIC, "2606:4700::1111"]
    with pytest.raises(OutboundError, match=re.escape("resolves to 10.0.0.7, a private address")):
        outbound.url_check(url="https://mixed.example/hook", what="webhook URL")
    assert (
        outbound.url_check(url="https://public.example/hook", what="webhook URL")
        == "https://public.example/hook"
    )


def test_metadata_host_names_are_refused(dns) -> None:
    dns["metadata.google.internal"] = ["169.254.169.254"]
    dns["evil.example"] = ["fd00:ec2::254"]
    with pytest.raises(OutboundError, match="names a cloud metadata host"):
        outbound.url_check(url="http://metadata.google.internal/computeMetadata/v1/", what="feed URL")
    with pytest.raises(OutboundError, match="resolves to fd00:ec2::254, a cloud metadata endpoint"):
        outbound.url_check(url="http://evil.example/", what="feed URL")


def test_a_name_that_does_not_resolve_passes_the_save_check_but_not_a_request(dns) -> None:
    dns["gone.example"] = []
    assert outbound.url_check(url="https://gone.example/rss", what="feed URL") == "https://gone.example/rss"
    with pytest.raises(urllib.error.URLError):
        _get("http://gone.example/rss")


@pytest.mark.parametrize(
    "url", ["ftp://files.example/feed", "file:///etc/passwd", "gopher://x/", "http:///path"]
)
def test_only_http_and_https_urls_with_a_host(url: str) -> None:
    with pytest.raises(OutboundError, match="must start with http:// or https://"):
        outbound.url_check(url=url, what="feed URL")
    with pytest.raises(OutboundError, match="must start with http:// or https://"):
        _get(url)


# --- requests -----------------------------------------------------------------------------------------
def test_a_local_server_is_refused_unless_allowed(settings, port: int, connects) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = []
    with pytest.raises(OutboundError, match=r"resolves to 127\.0\.0\.1, a loopback address"):
        _get(f"http://127.0.0.1:{port}/ok")
    assert connects == [] and _Handler.seen == []  # refused before any connection

    settings.OUTBOUND_ALLOW_NETWORKS = LOCAL_ONLY
    assert _get(f"http://127.0.0.1:{port}/ok") == b"ok"


def test_the_connection_goes_to_the_vetted_address_with_the_name_in_the_host_header(
    settings, dns, port: int, connects
) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = LOCAL_ONLY
    dns["receiver.example"] = ["127.0.0.1"]
    assert _get(f"http://receiver.example:{port}/ok") == b"ok"
    assert connects == [("127.0.0.1", port)]  # the address checked, not a second lookup of the name
    assert _Handler.seen[-1]["host"] == f"receiver.example:{port}"


def test_dns_that_changes_after_the_save_check_is_caught_on_the_request(dns, port: int, connects) -> None:
    dns["rebind.example"] = [PUBLIC]
    outbound.url_check(url=f"http://rebind.example:{port}/ok", what="feed URL")  # fine when saved
    dns["rebind.example"] = ["127.0.0.1"]
    with pytest.raises(OutboundError, match=re.escape("resolves to 127.0.0.1, a loopback address")):
        _get(f"http://rebind.example:{port}/ok")
    assert connects == []


def test_a_redirect_from_an_allowed_server_to_a_private_address_is_refused(
    settings, port: int, connects
) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = LOCAL_ONLY
    url = f"http://127.0.0.1:{port}/to-private"
    with pytest.raises(OutboundError) as refused:
        _get(url)
    assert refused.value.message == (
        f"feed URL {url} redirected to http://10.0.0.5/feed, which resolves to 10.0.0.5, a private address; "
        "set OUTBOUND_ALLOW_NETWORKS to allow it"
    )
    assert [address for address, _ in connects] == ["127.0.0.1"]  # 10.0.0.5 was never dialled


def test_a_redirect_to_the_metadata_host_or_another_scheme_is_refused(settings, dns, port: int) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = LOCAL_ONLY
    dns["metadata.google.internal"] = ["169.254.169.254"]
    with pytest.raises(OutboundError, match="names a cloud metadata host"):
        _get(f"http://127.0.0.1:{port}/to-metadata")
    with pytest.raises(
        OutboundError, match=re.escape("redirects to ftp://files.example/feed, which is not an http")
    ):
        _get(f"http://127.0.0.1:{port}/to-ftp")


def test_redirects_are_followed_up_to_the_limit(settings, port: int) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = LOCAL_ONLY
    assert _get(f"http://127.0.0.1:{port}/hop") == b"ok"
    with pytest.raises(OutboundError, match="redirects are not followed"):
        _get(f"http://127.0.0.1:{port}/hop", max_redirects=0)
    with pytest.raises(OutboundError, match="redirected more than 3 times"):
        _get(f"http://127.0.0.1:{port}/loop")
    assert [s["path"] for s in _Handler.seen].count("/loop") == 4


# --- TLS keeps the host name ---------------------------------------------------------------------------
def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(tmp_path: Path, settings, dns, monkeypatch) -> Iterator[tuple[int, list[str | None]]]:
    """An HTTPS server on 127.0.0.1 with a certificate for receiver.example, trusted by the client."""
    settings.OUTBOUND_ALLOW_NETWORKS = LOCAL_ONLY
    dns["receiver.example"] = ["127.0.0.1"]
    dns["other.example"] = ["127.0.0.1"]
    cert, key = _certificate(tmp_path, "receiver.example")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    names: list[str | None] = []
    server.sni_callback = lambda sock, name, ctx: names.append(name)
    trusting = ssl.create_default_context
    monkeypatch.setattr(outbound.ssl, "create_default_context", lambda: trusting(cafile=str(cert)))
    for port in _serve(lambda sock: server.wrap_socket(sock, server_side=True)):
        yield port, names


def test_https_checks_the_certificate_and_sends_sni_for_the_name(tls_server) -> None:
    port, names = tls_server
    assert _get(f"https://receiver.example:{port}/ok") == b"ok"
    assert names == ["receiver.example"]  # SNI carries the name although the socket went to 127.0.0.1
    with pytest.raises(urllib.error.URLError, match="certificate verify failed"):
        _get(f"https://other.example:{port}/ok")  # the same address, but the certificate is not for this name
