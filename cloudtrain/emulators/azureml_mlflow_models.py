"""MLflow 3's logged models and the artifact routes of the Azure ML emulator's tracking server
(:mod:`~cloudtrain.emulators.azureml_mlflow`).

- ``logged-models``: create (``POST``), get, finalize (``PATCH``: ``READY`` or ``UPLOAD_FAILED``),
  delete, tags (``PATCH .../tags``, ``DELETE .../tags/<key>``), parameters (``POST .../params``)
  and search (``POST logged-models/search``, by experiment and MLflow's search filter). What ``mlflow.<flavor>.log_model`` and ``mlflow.autolog()`` call. A model's
  ``artifact_uri`` is ``ExperimentRun/dcid.<source run>/models/<model id>/artifacts`` in the
  workspace's storage (``LoggedModels/<model id>/artifacts`` without a source run).
- ``mlflow-artifacts/artifacts``: ``PUT <path>`` (upload), ``GET <path>`` (download),
  ``GET ?path=<folder>`` (the folder's entries: ``{"files": [{"path", "is_dir", "file_size"}]}``) and
  ``DELETE <path>``, over the workspace's blob container (writes and deletes only inside a run's or
  a logged model's artifacts); what MLflow's ``mlflow-artifacts:`` URIs resolve to under a
  ``http(s)`` tracking URI.
"""

from __future__ import annotations

import shutil
import uuid
from typing import TYPE_CHECKING, Any, Callable

from cloudtrain.emulators.azureml_mlflow_answers import Answer, error, now_ms, through_mlflow
from cloudtrain.emulators.azureml_storage import is_partial

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.emulators.azureml_service import AzureMLService

_FINAL = ("LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")


class LoggedModels:
    """The logged models of one workspace; ``experiment_known(id)`` names an experiment id's
    experiment, or None."""

    def __init__(self, service: "AzureMLService", experiment_known: Callable[[str], str | None]) -> None:
        self.service, self.experiment_known = service, experiment_known
        self.models: dict[str, dict[str, Any]] = {}  # model id -> {"info": ..., "params": {...}, "tags": {...}}

    def answer(self, request: Any, rest: str, data: dict[str, Any]) -> Answer:
        method, parts = request.method, [part for part in rest.split("/") if part]
        if not parts and method == "POST":
            return self.create(data)
        if parts == ["search"] and method == "POST":
            return self.search(data)
        if not parts:
            return error(404, "ENDPOINT_NOT_FOUND", f"the emulator does not answer {method} logged-models")
        with self.service.lock:
            model = self.models.get(parts[0])
            if model is None:
                return error(404, "RESOURCE_DOES_NOT_EXIST", f"Logged model with ID '{parts[0]}' not found.")
            if len(parts) == 1 and method == "GET":
                return 200, {"model": _view(model)}
            if len(parts) == 1 and method == "PATCH":
                status = str(data.get("status") or "")
                if status not in _FINAL:
                    return error(400, "INVALID_PARAMETER_VALUE", f"a logged model is finalized as one of {', '.join(_FINAL)}, "
                                                                 f"not {status!r}")
                model["info"].update(status=status, last_updated_timestamp_ms=now_ms())
                return 200, {"model": _view(model)}
            if len(parts) == 1 and method == "DELETE":
                del self.models[parts[0]]
                return 200, {}
            if parts[1:] == ["tags"] and method == "PATCH":
                model["tags"].update({str(t.get("key")): str(t.get("value", "")) for t in data.get("tags") or []})
                return 200, {}
            if len(parts) >= 3 and parts[1] == "tags" and method == "DELETE":
                model["tags"].pop("/".join(parts[2:]), None)  # MLflow does not quote a key's "/"
                return 200, {}
            if parts[1:] == ["params"] and method == "POST":
                model["params"].update({str(p.get("key")): str(p.get("value", "")) for p in data.get("params") or []})
                return 200, {}
        return error(404, "ENDPOINT_NOT_FOUND", f"the emulator does not answer {method} logged-models/{rest}")

    def create(self, data: dict[str, Any]) -> Answer:
        experiment = str(data.get("experiment_id") or "")
        if self.experiment_known(experiment) is None:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"No Experiment with id={experiment} exists")
        model_id, run = f"m-{uuid.uuid4().hex}", str(data.get("source_run_id") or "")
        home = f"ExperimentRun/dcid.{run}/models/{model_id}" if run else f"LoggedModels/{model_id}"
        now = now_ms()
        model = {"info": {"model_id": model_id, "experiment_id": experiment, "name": str(data.get("name") or "model"),
                          "creation_timestamp_ms": now, "last_updated_timestamp_ms": now,
                          "artifact_uri": f"mlflow-artifacts:/{home}/artifacts", "status": "LOGGED_MODEL_PENDING",
                          "model_type": str(data.get("model_type") or ""), "source_run_id": run},
                 "params": {str(p.get("key")): str(p.get("value", "")) for p in data.get("params") or []},
                 "tags": {str(t.get("key")): str(t.get("value", "")) for t in data.get("tags") or []}}
        with self.service.lock:
            self.models[model_id] = model
            return 200, {"model": _view(model)}

    def search(self, data: dict[str, Any]) -> Answer:
        """The experiments' models, newest first, that match ``filter`` (MLflow's own search filter,
        as MLflow's stores apply it: ``name = 'model'``, ``tags.<key> = ...``, ``params.<key> ...``)."""
        experiments = {str(e) for e in data.get("experiment_ids") or []}
        with self.service.lock:
            found = [_view(m) for m in self.models.values() if not experiments or m["info"]["experiment_id"] in experiments]
        if data.get("filter"):
            from mlflow.entities import LoggedModel
            from mlflow.protos.service_pb2 import LoggedModel as LoggedModelProto
            from mlflow.utils.search_utils import SearchLoggedModelsUtils

            def apply(models: list[Any]) -> list[Any]:
                SearchLoggedModelsUtils.parse_search_filter(str(data["filter"]))  # refused as MLflow refuses it, models or none
                return SearchLoggedModelsUtils.filter_logged_models(models, str(data["filter"]))

            kept = {m.model_id for m in through_mlflow(found, LoggedModel, LoggedModelProto, apply)}
            found = [view for view in found if view["info"]["model_id"] in kept]
        found.sort(key=lambda m: -m["info"]["creation_timestamp_ms"])
        return 200, {"models": found[:int(data.get("max_results") or 100)]}


def _view(model: dict[str, Any]) -> dict[str, Any]:
    return {"info": {**model["info"], "tags": [{"key": k, "value": v} for k, v in model["tags"].items()]},
            "data": {"params": [{"key": k, "value": v} for k, v in model["params"].items()], "metrics": []}}


class Artifacts:
    """``mlflow-artifacts/artifacts`` over the workspace's blob container."""

    def __init__(self, service: "AzureMLService") -> None:
        self.service = service

    def answer(self, request: Any, rest: str) -> Answer:
        head, _, path = rest.partition("/")
        if head != "artifacts":
            return error(404, "ENDPOINT_NOT_FOUND", f"the emulator does not answer mlflow-artifacts/{rest}")
        if request.method == "GET" and not path:
            return self.listing(str(request.args.get("path") or ""))
        if not path or any(part in ("", ".", "..") for part in path.split("/")) or "\x00" in path:
            return error(400, "INVALID_PARAMETER_VALUE", f"not an artifact path: {path!r}")
        blobs, container = self.service.blobs, self.service.container
        target = blobs.path(container, path)
        if request.method in ("PUT", "DELETE") and not _in_an_artifact_store(path):
            return error(403, "PERMISSION_DENIED", f"{path!r} is not inside a run's or a logged model's artifacts "
                                                   f"(ExperimentRun/dcid.<run>/... or LoggedModels/<model id>/...)")
        if request.method == "PUT":
            blobs.put(container, path, request.get_data())
            return 200, {}
        if request.method == "GET":
            if not target.is_file():
                return error(404, "RESOURCE_DOES_NOT_EXIST", f"no artifact {path!r}")
            return 200, target.read_bytes()
        if request.method == "DELETE":
            if target.is_dir():
                shutil.rmtree(target)
            elif target.is_file():
                target.unlink()
            return 200, {}
        return error(404, "ENDPOINT_NOT_FOUND", f"the emulator does not answer {request.method} mlflow-artifacts/{rest}")

    def listing(self, folder: str) -> Answer:
        folder = folder.strip("/")
        if any(part in (".", "..") for part in folder.split("/")) or "\x00" in folder:
            return error(400, "INVALID_PARAMETER_VALUE", f"not an artifact path: {folder!r}")
        base = self.service.blobs.path(self.service.container, folder)
        if not base.is_dir():
            return 200, {"files": []}
        entries = [{"path": entry.name, "is_dir": True} if entry.is_dir() else
                   {"path": entry.name, "is_dir": False, "file_size": entry.stat().st_size}
                   for entry in sorted(base.iterdir()) if not is_partial(entry.name)]
        return 200, {"files": entries}


def _in_an_artifact_store(path: str) -> bool:
    """Whether ``path`` lies inside one run's (``ExperimentRun/dcid.<run>/``) or one logged model's
    (``LoggedModels/<id>/``) artifacts, not at their roots: where MLflow writes and deletes."""
    parts = path.split("/")
    return len(parts) >= 3 and ((parts[0] == "ExperimentRun" and parts[1].startswith("dcid.") and len(parts[1]) > 5)
                                or parts[0] == "LoggedModels")
