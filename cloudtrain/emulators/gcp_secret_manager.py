"""Secret Manager for the Vertex AI emulator, at ``secretmanager.googleapis.com`` over gRPC (the
``google-cloud-secret-manager`` client's default transport) and REST (``transport="rest"``), reached
like the JobService: the CONNECT proxy tunnels the hostname to the emulator's TLS front, which
splits gRPC from REST (:mod:`cloudtrain.emulators.vertex_front`). So a user's unchanged
``secretmanager.SecretManagerServiceClient()`` works with the exported environment alone, and so
does the job's entry shim resolving a ``gcp_secret`` reference inside the job.

Methods: ``CreateSecret``, ``GetSecret``, ``ListSecrets``, ``DeleteSecret``, ``AddSecretVersion``,
``GetSecretVersion``, ``ListSecretVersions`` and ``AccessSecretVersion`` (``versions/latest`` is the
newest version), for ``projects/P/secrets/S`` and ``projects/P/locations/L/secrets/S`` names; others
answer UNIMPLEMENTED (gRPC) or 404 (REST). Names keep the project as the caller wrote it (Google
answers with the project number). A payload with ``data_crc32c`` is checked as Google does, and
access answers carry the payload's CRC32C. Errors are Google's: NOT_FOUND, ALREADY_EXISTS,
INVALID_ARGUMENT (gRPC status, or the JSON error body over REST).

Values are held in this process's memory only: never written to disk, logged or echoed in an
error. The service is not subject to faults. Messages are the SDK's own proto-plus types.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any, Callable, Iterable

HOST = "secretmanager.googleapis.com"
SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"
_SECRET = r"projects/[^/]+(?:/locations/[^/]+)?/secrets/[^/:]+"
_PARENT = r"projects/[^/]+(?:/locations/[^/]+)?"
_SECRET_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 501: "UNIMPLEMENTED"}


class SecretError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _crc32c(data: bytes) -> int:
    import google_crc32c

    return int(google_crc32c.value(data))


class SecretManager:
    """The secrets and their versions, and the operations on proto-plus messages."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.secrets: dict[str, Any] = {}  # name -> secretmanager_v1.Secret
        self.versions: dict[str, list[tuple[Any, bytes]]] = {}  # secret name -> [(SecretVersion, payload)]

    def _secret(self, name: str) -> Any:
        secret = self.secrets.get(name)
        if secret is None:
            raise SecretError(404, f"Secret [{name}] not found or has no versions.")
        return secret

    def create_secret(self, parent: str, secret_id: str, secret: Any) -> Any:
        from google.cloud import secretmanager_v1 as v1
        from google.protobuf.timestamp_pb2 import Timestamp

        if not re.fullmatch(_PARENT, parent or ""):
            raise SecretError(400, f"Invalid resource field value in the request: parent {parent!r}")
        if not _SECRET_ID.fullmatch(secret_id or ""):
            raise SecretError(400, "Invalid secret_id: it must be 1-255 letters, digits, '-' or '_'")
        name = f"{parent}/secrets/{secret_id}"
        created = Timestamp()
        created.GetCurrentTime()
        with self.lock:
            if name in self.secrets:
                raise SecretError(409, f"Secret [{name}] already exists.")
            stored = v1.Secret(secret)
            stored.name, stored.create_time = name, created
            if not stored.replication:
                stored.replication = v1.Replication(automatic=v1.Replication.Automatic())
            self.secrets[name], self.versions[name] = stored, []
            return stored

    def get_secret(self, name: str) -> Any:
        with self.lock:
            return self._secret(name)

    def list_secrets(self, parent: str, page_size: int, page_token: str) -> Any:
        from google.cloud import secretmanager_v1 as v1

        with self.lock:
            names = sorted(n for n in self.secrets if n.rsplit("/secrets/", 1)[0] == parent)
            start = int(page_token or 0)
            size = page_size if 0 < page_size <= 25000 else 25000
            page = names[start:start + size]
            token = str(start + size) if start + size < len(names) else ""
            return v1.ListSecretsResponse(secrets=[self.secrets[n] for n in page], next_page_token=token, total_size=len(names))

    def delete_secret(self, name: str) -> None:
        with self.lock:
            self._secret(name)
            del self.secrets[name], self.versions[name]

    def add_version(self, parent: str, payload: Any) -> Any:
        from google.cloud import secretmanager_v1 as v1
        from google.protobuf.timestamp_pb2 import Timestamp

        data = bytes(payload.data)
        if "data_crc32c" in payload and payload.data_crc32c != _crc32c(data):
            raise SecretError(400, "Checksum mismatch: the payload's data_crc32c does not match its data")
        created = Timestamp()
        created.GetCurrentTime()
        with self.lock:
            self._secret(parent)
            versions = self.versions[parent]
            version = v1.SecretVersion(name=f"{parent}/versions/{len(versions) + 1}", create_time=created,
                                       state=v1.SecretVersion.State.ENABLED, client_specified_payload_checksum="data_crc32c" in payload)
            versions.append((version, data))
            return version

    def _version(self, name: str) -> tuple[Any, bytes]:
        secret, _, number = name.rpartition("/versions/")
        with self.lock:
            versions = self.versions.get(secret)
            if not versions:
                raise SecretError(404, f"Secret [{secret}] not found or has no versions.")
            if number == "latest":
                return versions[-1]
            if number.isdigit() and 1 <= int(number) <= len(versions):
                return versions[int(number) - 1]
            raise SecretError(404, f"Secret Version [{name}] not found.")

    def get_version(self, name: str) -> Any:
        return self._version(name)[0]

    def list_versions(self, parent: str) -> Any:
        from google.cloud import secretmanager_v1 as v1

        with self.lock:
            self._secret(parent)
            versions = [version for version, _ in reversed(self.versions[parent])]  # newest first, as Google lists them
        return v1.ListSecretVersionsResponse(versions=versions, total_size=len(versions))

    def access(self, name: str) -> Any:
        from google.cloud import secretmanager_v1 as v1

        version, data = self._version(name)
        return v1.AccessSecretVersionResponse(name=version.name,
                                              payload=v1.SecretPayload(data=data, data_crc32c=_crc32c(data)))

    # -- gRPC ---------------------------------------------------------------------------------------

    def grpc_handler(self) -> Any:
        """The generic gRPC handler of :data:`SERVICE`."""
        import grpc
        from google.cloud import secretmanager_v1 as v1

        methods: dict[str, tuple[Callable[[Any], Any], Any]] = {
            "CreateSecret": (lambda r: self.create_secret(r.parent, r.secret_id, r.secret), v1.CreateSecretRequest),
            "GetSecret": (lambda r: self.get_secret(r.name), v1.GetSecretRequest),
            "ListSecrets": (lambda r: self.list_secrets(r.parent, r.page_size, r.page_token), v1.ListSecretsRequest),
            "DeleteSecret": (lambda r: self.delete_secret(r.name), v1.DeleteSecretRequest),
            "AddSecretVersion": (lambda r: self.add_version(r.parent, r.payload), v1.AddSecretVersionRequest),
            "GetSecretVersion": (lambda r: self.get_version(r.name), v1.GetSecretVersionRequest),
            "ListSecretVersions": (lambda r: self.list_versions(r.parent), v1.ListSecretVersionsRequest),
            "AccessSecretVersion": (lambda r: self.access(r.name), v1.AccessSecretVersionRequest),
        }

        def handle(work: Callable[[Any], Any]) -> Callable[[Any, Any], bytes]:
            def call(request: Any, context: Any) -> bytes:
                try:
                    answer = work(request)
                except SecretError as error:
                    context.abort(getattr(grpc.StatusCode, _STATUS.get(error.code, "UNKNOWN")), error.message)
                except Exception as error:  # an emulator bug: its type only, never a request's content
                    context.abort(grpc.StatusCode.INTERNAL, f"emulator internal error: {type(error).__name__}")
                return b"" if answer is None else type(answer).serialize(answer)
            return call

        return grpc.method_handlers_generic_handler(SERVICE, {
            name: grpc.unary_unary_rpc_method_handler(handle(work), request_deserializer=message.deserialize)
            for name, (work, message) in methods.items()})

    # -- REST (WSGI) --------------------------------------------------------------------------------

    def _rest(self, method: str, path: str, query: dict[str, str], body: bytes) -> Any:
        from google.cloud import secretmanager_v1 as v1

        def parsed(message: Any) -> Any:
            try:
                return message.from_json(body or b"{}")
            except Exception:
                raise SecretError(400, "Invalid JSON payload received.") from None

        routes: list[tuple[str, str, Callable[[re.Match[str]], Any]]] = [
            ("GET", rf"({_SECRET}/versions/[^/:]+):access", lambda m: self.access(m[1])),
            ("POST", rf"({_SECRET}):addVersion", lambda m: self.add_version(m[1], parsed(v1.AddSecretVersionRequest).payload)),
            ("GET", rf"({_SECRET}/versions/[^/:]+)", lambda m: self.get_version(m[1])),
            ("GET", rf"({_SECRET})/versions", lambda m: self.list_versions(m[1])),
            ("POST", rf"({_PARENT})/secrets", lambda m: self.create_secret(m[1], query.get("secretId", ""), parsed(v1.Secret))),
            ("GET", rf"({_PARENT})/secrets",
             lambda m: self.list_secrets(m[1], int(query.get("pageSize") or 0), query.get("pageToken", ""))),
            ("GET", rf"({_SECRET})", lambda m: self.get_secret(m[1])),
            ("DELETE", rf"({_SECRET})", lambda m: self.delete_secret(m[1])),
        ]
        for verb, pattern, work in routes:
            match = re.fullmatch("/v1/" + pattern, path)
            if match and verb == method:
                return work(match)
        raise SecretError(404, f"The requested URL {path} was not found on this server.")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from urllib.parse import parse_qsl, unquote

        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        try:
            answer = self._rest(environ["REQUEST_METHOD"], unquote(environ.get("PATH_INFO", "")), query, body)
            status, text = "200 OK", b"{}" if answer is None else type(answer).to_json(answer).encode()
        except SecretError as error:
            status = f"{error.code} {_STATUS.get(error.code, 'ERROR')}"
            text = json.dumps({"error": {"code": error.code, "message": error.message,
                                         "status": _STATUS.get(error.code, "UNKNOWN")}}).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(text)))])
        return [text]
