"""The MLflow model registry of the Azure ML emulator's tracking server
(:mod:`~cloudtrain.emulators.azureml_mlflow`): what ``log_model(..., registered_model_name=...)``,
``mlflow.register_model`` and ``models:/<name>/<version>`` (or ``@<alias>``) call.

``registered-models/``: ``create``, ``get``, ``search``, ``get-latest-versions``, ``set-tag`` and
``alias`` (set, get a version by it, delete); ``model-versions/``: ``create`` (a version is
``READY`` at once), ``get``, ``search``, ``get-download-uri`` and ``set-tag``. Searches take MLflow's
own filter (``name = 'iris'``), applied as MLflow's stores apply it. A version of a logged model
(``models:/<model id>``) downloads from the logged model's artifacts.

On Azure ML a registered MLflow model is also a model asset of the workspace: so here each new
version is also the workspace's model asset of the same name and version (``mlflow_model``, its path
the version's artifacts in the workspace's artifact store), which ``ml_client.models`` gets and
lists; a version's number continues after the asset's versions. (Assets registered through
``ml_client.models`` are not listed by MLflow's registry.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from cloudtrain.emulators.azureml_mlflow_answers import Answer, error, now_ms, through_mlflow

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.emulators.azureml_models import Models
    from cloudtrain.emulators.azureml_service import AzureMLService

Workspace = tuple[str, str, str]  # subscription, resource group, workspace


class ModelRegistry:
    """Registered models and their versions; ``logged_model_uri(model id)`` is a logged model's
    ``artifact_uri``, or None."""

    def __init__(self, service: "AzureMLService", logged_model_uri: Callable[[str], str | None],
                 assets: Callable[[Workspace], "Models"]) -> None:
        self.service, self.logged_model_uri, self.assets = service, logged_model_uri, assets
        #: name -> {"created", "updated", "description", "tags", "aliases", "versions": {version: entry}}
        self.models: dict[str, dict[str, Any]] = {}

    def answer(self, method: str, kind: str, verb: str, data: dict[str, Any], workspace: Workspace) -> Answer:
        with self.service.lock:
            if kind == "registered-models":
                return self.registered(method, verb, data)
            return self.versions(verb, data, workspace)

    def registered(self, method: str, verb: str, data: dict[str, Any]) -> Answer:
        name = str(data.get("name") or "")
        if verb == "create":
            if not name:
                return error(400, "INVALID_PARAMETER_VALUE", "a registered model needs a name")
            if name in self.models:
                return error(400, "RESOURCE_ALREADY_EXISTS", f"Registered Model (name={name}) already exists.")
            now = now_ms()
            self.models[name] = {"created": now, "updated": now, "description": str(data.get("description") or ""),
                                 "tags": _pairs(data.get("tags")), "aliases": {}, "versions": {}}
            return 200, {"registered_model": self.view(name)}
        if verb == "search":
            views = [self.view(each) for each in sorted(self.models)]
            return _search(views, str(data.get("filter") or ""), "registered_models", "RegisteredModel", "SearchModelUtils")
        if verb not in ("get", "get-latest-versions", "set-tag", "alias"):
            return error(404, "ENDPOINT_NOT_FOUND", f"the emulator does not answer {method} registered-models/{verb}")
        model = self.models.get(name)
        if model is None:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Registered Model with name={name} not found")
        if verb == "get":
            return 200, {"registered_model": self.view(name)}
        if verb == "get-latest-versions":
            return 200, {"model_versions": [self.version_view(name, version) for version in self.latest(name)]}
        if verb == "alias":
            alias = str(data.get("alias") or "")
            if method == "POST":
                if str(data.get("version")) not in model["versions"]:
                    return error(404, "RESOURCE_DOES_NOT_EXIST", f"Model Version (name={name}, version={data.get('version')}) not found")
                model["aliases"][alias] = str(data.get("version"))
                return 200, {}
            if method == "DELETE":
                model["aliases"].pop(alias, None)
                return 200, {}
            if alias not in model["aliases"]:
                return error(404, "RESOURCE_DOES_NOT_EXIST", f"Registered model alias {alias} not found.")
            return 200, {"model_version": self.version_view(name, model["aliases"][alias])}
        model["tags"][str(data.get("key"))] = str(data.get("value", ""))  # set-tag, the verb left
        return 200, {}

    def versions(self, verb: str, data: dict[str, Any], workspace: Workspace) -> Answer:
        name = str(data.get("name") or "")
        if verb == "search":
            views = [self.version_view(each, version) for each in sorted(self.models) for version in self.models[each]["versions"]]
            return _search(views, str(data.get("filter") or ""), "model_versions", "ModelVersion", "SearchModelVersionUtils")
        if verb not in ("create", "get", "get-download-uri", "set-tag"):
            return error(404, "ENDPOINT_NOT_FOUND", f"the emulator does not answer model-versions/{verb}")
        model = self.models.get(name)
        if model is None:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Registered Model with name={name} not found")
        if verb == "create":
            return self.create_version(name, data, workspace)
        version = str(data.get("version") or "")
        if version not in model["versions"]:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Model Version (name={name}, version={version}) not found")
        if verb == "get":
            return 200, {"model_version": self.version_view(name, version)}
        if verb == "get-download-uri":
            entry = model["versions"][version]
            return 200, {"artifact_uri": entry["storage"] or entry["source"]}
        model["versions"][version]["tags"][str(data.get("key"))] = str(data.get("value", ""))  # set-tag, the verb left
        return 200, {}

    def create_version(self, name: str, data: dict[str, Any], workspace: Workspace) -> Answer:
        """A new version of ``name``, numbered after the registry's and the workspace asset's
        versions, and recorded as the workspace's model asset too."""
        import json

        model, assets = self.models[name], self.assets(workspace)
        source, model_id, run = str(data.get("source") or ""), str(data.get("model_id") or ""), str(data.get("run_id") or "")
        storage = self.logged_model_uri(model_id) if model_id else None
        taken = [int(v) for v in model["versions"]] + [int(doc["name"]) for doc in assets.of(name) if doc["name"].isdecimal()]
        version, tags = str(max(taken, default=0) + 1), _pairs(data.get("tags"))
        location = storage or source
        path = location[len("mlflow-artifacts:/"):] if location.startswith("mlflow-artifacts:/") else None
        body = {"properties": {"modelUri": f"azureml://datastores/workspaceartifactstore/paths/{path.strip('/')}/" if path else location,
                               "modelType": "mlflow_model", "description": str(data.get("description") or "") or None,
                               "tags": tags, "jobName": run or None}}
        status, _, answered = assets.put(name, version, json.dumps(body).encode())
        if status >= 400:
            return error(400, "INVALID_PARAMETER_VALUE", f"the workspace's model asset {name}:{version} refused it: "
                                                         f"{answered['error']['message']}")
        now = now_ms()
        model["versions"][version] = {"version": version, "created": now, "source": source, "run_id": run, "model_id": model_id,
                                      "description": str(data.get("description") or ""), "tags": tags, "storage": storage}
        model["updated"] = now
        return 200, {"model_version": self.version_view(name, version)}

    def latest(self, name: str) -> list[str]:
        versions = self.models[name]["versions"]
        return [max(versions, key=int)] if versions else []

    def view(self, name: str) -> dict[str, Any]:
        model = self.models[name]
        return {"name": name, "creation_timestamp": model["created"], "last_updated_timestamp": model["updated"],
                "description": model["description"], "tags": [{"key": k, "value": v} for k, v in model["tags"].items()],
                "aliases": [{"alias": a, "version": v} for a, v in model["aliases"].items()],
                "latest_versions": [self.version_view(name, version) for version in self.latest(name)]}

    def version_view(self, name: str, version: str) -> dict[str, Any]:
        entry = self.models[name]["versions"][version]
        view = {"name": name, "version": entry["version"], "creation_timestamp": entry["created"],
                "last_updated_timestamp": entry["created"], "current_stage": "None", "description": entry["description"],
                "source": entry["source"], "status": "READY", "tags": [{"key": k, "value": v} for k, v in entry["tags"].items()],
                "aliases": [a for a, v in self.models[name]["aliases"].items() if v == entry["version"]]}
        view.update({key: entry[key] for key in ("run_id", "model_id") if entry[key]})
        return view


def _search(views: list[dict[str, Any]], filter_string: str, field: str, entity: str, utils: str) -> Answer:
    """``views`` that match ``filter_string``, by MLflow's own search filter for ``entity``."""
    if filter_string:
        from mlflow.entities import model_registry
        from mlflow.protos import model_registry_pb2
        from mlflow.utils import search_utils

        kept = {(e.name, str(getattr(e, "version", ""))) for e in through_mlflow(
            views, getattr(model_registry, entity), getattr(model_registry_pb2, entity),
            lambda found: getattr(search_utils, utils).filter(found, filter_string))}
        views = [view for view in views if (view["name"], str(view.get("version", ""))) in kept]
    return 200, {field: views}


def _pairs(items: Any) -> dict[str, str]:
    return {str(item.get("key")): str(item.get("value", "")) for item in items or [] if isinstance(item, dict)}
