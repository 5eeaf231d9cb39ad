"""A local Google Compute Engine metadata server, so that Application Default Credentials work with
no key file: ``google.auth.default()`` finds it through ``GCE_METADATA_HOST`` and ``GCE_METADATA_IP``
(``google/auth/compute_engine/_metadata.py``: the ping goes to ``http://$GCE_METADATA_IP/``, every
other request to ``http://$GCE_METADATA_HOST/computeMetadata/v1/...``) and returns
``compute_engine.Credentials`` with the project below, as on a Vertex AI replica or a GCE VM.

Routes (each needs the ``Metadata-Flavor: Google`` request header, as the real server does, and
answers with it): ``/`` (the ping), ``project/project-id``, ``project/numeric-project-id``,
``instance/service-accounts/`` and ``instance/service-accounts/{default|email}/`` (``?recursive=true``
gives ``{email, aliases, scopes}``), ``.../email``, ``.../scopes``, ``.../aliases``, ``.../token``
(GET or POST: ``{access_token, expires_in, token_type}``), ``universe/universe-domain``
(``googleapis.com``). Anything else is 404, which google-auth treats as "not set".

The token is an opaque string the emulators accept and check for nothing; it is not a Google token
and grants nothing anywhere else. Identity tokens (``.../identity``) are not served.

:class:`OAuthTokenService` answers Google's OAuth token endpoint (``POST https://oauth2.googleapis.com/token``,
reached through the emulator's proxy) with the same token, so the credentials a user already has work
offline too: gcloud's application default credentials (``authorized_user``, a refresh-token grant)
and service-account key files (``GOOGLE_APPLICATION_CREDENTIALS``, a signed JWT grant). What they
send stays on this machine and is neither checked nor kept.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Callable, Iterable

from cloudtrain.emulators.common import ServerThread, access_log_handler

_PREFIX = "/computeMetadata/v1/"
_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
TOKEN_SECONDS = 3599


class MetadataService:
    """The WSGI app of the metadata routes for one project and service account."""

    def __init__(self, project: str, service_account: str, project_number: str = "123456789012") -> None:
        self.project, self.service_account, self.project_number = project, service_account, project_number
        self.token = "cloudtrain-emulator-" + secrets.token_urlsafe(24)

    def answer(self, path: str, recursive: bool) -> tuple[int, str, str]:
        """(status, content type, body) of a GET or POST of ``path``."""
        if path == "/":
            return 200, "application/text", "computeMetadata/\n"
        if not path.startswith(_PREFIX):
            return 404, "text/html", "Not Found"
        key = path[len(_PREFIX):]
        text = {"project/project-id": self.project, "project/numeric-project-id": self.project_number,
                "universe/universe-domain": "googleapis.com", "instance/service-accounts/": "default/\n"
                f"{self.service_account}/\n"}.get(key)
        if text is not None:
            return 200, "application/text", text
        parts = key.split("/")
        if len(parts) < 3 or parts[:2] != ["instance", "service-accounts"] or parts[2] not in ("default", self.service_account):
            return 404, "text/html", "Not Found"
        info = {"aliases": ["default"], "email": self.service_account, "scopes": _SCOPES}
        leaf = "/".join(parts[3:])
        if leaf == "" and recursive:
            return 200, "application/json", json.dumps(info)
        if leaf == "":
            return 200, "application/text", "aliases\nemail\nidentity\nscopes\ntoken\n"
        if leaf == "email":
            return 200, "application/text", self.service_account
        if leaf in ("scopes", "aliases"):
            return 200, "application/text", "\n".join(info[leaf]) + "\n"
        if leaf == "token":
            return 200, "application/json", json.dumps({"access_token": self.token, "expires_in": TOKEN_SECONDS,
                                                        "token_type": "Bearer"})
        return 404, "text/html", "Not Found"

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from werkzeug.wrappers import Request

        request = Request(environ)
        if request.method not in ("GET", "POST"):
            code, kind, text = 405, "text/html", "Method Not Allowed"
        elif request.path != "/" and request.headers.get("Metadata-Flavor") != "Google":
            code, kind, text = 403, "text/html", "Missing required header \"Metadata-Flavor\": \"Google\""
        else:
            code, kind, text = self.answer(request.path, request.args.get("recursive", "").lower() == "true")
        body = text.encode()
        reason = {200: "OK", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}[code]
        start_response(f"{code} {reason}", [("Metadata-Flavor", "Google"), ("Content-Type", kind),
                                            ("Content-Length", str(len(body)))])
        return [body]


class MetadataServer:
    """:class:`MetadataService` on ``host:port`` (0: a free port); :meth:`environment` is what
    google-auth reads."""

    def __init__(self, project: str, service_account: str, host: str = "127.0.0.1", port: int = 0,
                 verbose: bool = False) -> None:
        self.service = MetadataService(project, service_account)
        self.host, self.port, self.verbose = host, port, verbose
        self._http: ServerThread | None = None

    def start(self) -> "MetadataServer":
        self._http = ServerThread(self.service, self.host, self.port, request_handler=access_log_handler(self.verbose)).start()
        self.port = self._http.port
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
            self._http = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        return {"GCE_METADATA_HOST": self.address, "GCE_METADATA_IP": self.address}


class OAuthTokenService:
    """``POST /token`` of ``oauth2.googleapis.com`` for every grant, answering ``service``'s token."""

    def __init__(self, service: MetadataService) -> None:
        self.service = service

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from werkzeug.wrappers import Request

        request = Request(environ)
        if request.method == "POST" and request.path == "/token" and request.form.get("grant_type"):
            code, answer = 200, {"access_token": self.service.token, "expires_in": TOKEN_SECONDS, "token_type": "Bearer",
                                 "scope": request.form.get("scope") or " ".join(_SCOPES)}
        else:
            code, answer = 400, {"error": "invalid_request", "error_description": "the emulator serves POST /token grants only"}
        body = json.dumps(answer).encode()
        start_response("200 OK" if code == 200 else "400 Bad Request",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
