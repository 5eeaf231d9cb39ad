"""Azure Key Vault secrets for the Azure ML emulator: every ``https://<vault>.vault.azure.net``
(reached through the emulator's proxy) with the subset of the Key Vault REST API that
``azure-keyvault-secrets``' ``SecretClient`` uses to set, get and list secrets, so that
``azure_key_vault`` secrets of a job and a user's own ``SecretClient`` calls work offline.

As Key Vault does, a request without a bearer token is answered 401 with the challenge
(``WWW-Authenticate: Bearer authorization=..., resource="https://vault.azure.net"``) from which the
SDK takes the token's scope; a token other than the emulator's is refused. Vaults exist on first
use and are empty; secrets live in memory (versions kept, the newest answered without a version)
and their values are never logged.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from typing import Any

from cloudtrain.emulators.azureml_answers import Response, azure_error

VAULT_SUFFIX = ".vault.azure.net"
CHALLENGE = 'Bearer authorization="https://login.microsoftonline.com/{tenant}", resource="https://vault.azure.net"'


class KeyVaults:
    """Secrets of every emulated vault: ``(vault host, secret name) -> [versions, oldest first]``."""

    def __init__(self, token: str, tenant: str) -> None:
        self.token, self.tenant = token, tenant
        self.secrets: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.lock = threading.RLock()

    def __call__(self, request: Any, host: str, path: str) -> Response:
        authorization = request.headers.get("Authorization") or ""
        if not authorization.startswith("Bearer "):
            return 401, {"WWW-Authenticate": CHALLENGE.format(tenant=self.tenant)}, b""
        if authorization[len("Bearer "):] != self.token:
            return azure_error(401, "Unauthorized", "the access token is not one the emulator issued")
        vault = host.split(":")[0].lower()
        match = re.fullmatch(r"/secrets/(?P<name>[0-9A-Za-z-]+)(?:/(?P<version>[0-9a-f]*))?/?", path)
        if request.method == "PUT" and match and match.group("version") is None:
            return self.set(vault, match.group("name"), json.loads(request.get_data() or b"{}"))
        if request.method == "GET" and match:
            return self.get(vault, match.group("name"), match.group("version") or "")
        if request.method == "GET" and path.rstrip("/") == "/secrets":
            return self.list(vault)
        return azure_error(400, "BadParameter", f"the emulated Key Vault does not serve {request.method} {path}")

    def _bundle(self, vault: str, name: str, version: dict[str, Any], with_value: bool = True) -> dict[str, Any]:
        body = {"id": f"https://{vault}/secrets/{name}/{version['version']}", "attributes": dict(version["attributes"]),
                "tags": version.get("tags") or {}}
        if version.get("contentType"):
            body["contentType"] = version["contentType"]
        if with_value:
            body["value"] = version["value"]
        return body

    def set(self, vault: str, name: str, sent: dict[str, Any]) -> Response:
        if not isinstance(sent.get("value"), str):
            return azure_error(400, "BadParameter", "a secret needs a string value")
        now = int(time.time())
        version = {"version": uuid.uuid4().hex, "value": sent["value"], "contentType": sent.get("contentType"),
                   "tags": sent.get("tags") or {},
                   "attributes": {"enabled": bool((sent.get("attributes") or {}).get("enabled", True)), "created": now,
                                  "updated": now, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}}
        with self.lock:
            self.secrets.setdefault((vault, name), []).append(version)
        return 200, {}, self._bundle(vault, name, version)

    def get(self, vault: str, name: str, version: str) -> Response:
        with self.lock:
            versions = list(self.secrets.get((vault, name), []))
        found = next((v for v in versions if v["version"] == version), None) if version else (versions[-1] if versions else None)
        if found is None:
            label = f"{name}/{version}" if version else name
            return azure_error(404, "SecretNotFound", f"A secret with (name/id) {label} was not found in this key vault ({vault}).")
        if not found["attributes"]["enabled"]:
            return azure_error(403, "Forbidden", f"Operation get is not allowed on a disabled secret ({name}).")
        return 200, {}, self._bundle(vault, name, found)

    def list(self, vault: str) -> Response:
        with self.lock:
            items = [self._bundle(v, name, versions[-1], with_value=False) for (v, name), versions in self.secrets.items() if v == vault]
        for item in items:
            item["id"] = item["id"].rsplit("/", 1)[0]
        return 200, {}, {"value": items, "nextLink": None}
