"""AWS's own hostnames, answered by the SageMaker emulator, for calls that ignore ``AWS_ENDPOINT_URL``.

Some code builds AWS URLs itself: the SageMaker Python SDK asks STS at its fixed regional address
(``https://sts.<region>.amazonaws.com``, given as ``endpoint_url``, which ``AWS_ENDPOINT_URL`` does
not override) for the account id behind its default bucket name, and sends its telemetry to an S3
host of its own. For those, the emulator serves the same WSGI app over TLS too, with a certificate
for ``*.amazonaws.com``, ``*.<region>.amazonaws.com`` and the S3 virtual-host names from a CA of
its own, and a :class:`~cloudtrain.emulators.proxy.ConnectProxy` tunnels ``*.amazonaws.com`` to it.
:meth:`AwsHostnames.environment` is what a shell exports: ``HTTPS_PROXY`` / ``NO_PROXY`` (local
addresses stay direct) and ``AWS_CA_BUNDLE``, read by botocore only: the roots botocore trusted
(the ``AWS_CA_BUNDLE`` already set, else certifi's) plus the emulator's CA, so real AWS endpoints
still verify. Other hosts pass through the proxy unchanged (``passthrough=False``: refused, for
tests that must not reach the network).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any, Callable

from cloudtrain.emulators.common import ServerThread

BUNDLE_FILE = "aws-ca-bundle.pem"


def certificate_names(region: str) -> list[str]:
    return ["amazonaws.com", "*.amazonaws.com", f"*.{region}.amazonaws.com", "*.s3.amazonaws.com",
            f"*.s3.{region}.amazonaws.com", "127.0.0.1", "localhost"]


def _trusted_roots() -> bytes:
    configured = os.environ.get("AWS_CA_BUNDLE")
    if configured and os.path.isfile(configured):
        return Path(configured).read_bytes()
    import certifi

    return Path(certifi.where()).read_bytes()


class AwsHostnames:
    """A TLS server for ``app`` answering AWS hostnames, and the proxy that sends them there."""

    def __init__(self, app: Callable[..., Any], directory: Path, region: str, *, host: str = "127.0.0.1",
                 passthrough: bool = True, request_handler: Any = None) -> None:
        self.app, self.directory, self.region, self.host = app, directory, region, host
        self.passthrough, self.request_handler = passthrough, request_handler
        self.bundle = directory / BUNDLE_FILE
        self.https: ServerThread | None = None
        self.proxy: Any = None

    def _ssl_context(self) -> ssl.SSLContext:
        import trustme

        authority = trustme.CA(organization_name="cloudtrain SageMaker emulator")
        certificate = authority.issue_cert(*certificate_names(self.region))
        self.bundle.write_bytes(_trusted_roots().rstrip(b"\n") + b"\n" + authority.cert_pem.bytes())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        certificate.configure_cert(context)
        return context

    def start(self) -> "AwsHostnames":
        from cloudtrain.emulators.proxy import ConnectProxy

        self.https = ServerThread(self.app, self.host, 0, self.request_handler, ssl_context=self._ssl_context()).start()
        self.proxy = ConnectProxy({"*.amazonaws.com": (self.host, self.https.port), "amazonaws.com": (self.host, self.https.port)},
                                  host=self.host, passthrough=self.passthrough).start()
        return self

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self.https is not None:
            self.https.stop()
            self.https = None

    def environment(self) -> dict[str, str]:
        if self.proxy is None:
            return {}
        return {**self.proxy.environment(), "AWS_CA_BUNDLE": str(self.bundle)}
