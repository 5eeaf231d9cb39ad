"""The runs of the Azure ML emulator's MLflow tracking server (:mod:`~cloudtrain.emulators.azureml_mlflow`):
``mlflow/runs/...`` and ``mlflow/metrics/get-history``.

Two kinds of run, as on Azure ML:

- **a job's run**: its id is the job's name, it lives in run history beside the job
  (``service.runs``), and its status is the job's: MLflow's ``end_run`` (``runs/update``) does not end
  the job;
- **a run MLflow creates** (``runs/create``): ``mlflow.start_run()`` in a user's own session (a
  notebook with ``mlflow.set_tracking_uri(ml_client.workspaces.get(...).mlflow_tracking_uri)``), or
  ``start_run(nested=True)`` inside a job (its ``mlflow.parentRunId`` tag names the job's run). Its id
  is a new UUID, its status is what MLflow sets (``end_run`` finishes it), ``runs/delete`` and
  ``runs/restore`` change its lifecycle stage. It is no job: ``ml_client.jobs`` does not list it.

Metrics are kept as ``{key: [{"value", "step", "timestamp"}...]}`` in logging order. As in MLflow's
own stores, an exact repeat of a value is dropped, a run's latest value is that of its highest step,
and a parameter keeps its first value. ``runs/search`` applies MLflow's own filter, order and page
tokens (a sweep job is no MLflow run; its trials are).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from cloudtrain.emulators.azureml_mlflow_answers import Answer, error, now_ms, through_mlflow

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.emulators.azureml_service import AzureMLService

#: run history status -> MLflow run status
_STATUSES = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}
_MLFLOW_STATUSES = {"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"}
#: MLflow's ViewType, as the REST API sends it (a name or its number)
_VIEWS = {"ACTIVE_ONLY": {"active"}, "1": {"active"}, "DELETED_ONLY": {"deleted"}, "2": {"deleted"},
          "ALL": {"active", "deleted"}, "3": {"active", "deleted"}}


def experiment_id(name: str) -> str:
    """The id of the experiment ``name``, as run history gives it (``experimentId``)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name or "Default"))


class Runs:
    """The runs of ``service``'s jobs, and those MLflow creates; ``experiment_known``: the name of the
    experiment with an id, if the workspace has it."""

    def __init__(self, service: "AzureMLService", experiment_known: Callable[[str], str | None]) -> None:
        self.service = service
        self.experiment_known = experiment_known
        self.created: dict[str, dict[str, Any]] = {}  # run id -> a run MLflow created (under the service's lock)

    def record(self, name: str) -> dict[str, Any] | None:
        """Run ``name``'s record, a job's or a created one (call with the service's lock held)."""
        return self.service.runs.get(name) or self.created.get(name)

    def answer(self, method: str, verb: str, data: dict[str, Any]) -> Answer:
        if verb == "create":
            return self.create(data)
        if verb == "search":
            return self.search(data)
        name = data.get("run_id") or data.get("run_uuid") or ""
        with self.service.lock:
            run = self.record(name)
            if run is None:
                return error(404, "RESOURCE_DOES_NOT_EXIST", f"Run '{name}' not found")
            metrics, tracked = run.setdefault("metrics", {}), run.setdefault("mlflow", _tracked())
            if run.get("lifecycle_stage") == "deleted" and verb not in ("get", "restore", "delete"):
                return error(400, "INVALID_PARAMETER_VALUE", f"The run {name} must be in the 'active' state. "
                                                             "Current state is deleted.")
            if verb == "log-metric":
                _add(metrics, tracked["seen"], [_metric(data)])
            elif verb == "log-batch":  # all read first: a refused batch logs nothing
                values, tags = [_metric(item) for item in _entries(data, "metrics")], _entries(data, "tags")
                clash = _set_params(tracked["params"], _entries(data, "params"))
                if clash:
                    return clash
                _add(metrics, tracked["seen"], values)
                for item in tags:
                    tracked["tags"][str(item.get("key"))] = str(item.get("value", ""))
            elif verb == "log-parameter":
                clash = _set_params(tracked["params"], [data])
                if clash:
                    return clash
            elif verb == "set-tag":
                tracked["tags"][str(data.get("key"))] = str(data.get("value", ""))
            elif verb == "delete-tag":
                tracked["tags"].pop(str(data.get("key")), None)
            elif verb == "log-inputs":
                tracked["inputs"].extend(_entries(data, "datasets"))  # DatasetInput: {"tags", "dataset"}
                tracked["model_inputs"].extend(_entries(data, "models"))
            elif verb == "outputs":
                tracked["outputs"].extend(_entries(data, "models"))
            elif verb == "update":
                refused = self.update(name, run, data)
                if refused:
                    return refused
                return 200, {"run_info": self.run_info(name, run)}
            elif verb in ("delete", "restore"):
                if name not in self.created:
                    return error(400, "INVALID_PARAMETER_VALUE", f"Run '{name}' is a job's run: delete the job, not its run")
                run["lifecycle_stage"] = "deleted" if verb == "delete" else "active"
            elif verb != "get":
                return error(404, "ENDPOINT_NOT_FOUND", f"the emulator does not answer {method} runs/{verb}")
            if verb != "get":
                return 200, {}
            return 200, {"run": self.run_view(name, run)}

    def create(self, data: dict[str, Any]) -> Answer:
        """``runs/create`` (``mlflow.start_run`` without a run to resume): a new run in an experiment the
        workspace has, named as the request names it (else as MLflow's stores name one)."""
        experiment = str(data.get("experiment_id") or "")
        name = self.experiment_known(experiment)
        if name is None:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Could not find experiment with ID {experiment}")
        experiment = experiment_id(name)  # MLflow's default "0" is the workspace's Default
        tags = {str(item.get("key")): str(item.get("value", "")) for item in _entries(data, "tags")}
        run_name = str(data.get("run_name") or tags.get("mlflow.runName") or "")
        if not run_name:
            from mlflow.utils.name_utils import _generate_random_name

            run_name = _generate_random_name()
        tags["mlflow.runName"] = run_name
        name = str(uuid.uuid4())
        run = {"experiment_id": experiment, "run_name": run_name, "user_id": str(data.get("user_id") or ""), "status": "RUNNING",
               "start_time": int(data.get("start_time") or now_ms()), "end_time": None, "lifecycle_stage": "active",
               "parent": tags.get("mlflow.parentRunId"), "metrics": {}, "mlflow": {**_tracked(), "tags": tags}}
        with self.service.lock:
            self.created[name] = run
            return 200, {"run": self.run_view(name, run)}

    def update(self, name: str, run: dict[str, Any], data: dict[str, Any]) -> Answer | None:
        """``runs/update`` (``end_run``, a new name) of a created run; a job's run keeps the job's status."""
        if name not in self.created:
            return None
        status = data.get("status")
        if status is not None:
            if str(status) not in _MLFLOW_STATUSES:
                return error(400, "INVALID_PARAMETER_VALUE", f"Invalid run status {status!r}: one of {sorted(_MLFLOW_STATUSES)}")
            run["status"] = str(status)
        if data.get("end_time") is not None:
            run["end_time"] = int(data["end_time"])
        if data.get("run_name"):
            run["run_name"] = run["mlflow"]["tags"]["mlflow.runName"] = str(data["run_name"])
        return None

    def run_view(self, name: str, run: dict[str, Any]) -> dict[str, Any]:
        """MLflow's ``Run`` of run ``name`` (call with the service's lock held)."""
        metrics, tracked = run.get("metrics") or {}, run.get("mlflow") or {}
        # MLflow's latest value: of the highest step, then the latest timestamp, as its stores take it
        latest = [{"key": key, **max(values, key=lambda m: (m["step"], m["timestamp"], m["value"]))}
                  for key, values in metrics.items() if values]
        return {"info": self.run_info(name, run),
                "data": {"metrics": latest, "params": [{"key": k, "value": v} for k, v in (tracked.get("params") or {}).items()],
                         "tags": [{"key": k, "value": v} for k, v in (tracked.get("tags") or {}).items()]},
                "inputs": {"dataset_inputs": tracked.get("inputs") or [], "model_inputs": tracked.get("model_inputs") or []},
                "outputs": {"model_outputs": tracked.get("outputs") or []}}

    def run_info(self, name: str, run: dict[str, Any]) -> dict[str, Any]:
        """MLflow's ``RunInfo`` of run ``name`` (call with the service's lock held)."""
        common = {"run_id": name, "run_uuid": name, "artifact_uri": f"mlflow-artifacts:/ExperimentRun/dcid.{name}"}
        if name in self.created:
            return {**common, "run_name": run["run_name"], "experiment_id": run["experiment_id"], "user_id": run["user_id"],
                    "status": run["status"], "lifecycle_stage": run["lifecycle_stage"], "start_time": run["start_time"],
                    **({"end_time": run["end_time"]} if run["end_time"] is not None else {})}
        props = self.service.jobs[name]["properties"]
        info = {**common, "run_name": props.get("displayName") or name,
                "experiment_id": experiment_id(props.get("experimentName") or "Default"), "user_id": "",
                "status": _STATUSES.get(run["status"], "RUNNING"), "lifecycle_stage": "active"}
        for field, key in (("start_time", "startTimeUtc"), ("end_time", "endTimeUtc")):
            if run.get(key):
                info[field] = int(datetime.fromisoformat(run[key].replace("Z", "+00:00")).timestamp() * 1000)
        return info

    def search(self, data: dict[str, Any]) -> Answer:
        """``runs/search``: the runs of the experiments that match MLflow's filter, in its order, a
        page at a time, as MLflow's own stores search them (active runs unless ``run_view_type`` says)."""
        from mlflow.entities import Run
        from mlflow.protos.service_pb2 import Run as RunProto
        from mlflow.utils.search_utils import SearchUtils

        wanted = {str(e) for e in data.get("experiment_ids") or []}
        stages = _VIEWS.get(str(data.get("run_view_type") or "ACTIVE_ONLY"))
        if stages is None:
            return error(400, "INVALID_PARAMETER_VALUE", f"Invalid run_view_type {data.get('run_view_type')!r}")
        with self.service.lock:
            views = [self.run_view(name, run) for name, run in self.service.runs.items()
                     if name in self.service.jobs and self.service.jobs[name]["properties"].get("jobType") != "Sweep"]
            views += [self.run_view(name, run) for name, run in self.created.items()]
        views = [view for view in views if (not wanted or view["info"]["experiment_id"] in wanted)
                 and view["info"]["lifecycle_stage"] in stages]
        page, token = through_mlflow(views, Run, RunProto, lambda runs: SearchUtils.paginate(
            SearchUtils.sort(SearchUtils.filter(runs, str(data.get("filter") or "")), list(data.get("order_by") or [])),
            data.get("page_token") or None, int(data.get("max_results") or 1000)))
        by_id = {view["info"]["run_id"]: view for view in views}
        if isinstance(token, bytes):
            token = token.decode()  # MLflow's page token: base64 of the next offset
        return 200, {"runs": [by_id[run.info.run_id] for run in page], **({"next_page_token": token} if token else {})}

    def history(self, data: dict[str, Any]) -> Answer:
        """Every value of one metric of a run, in logging order (one page)."""
        name, key = data.get("run_id") or data.get("run_uuid") or "", str(data.get("metric_key") or "")
        with self.service.lock:
            run = self.record(name)
            if run is None:
                return error(404, "RESOURCE_DOES_NOT_EXIST", f"Run '{name}' not found")
            return 200, {"metrics": [{"key": key, **item} for item in (run.get("metrics") or {}).get(key) or []]}


def _tracked() -> dict[str, Any]:
    return {"params": {}, "tags": {}, "inputs": [], "model_inputs": [], "outputs": [], "seen": set()}


def _entries(data: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """The list of objects in ``data[field]`` (none if absent); anything else is refused (a 400)."""
    value = data.get(field) or []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise TypeError(f"{field} must be a list of objects")
    return value


def _metric(item: dict[str, Any]) -> tuple[str, float, int, int] | None:
    """``(key, value, step, timestamp)`` of a logged metric (None: no number to keep); a step or a
    timestamp that is not a whole number is refused (a 400)."""
    try:
        value = float(item["value"])
    except (KeyError, TypeError, ValueError):
        return None
    return str(item.get("key")), value, int(item.get("step") or 0), int(item.get("timestamp") or 0)


def _add(metrics: dict[str, list[dict[str, Any]]], seen: set[tuple[str, float, int, int]],
         values: list[tuple[str, float, int, int] | None]) -> None:
    """Record metric values; the same value at the same step and timestamp again is one value, as
    MLflow's stores keep it (autolog can log a step twice)."""
    for entry in values:
        if entry is not None and entry not in seen:
            seen.add(entry)
            key, value, step, timestamp = entry
            metrics.setdefault(key, []).append({"value": value, "step": step, "timestamp": timestamp})


def _set_params(params: dict[str, str], items: list[dict[str, Any]]) -> Answer | None:
    """Record ``items`` (``{"key", "value"}``); an existing parameter keeps its value, and a new
    value for it (or two values of one key in one batch) is refused, as MLflow refuses it."""
    taken = dict(params)
    for item in items:
        key, value = str(item["key"]), str(item.get("value", ""))
        known = taken.setdefault(key, value)
        if known != value:
            return error(400, "INVALID_PARAMETER_VALUE", f"Changing param values is not allowed. Param with key='{key}' was "
                                                         f"already logged with value='{known}'; new value='{value}'.")
    params.update(taken)
    return None
