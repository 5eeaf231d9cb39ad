"""Environments of the Azure ML emulator's workspace: the versions the SDK registers (a custom
``Environment(image=..., conda_file=...)`` becomes ``CliV2AnonymousEnvironment/versions/<hash>``
on ``jobs.create_or_update``) and Azure ML's curated environments (``AzureML-<name>``, version 1;
``@latest`` resolves to it), answered as Azure ML's ARM API does (PUT, GET, list versions newest
first). Any other name is not found, as in a real workspace, and a job whose ``environmentId``
names no environment of the workspace (``azureml:<name>:<version>``, ``azureml:<name>@latest`` or
an ARM id) is refused. Environments of registries (``azureml://registries/...``) are accepted as
named: the emulator has no registry to look them up in.

The emulator records an environment's image, conda file or build context and does not build it:
jobs run on this machine with the emulator's own Python, whatever their environment says.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any, Callable

from cloudtrain.emulators.azureml_answers import Response, azure_error, now_iso

CURATED_PREFIX = "AzureML-"


class Environments:
    """Registered environment versions by (name, version); ``resource_id(tail)`` builds ARM ids."""

    def __init__(self, resource_id: Callable[[str], str]) -> None:
        self.resource_id = resource_id
        self.versions: dict[tuple[str, str], dict[str, Any]] = {}
        self.lock = threading.RLock()

    def _document(self, name: str, version: str, properties: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.resource_id(f"environments/{name}/versions/{version}"), "name": version,
                "type": "Microsoft.MachineLearningServices/workspaces/environments/versions", "properties": properties,
                "systemData": {"createdAt": now_iso(), "createdBy": "cloudtrain emulator"}}

    def _curated(self, name: str) -> dict[str, Any]:
        image = f"mcr.microsoft.com/azureml/curated/{name[len(CURATED_PREFIX):].lower()}:1"
        return self._document(name, "1", {"image": image, "osType": "Linux", "environmentType": "Curated",
                                          "isAnonymous": False, "provisioningState": "Succeeded"})

    def find(self, name: str, version: str) -> dict[str, Any] | None:
        with self.lock:
            doc = self.versions.get((name, version))
        if doc is None and name.startswith(CURATED_PREFIX) and version == "1":
            doc = self._curated(name)
        return doc

    def put(self, name: str, version: str, body: bytes) -> Response:
        sent = json.loads(body or b"{}")
        properties = dict(sent.get("properties") or {})
        if not any(properties.get(key) for key in ("image", "build")):
            return azure_error(400, "UserError", "an environment needs an image or a build context (properties.image or properties.build)")
        properties.setdefault("osType", "Linux")
        properties.update(environmentType="UserCreated", provisioningState="Succeeded")
        with self.lock:
            old = self.versions.get((name, version))
            if old is not None:
                if old["properties"].get("image") != properties.get("image") or \
                        old["properties"].get("condaFile") != properties.get("condaFile"):
                    return azure_error(409, "UserError", f"environment {name}:{version} already exists with other contents; "
                                                    f"give it a new version")
                return 200, {}, old
            doc = self._document(name, version, properties)
            self.versions[(name, version)] = doc
        return 201, {}, doc

    def get(self, name: str, version: str) -> Response:
        doc = self.find(name, version)
        return (200, {}, doc) if doc else azure_error(404, "UserError", f"environment {name}:{version} not found in this workspace")

    def list(self, name: str) -> Response:
        with self.lock:
            found = [doc for (env, _), doc in self.versions.items() if env == name]
        if not found and name.startswith(CURATED_PREFIX):
            found = [self._curated(name)]
        found.sort(key=lambda doc: doc["systemData"]["createdAt"], reverse=True)
        return 200, {}, {"value": found}

    def missing(self, reference: str) -> str | None:
        """Why a job's ``environmentId`` names no environment here (None: it does, or it is a registry's)."""
        if reference.startswith("azureml://registries/"):
            return None
        match = re.search(r"/environments/([^/]+)/versions/([^/]+)$", reference) or re.fullmatch(r"azureml:([^:@/]+):([^:@/]+)", reference)
        if match:
            name, version = match.groups()
            return None if self.find(name, version) else f"environment {name}:{version} not found in this workspace"
        match = re.fullmatch(r"azureml:([^:@/]+)@([^:@/]+)", reference)
        if match:
            name, label = match.groups()
            if label != "latest":
                return f"environment {name}@{label}: the emulator knows the label latest only"
            return None if self.list(name)[2]["value"] else f"environment {name} not found in this workspace"
        return f"environment {reference!r} is not an environment name, id or registry URI"
