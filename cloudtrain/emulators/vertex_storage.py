"""The Vertex AI emulator's Cloud Storage: ``gcp-storage-emulator`` in memory, which
``google-cloud-storage`` reaches through ``STORAGE_EMULATOR_HOST``.

One difference from the plain emulator, on purpose: a bucket is created on its first upload (a
user's ``staging_bucket`` or output bucket need not be created by hand first, as they would already
exist in the user's project). Reading or listing a bucket that was never written still answers 404.

Faults (:class:`cloudtrain.emulators.common.Faults`, shared with the rest of the Vertex emulator):
operations are named after the JSON API's methods, ``Storage.Objects.Insert`` (a multipart upload,
the start of a resumable one and each of its chunks), ``Storage.Objects.Get`` (metadata and
downloads), ``Storage.Objects.List``, ``Storage.Buckets.Get``..., from the route the emulator's own
router matches. ``throttle`` answers 429 (``rateLimitExceeded``), ``server_error`` 503
(``backendError``), both as Cloud Storage's JSON error; ``drop_before`` reads the request and closes
the connection (nothing stored); ``drop_after`` stores the upload, then closes the connection
without an answer. Calls carrying :data:`~cloudtrain.emulators.common.INTERNAL_HEADER` (the
emulator's own client) are never failed.
"""

from __future__ import annotations

import io
import json
import re
import socket
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cloudtrain.emulators.common import INTERNAL_HEADER, Faults

#: the emulator's handler names that differ from the JSON API method they serve
_METHODS = {"ls": "list", "upload_partial": "insert", "download": "get"}
_ERRORS = {"throttle": (429, "Too Many Requests", "rateLimitExceeded",
                        "The rate of change requests to the object exceeds the rate limit. Please reduce the rate of requests."),
           "server_error": (503, "Service Unavailable", "backendError", "We encountered an internal error. Please try again.")}


def operation_of(method: str, path: str) -> str | None:
    """The operation a request names (``Storage.Objects.Insert``), by the emulator's own routes."""
    from gcp_storage_emulator import server

    route = path.split("?", 1)[0]
    for regex, handlers in server.HANDLERS:
        if re.fullmatch(regex, route):
            handler = handlers.get(method)
            if handler is None and method == "POST" and route.endswith("/o") and "uploadType=" in path:
                handler = server.objects.insert  # an upload without the /upload prefix, as the router takes it
            if handler is None:
                return None
            resource = handler.__module__.rsplit(".", 1)[-1].capitalize()
            name = _METHODS.get(handler.__name__, handler.__name__)
            return f"Storage.{resource}.{''.join(part.capitalize() for part in name.split('_'))}"
    return None


def _storage_class() -> type:
    from gcp_storage_emulator.handlers.buckets import create_bucket
    from gcp_storage_emulator.storage import Storage

    class BucketsOnFirstUpload(Storage):  # type: ignore[misc,valid-type]
        #: resumable upload id -> the object it completed: Cloud Storage answers a chunk sent again
        #: to a completed session (its first answer lost) with the object, the library with 404
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.completed: dict[str, dict[str, Any]] = {}

        def create_file(self, bucket_name: str, file_name: str, content: bytes, file_obj: dict[str, Any],
                        file_id: str | None = None) -> Any:
            create_bucket(bucket_name, self)  # no-op when it exists
            result = super().create_file(bucket_name, file_name, content, file_obj, file_id)
            if file_id:
                self.completed[file_id] = file_obj
            return result

        def create_resumable_upload(self, bucket_name: str, *args: Any, **kwargs: Any) -> Any:
            create_bucket(bucket_name, self)
            return super().create_resumable_upload(bucket_name, *args, **kwargs)

    return BucketsOnFirstUpload


def _handler_class(faults: Faults) -> type:
    from gcp_storage_emulator.server import RequestHandler

    class FaultyRequestHandler(RequestHandler):  # type: ignore[misc,valid-type]
        """The emulator's handler, with ``faults`` applied before (or after) each routed call."""

        def route(self, method: str) -> None:
            method = self.headers.get("x-http-method-override") or method
            operation = None if self.headers.get(INTERNAL_HEADER) else operation_of(method, self.path)
            rule = faults.take(operation) if operation else None
            if rule is None:
                self.serve(method)
            elif rule.kind in _ERRORS:
                code, phrase, reason, message = _ERRORS[rule.kind]
                self._drain()
                self._answer(code, phrase, {"error": {"code": code, "message": message,
                                                      "errors": [{"message": message, "domain": "global", "reason": reason}]}})
            elif rule.kind == "drop_before":
                self._drain()
                self._drop()
            else:  # drop_after: the call takes effect, its answer is lost
                answer, self.wfile = self.wfile, io.BytesIO()
                try:
                    self.serve(method)
                finally:
                    self.wfile = answer
                self._drop()

        def serve(self, method: str) -> None:
            kind = self.headers.get("Content-Type") or ""
            if kind.startswith("multipart/") and "boundary='" in kind:
                # gcloud storage quotes the boundary in single quotes, which Cloud Storage takes and
                # Python's MIME parser (the storage emulator's) does not: the same boundary, in double quotes
                self.headers.replace_header("Content-Type", re.sub(r"boundary='([^']*)'", r'boundary="\1"', kind))
            extra = re.fullmatch(r"/storage/v1/b/([^/?]+)/(storageLayout|managedFolders)", urlsplit(self.path).path)
            if extra and method == "GET":  # what gcloud storage reads before it deletes a bucket
                bucket = self.storage.get_bucket(extra.group(1))
                if bucket is None:
                    self._answer(404, "Not Found", {"error": {"code": 404, "message": "The specified bucket does not exist."}})
                elif extra.group(2) == "managedFolders":  # none: the emulator creates no managed folders
                    self._answer(200, "OK", {"kind": "storage#managedFolders", "items": []})
                else:
                    self._answer(200, "OK", {"kind": "storage#storageLayout", "bucket": extra.group(1),
                                             "location": bucket.get("location", "US"), "locationType": "multi-region",
                                             "hierarchicalNamespace": {"enabled": False}})
                return
            upload_id = parse_qs(urlsplit(self.path).query).get("upload_id", [""])[0]
            done = self.storage.completed.get(upload_id) if method == "PUT" else None
            if done is None:
                getattr(super(), f"do_{method}")()
            else:
                self._drain()
                self._answer(200, "OK", done)

        def do_GET(self) -> None:
            self.route("GET")

        def do_POST(self) -> None:
            self.route("POST")

        def do_PUT(self) -> None:
            self.route("PUT")

        def do_DELETE(self) -> None:
            self.route("DELETE")

        def do_PATCH(self) -> None:
            self.route("PATCH")

        def _drain(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > 0:
                self.rfile.read(length)
            self.close_connection = True  # a chunked body left unread must not be taken for the next request

        def _answer(self, code: int, phrase: str, answer: dict[str, Any]) -> None:
            body = json.dumps(answer).encode()
            self.send_response(code, phrase)
            for key, value in (("Content-Type", "application/json; charset=UTF-8"), ("Content-Length", str(len(body))),
                               ("Connection", "close")):
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _drop(self) -> None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    return FaultyRequestHandler


class StorageServer:
    """The storage emulator on ``host:port`` with ``bucket`` created empty; ``faults`` (a
    :class:`~cloudtrain.emulators.common.Faults`) fail its calls. One request at a time, as the
    library's own server answers them."""

    def __init__(self, host: str, port: int, bucket: str | None = None, faults: Faults | None = None) -> None:
        from functools import partial
        from http.server import HTTPServer

        from gcp_storage_emulator.handlers.buckets import create_bucket

        self.host, self.port = host, port
        self.faults = faults if faults is not None else Faults()
        self.storage = _storage_class()(use_memory_fs=True)
        if bucket:
            create_bucket(bucket, self.storage)
        self._httpd = HTTPServer((host, port), partial(_handler_class(self.faults), self.storage))
        self.port = self._httpd.server_address[1]  # the one chosen when ``port`` is 0
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="vertex-storage", daemon=True)

    def start(self) -> "StorageServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
