"""The one TLS address the Vertex AI emulator's Google hostnames reach through the CONNECT proxy,
serving both transports the Google SDKs use on ``<host>:443``.

It terminates TLS with the emulator's certificate (:class:`cloudtrain.emulators.vertex_grpc.Authority`)
and offers ALPN ``h2`` and ``http/1.1``: a connection that negotiates ``h2`` (gRPC) is spliced to the
plaintext gRPC server, any other to the plaintext REST server (the JobService, PipelineService and
Cloud Logging routes), both on 127.0.0.1. So ``aiplatform.init(api_transport="rest")``,
``google-cloud-logging`` over gRPC or REST and the default gRPC clients all find their service at
its real name.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, Callable, Iterable

from cloudtrain.emulators.tcp import TcpService, splice

_CHUNK = 65536


def _read(tls: ssl.SSLSocket) -> bytes:
    """What ``tls`` has now (every decrypted byte it buffers), b"" at its end."""
    data = tls.recv(_CHUNK)
    while data and tls.pending():
        data += tls.recv(tls.pending())
    return data


class TlsFront:
    """TLS on ``host`` at a free port, split by ALPN between ``grpc`` and ``rest`` (local addresses)."""

    def __init__(self, context: ssl.SSLContext, grpc: tuple[str, int], rest: tuple[str, int], host: str = "127.0.0.1") -> None:
        context.set_alpn_protocols(["h2", "http/1.1"])
        self.context, self.grpc, self.rest = context, grpc, rest
        self._service = TcpService(self._handle, host, 0, name="vertex-tls-front")

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(30)
        try:
            tls = self.context.wrap_socket(client, server_side=True)
        except (OSError, ssl.SSLError):
            return  # a client that does not trust the emulator's CA, or not TLS at all
        target = self.grpc if tls.selected_alpn_protocol() == "h2" else self.rest
        try:
            backend = socket.create_connection(target, timeout=10)
        except OSError:
            tls.close()
            return
        with tls, backend:
            tls.settimeout(None)
            backend.settimeout(None)
            splice(tls, backend, self._service.stopping,
                   read=lambda sock: _read(sock) if isinstance(sock, ssl.SSLSocket) else sock.recv(_CHUNK))

    @property
    def address(self) -> tuple[str, int]:
        return self._service.address

    def start(self) -> "TlsFront":
        self._service.start()
        return self

    def stop(self) -> None:
        self._service.stop()


def server_context(authority: Any) -> ssl.SSLContext:
    """A TLS server context presenting ``authority``'s certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.certificate.configure_cert(context)
    return context


class ByHost:
    """A WSGI app that sends requests for the hostnames in ``apps`` to theirs (the REST side serves
    more than one Google hostname), others to ``default``."""

    def __init__(self, apps: dict[str, Callable[..., Any]], default: Callable[..., Any]) -> None:
        self.apps, self.default = apps, default

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        host = (environ.get("HTTP_HOST") or "").rsplit(":", 1)[0].lower()
        return self.apps.get(host, self.default)(environ, start_response)
