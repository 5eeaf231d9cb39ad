"""Model assets of the Azure ML emulator's workspace, as Azure ML's ARM API answers them for
``ml_client.models``: versions (``PUT``/``GET models/<name>/versions/<version>``, list newest first),
containers (``GET models/<name>``, with ``latestVersion`` and ``nextVersion``, which
``create_or_update`` uses for a model without a version; ``GET models``, what ``models.list()``
reads). A version's ``modelUri`` (``azureml://jobs/<job>/outputs/artifacts/paths/...``, a datastore
path, or the upload of a local folder) is recorded as sent; a new ``modelUri`` for an existing
version is refused with Azure ML's "Asset paths cannot be updated.".
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable

from cloudtrain.emulators.azureml_answers import Response, azure_error, now_iso

_TYPE = "Microsoft.MachineLearningServices/workspaces/models"


class Models:
    """Registered model versions of one workspace by (name, version); ``resource_id(tail)`` builds ARM ids."""

    def __init__(self, resource_id: Callable[[str], str]) -> None:
        self.resource_id = resource_id
        self.versions: dict[tuple[str, str], dict[str, Any]] = {}
        self.lock = threading.RLock()

    def answer(self, method: str, rest: str, body: bytes) -> Response:
        """``rest``: the path after ``.../workspaces/<ws>/models``."""
        try:
            return self._answer(method, rest, body)
        except (KeyError, TypeError, ValueError, AttributeError) as refused:  # odd input: a 400, not a retried 500
            return azure_error(400, "UserError", f"the emulator could not take {method} models{rest}: {refused!r}")

    def _answer(self, method: str, rest: str, body: bytes) -> Response:
        parts = [part for part in rest.split("/") if part]
        if method == "GET" and not parts:
            with self.lock:
                names = sorted({name for name, _ in self.versions})
            return 200, {}, {"value": [self.container(name) for name in names]}
        if method == "GET" and len(parts) == 1:
            return (200, {}, self.container(parts[0])) if self.of(parts[0]) else \
                azure_error(404, "UserError", f"model {parts[0]} not found in this workspace")
        if method == "GET" and len(parts) == 2 and parts[1] == "versions":
            return 200, {}, {"value": self.of(parts[0])}
        if len(parts) == 3 and parts[1] == "versions":
            if method == "PUT":
                return self.put(parts[0], parts[2], body)
            if method == "GET":
                with self.lock:
                    doc = self.versions.get((parts[0], parts[2]))
                return (200, {}, doc) if doc else azure_error(404, "UserError", f"model {parts[0]}:{parts[2]} not found in this workspace")
        return azure_error(404, "NotFound", f"emulator: no route for {method} models{rest}")

    def put(self, name: str, version: str, body: bytes) -> Response:
        try:
            sent = json.loads(body or b"{}")
        except ValueError:
            return azure_error(400, "UserError", "a model version's body is not JSON")
        sent_properties = sent.get("properties") if isinstance(sent, dict) else None
        properties = dict(sent_properties) if isinstance(sent_properties, dict) else {}
        if not properties.get("modelUri"):
            return azure_error(400, "UserError", "a model version needs its path (properties.modelUri)")
        for key, default in (("modelType", "custom_model"), ("flavors", {}), ("tags", {}), ("properties", {}),
                             ("isAnonymous", False), ("isArchived", False)):
            if properties.get(key) is None:
                properties[key] = default  # Azure ML answers each (the SDK reads flavors as a map)
        properties["provisioningState"] = "Succeeded"
        with self.lock:
            old = self.versions.get((name, version))
            if old is not None and old["properties"]["modelUri"] != properties["modelUri"]:
                return azure_error(400, "UserError", "Asset paths cannot be updated.")
            created = old["systemData"]["createdAt"] if old else now_iso()
            doc = {"id": self.resource_id(f"models/{name}/versions/{version}"), "name": version, "type": f"{_TYPE}/versions",
                   "properties": properties, "systemData": {"createdAt": created, "createdBy": "cloudtrain emulator",
                                                            "lastModifiedAt": now_iso()}}
            self.versions[(name, version)] = doc
        return (200 if old else 201), {}, doc

    def of(self, name: str) -> list[dict[str, Any]]:
        """The versions of model ``name``, newest first (in the order they were created)."""
        with self.lock:
            return [doc for (model, _), doc in reversed(self.versions.items()) if model == name]

    def container(self, name: str) -> dict[str, Any]:
        versions = self.of(name)
        numbers = [int(doc["name"]) for doc in versions if doc["name"].isdecimal()]
        return {"id": self.resource_id(f"models/{name}"), "name": name, "type": _TYPE,
                "properties": {"latestVersion": versions[0]["name"] if versions else None,
                               "nextVersion": str(max(numbers) + 1 if numbers else 1), "isArchived": False},
                "systemData": {"createdAt": versions[-1]["systemData"]["createdAt"] if versions else now_iso(),
                               "createdBy": "cloudtrain emulator"}}
