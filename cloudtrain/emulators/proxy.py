"""An HTTP CONNECT proxy that sends the clouds' own hostnames to the local emulators.

The SDKs' HTTP stacks honour ``HTTPS_PROXY`` (requests and urllib3 under botocore, azure-core and
google-auth) and gRPC honours ``grpc_proxy`` / ``https_proxy``: for an ``https://`` URL they open a
tunnel with ``CONNECT host:443`` and speak TLS through it. For a hostname that an emulator serves
(``*.blob.core.windows.net``, ``us-central1-aiplatform.googleapis.com``...), :class:`ConnectProxy`
connects the tunnel to the emulator's local TLS port, which presents a certificate for that name
from the emulator's own CA (trusted through the CA bundle the emulator exports). The proxy never
sees the traffic in clear. Any other host is tunnelled, on port 443 only, to the real host unchanged
(through the proxy that was configured before, if any, with its credentials), so other programs in
the shell keep working; with ``passthrough=False`` (tests, which must not reach the network) other
hosts are refused with 403.

    proxy = ConnectProxy({"*.blob.core.windows.net": ("127.0.0.1", 8443)}).start()
    os.environ.update(proxy.environment())   # HTTPS_PROXY, https_proxy, NO_PROXY, no_proxy
"""

from __future__ import annotations

import fnmatch
import os
import socket
from typing import Any, Mapping
from urllib.parse import urlsplit

from cloudtrain.emulators.tcp import TcpService, splice

MAX_HEADER_BYTES = 64 * 1024
CONNECT_TIMEOUT_SECONDS = 10.0
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class ProxyError(Exception):
    """A tunnel that could not be opened: (HTTP status, reason)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status, self.reason = status, reason


def _read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    """(request head up to the blank line, bytes that came after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise ProxyError(400, "Bad Request")
        data += chunk
        if len(data) > MAX_HEADER_BYTES:
            raise ProxyError(431, "Request Header Fields Too Large")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


class ConnectProxy:
    """Tunnels ``CONNECT`` requests for the hostnames in ``routes`` (shell-style patterns, matched
    case-insensitively: ``"*.blob.core.windows.net"``) to local addresses; other hosts pass through
    to the real host (via ``upstream``, an ``http://host:port`` proxy, when given) or, with
    ``passthrough=False``, are refused."""

    def __init__(self, routes: Mapping[str, tuple[str, int]] | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 passthrough: bool = True, upstream: str | None = None) -> None:
        self.routes: dict[str, tuple[str, int]] = {pattern.lower(): address for pattern, address in (routes or {}).items()}
        self.passthrough = passthrough
        self.upstream = upstream if upstream is not None else _configured_proxy()
        self._service = TcpService(self._handle, host, port, name="cloudtrain-connect-proxy")

    # -- routing ------------------------------------------------------------------------------
    def add_route(self, pattern: str, address: tuple[str, int]) -> None:
        self.routes[pattern.lower()] = address

    def route(self, hostname: str) -> tuple[str, int] | None:
        """The local address serving ``hostname``, or None."""
        name = hostname.lower().rstrip(".")
        return next((address for pattern, address in self.routes.items() if fnmatch.fnmatchcase(name, pattern)), None)

    def _open(self, hostname: str, port: int) -> socket.socket:
        local = self.route(hostname)
        if local is not None:
            try:
                return socket.create_connection(local, timeout=CONNECT_TIMEOUT_SECONDS)
            except OSError:
                raise ProxyError(502, "Bad Gateway") from None
        if not self.passthrough or port != 443:  # an HTTPS proxy for the SDKs, never a relay to any port
            raise ProxyError(403, "Forbidden")
        try:
            if self.upstream:
                return _tunnel_via(self.upstream, hostname, port)
            return socket.create_connection((hostname, port), timeout=CONNECT_TIMEOUT_SECONDS)
        except OSError:
            raise ProxyError(502, "Bad Gateway") from None

    # -- serving ------------------------------------------------------------------------------
    def _handle(self, client: socket.socket) -> None:
        client.settimeout(CONNECT_TIMEOUT_SECONDS)
        try:
            head, early = _read_head(client)
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, _, rest = request_line.partition(" ")
            target = rest.partition(" ")[0]
            if method.upper() != "CONNECT":
                raise ProxyError(501, "Not Implemented (this proxy only tunnels CONNECT)")
            hostname, _, port_text = target.rpartition(":")
            if not hostname or not port_text.isdigit():
                raise ProxyError(400, "Bad Request")
            upstream = self._open(hostname.strip("[]"), int(port_text))
        except ProxyError as error:
            _answer(client, error.status, error.reason)
            return
        except OSError:
            return
        with upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            client.settimeout(None)
            upstream.settimeout(None)
            if early:
                upstream.sendall(early)
            splice(client, upstream, self._service.stopping)

    @property
    def address(self) -> tuple[str, int]:
        return self._service.address

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def start(self) -> "ConnectProxy":
        self._service.start()
        return self

    def stop(self) -> None:
        self._service.stop()

    def __enter__(self) -> "ConnectProxy":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def environment(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The variables that send the SDKs' HTTPS and gRPC traffic through this proxy; local
        addresses stay direct (added to the ``NO_PROXY`` already set, which is kept)."""
        environ = os.environ if environ is None else environ
        existing = [item.strip() for item in (environ.get("NO_PROXY") or environ.get("no_proxy") or "").split(",") if item.strip()]
        no_proxy = ",".join(dict.fromkeys([*existing, *LOCAL_HOSTS]))
        return {"HTTPS_PROXY": self.url, "https_proxy": self.url, "NO_PROXY": no_proxy, "no_proxy": no_proxy}


def _answer(client: socket.socket, status: int, reason: str) -> None:
    body = f"{status} {reason}\n".encode()
    try:
        client.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    except OSError:
        pass


def _configured_proxy() -> str | None:
    """The HTTPS proxy configured before the emulator's (so passing through keeps using it)."""
    value = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    return value or None


def _tunnel_via(upstream: str, hostname: str, port: int) -> socket.socket:
    import base64
    from urllib.parse import unquote

    parts = urlsplit(upstream if "://" in upstream else f"http://{upstream}")
    conn = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 8080), timeout=CONNECT_TIMEOUT_SECONDS)
    authorization = ""
    if parts.username is not None:  # an authenticated upstream proxy: its user and password, as clients send them
        token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
        authorization = f"Proxy-Authorization: Basic {token}\r\n"
    conn.sendall(f"CONNECT {hostname}:{port} HTTP/1.1\r\nHost: {hostname}:{port}\r\n{authorization}\r\n".encode())
    head, early = _read_head(conn)
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] != b"200" or early:
        conn.close()
        raise ProxyError(502, "Bad Gateway")
    return conn
