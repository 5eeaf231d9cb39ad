"""The CONNECT proxy: clouds' hostnames reach local TLS servers by name; other hosts pass through
or are refused; everything on loopback."""

from __future__ import annotations

import http.server
import socket
import socketserver
import ssl
import threading
from pathlib import Path
from typing import Iterator

import pytest
import requests
import trustme

from cloudtrain.emulators.proxy import ConnectProxy


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = f"hello from {self.headers['Host']} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def authority(tmp_path: Path) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return ca, bundle


def _server(context: ssl.SSLContext | None) -> Iterator[tuple[str, int]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def tls_server(authority: tuple[trustme.CA, Path]) -> Iterator[tuple[str, int]]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority[0].issue_cert("*.blob.core.windows.net").configure_cert(context)
    yield from _server(context)


@pytest.fixture()
def plain_server() -> Iterator[tuple[str, int]]:
    yield from _server(None)


def test_a_cloud_hostname_reaches_the_local_server_by_its_name(tls_server, authority) -> None:
    with ConnectProxy({"*.blob.core.windows.net": tls_server}, passthrough=False) as proxy:
        answer = requests.get("https://myaccount.blob.core.windows.net/container/blob?x=1",
                              proxies={"https": proxy.url}, verify=str(authority[1]), timeout=10)
    assert answer.status_code == 200
    assert answer.text == "hello from myaccount.blob.core.windows.net /container/blob?x=1"


def test_the_certificate_is_checked_end_to_end_not_by_the_proxy(tls_server) -> None:
    with ConnectProxy({"*.blob.core.windows.net": tls_server}, passthrough=False) as proxy:
        with pytest.raises(requests.exceptions.SSLError):  # the system roots do not trust the emulator's CA
            requests.get("https://myaccount.blob.core.windows.net/", proxies={"https": proxy.url}, timeout=10)


def test_other_hosts_are_refused_without_passthrough(tls_server) -> None:
    with ConnectProxy({"*.blob.core.windows.net": tls_server}, passthrough=False) as proxy:
        with pytest.raises(requests.exceptions.ProxyError, match="403"):
            requests.get("https://management.azure.com/", proxies={"https": proxy.url}, timeout=10)


def test_other_hosts_pass_through_an_upstream_proxy_with_its_credentials(plain_server) -> None:
    host, port = plain_server
    seen: list[bytes] = []

    class Upstream(socketserver.BaseRequestHandler):  # a corporate proxy that wants a password
        def handle(self) -> None:
            head = b""
            while b"\r\n\r\n" not in head:
                head += self.request.recv(4096)
            seen.append(head)
            with socket.create_connection((host, port)) as target:
                self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                data = self.request.recv(4096)
                target.sendall(data)
                while chunk := target.recv(4096):
                    self.request.sendall(chunk)

    upstream = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        with ConnectProxy({}, upstream=f"http://user:p%40ss@127.0.0.1:{upstream.server_address[1]}") as proxy:
            with socket.create_connection(proxy.address, timeout=10) as conn:
                conn.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
                assert conn.recv(1024).startswith(b"HTTP/1.1 200")
                conn.sendall(b"GET /through HTTP/1.1\r\nHost: direct\r\nConnection: close\r\n\r\n")
                reply = b""
                while chunk := conn.recv(4096):
                    reply += chunk
    finally:
        upstream.shutdown()
        upstream.server_close()
    assert reply.endswith(b"hello from direct /through")
    assert seen and seen[0].startswith(b"CONNECT example.com:443") and b"Proxy-Authorization: Basic dXNlcjpwQHNz" in seen[0]


def test_passthrough_is_for_https_only(plain_server) -> None:
    host, port = plain_server
    with ConnectProxy({}, upstream="") as proxy:
        with socket.create_connection(proxy.address, timeout=10) as conn:
            conn.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            assert conn.recv(1024).split()[1] == b"403"  # not a relay to any port


def test_plain_http_requests_and_garbage_get_an_http_error() -> None:
    with ConnectProxy({}, passthrough=False) as proxy:
        for request, status in [(b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", b"501"),
                                (b"CONNECT nonsense HTTP/1.1\r\n\r\n", b"400")]:
            with socket.create_connection(proxy.address, timeout=10) as conn:
                conn.sendall(request)
                assert conn.recv(1024).split()[1] == status


def test_the_environment_keeps_local_addresses_direct_and_the_existing_no_proxy() -> None:
    with ConnectProxy({}) as proxy:
        env = proxy.environment({"NO_PROXY": "corp.internal"})
    assert env["HTTPS_PROXY"] == env["https_proxy"] == proxy.url
    assert env["NO_PROXY"].split(",") == ["corp.internal", "127.0.0.1", "localhost", "::1"]
