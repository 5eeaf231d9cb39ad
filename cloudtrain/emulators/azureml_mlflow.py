"""The Azure ML emulator's MLflow tracking server: the MLflow REST API that a job's ``mlflow``
client talks to, as Azure ML's workspace tracking server
(``https://<region>.api.azureml.ms/mlflow/v1.0/<workspace>``) answers it.

On Azure ML a job's processes get ``MLFLOW_TRACKING_URI`` (the workspace's tracking server) and
``MLFLOW_RUN_ID`` (the job's own run), so ``mlflow.log_metric`` in the job records the metric on
its run, where a sweep reads its primary metric, and ``MLFLOW_EXPERIMENT_NAME`` and
``MLFLOW_EXPERIMENT_ID`` (the job's experiment). Here the server is a plain-HTTP one on 127.0.0.1
(the jobs run on this machine); the emulator gives those variables to every command job's
processes, a sweep's trials too.

What it answers, under ``/mlflow/v1.0/<workspace>/api/2.0/``:

- ``mlflow/runs/``: ``get``, ``update``, ``log-metric``, ``log-batch``, ``log-parameter``,
  ``set-tag``, ``delete-tag``, ``log-inputs`` and ``outputs``, and ``mlflow/metrics/get-history``,
  on the runs of the workspace's jobs (a run's id is its job's name, as on Azure ML). Metrics are
  kept on the run in run history as ``{key: [{"value", "step", "timestamp"}...]}`` in logging order.
  As in MLflow's own stores, an exact repeat of a value is dropped, a run's latest value is that of
  its highest step, and a parameter keeps its first value. A run's status is the job's: ``update``
  (MLflow's ``end_run``) does not end the job.
- ``mlflow/runs/search`` and ``mlflow/experiments/search``, with MLflow's own filters and order (a
  sweep job is no MLflow run; its trials are).
- ``mlflow/experiments/``: ``get``, ``get-by-name`` and ``create``; an experiment's id is derived
  from its name (the jobs' ``experiment_name``), the same as run history's ``experimentId``.
- ``mlflow/logged-models`` (MLflow 3's models, which ``log_model`` and ``autolog`` create) and
  ``mlflow-artifacts/artifacts`` (uploads, downloads, listings):
  :mod:`~cloudtrain.emulators.azureml_mlflow_models`. A run's ``artifact_uri`` is its artifact store
  on Azure ML, ``ExperimentRun/dcid.<run>/`` in the workspace's storage, so ``mlflow.log_artifact``
  lands beside the run's ``user_logs/`` and ``outputs/``, where ``ml_client.jobs.download`` finds it.
- ``mlflow/registered-models`` and ``mlflow/model-versions`` (the model registry, which
  ``log_model(registered_model_name=...)`` calls): :mod:`~cloudtrain.emulators.azureml_mlflow_registry`.

Other routes, and ``runs/create`` (a nested run), answer MLflow's errors, naming the route.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable

from cloudtrain.emulators.azureml_mlflow_answers import Answer, Refused, error, now_ms, through_mlflow

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.emulators.azureml_service import AzureMLService

_ROUTE = re.compile(r"^/mlflow/v1\.0/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
                    r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)/api/2\.0/(?P<api>mlflow|mlflow-artifacts)/(?P<rest>.*)$")
#: run history status -> MLflow run status
_STATUSES = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}


def run_environment(base: str, workspace_id: str, run: str, experiment: str = "Default") -> dict[str, str]:
    """What Azure ML gives a job's processes for MLflow: the workspace's tracking server
    (``workspace_id``: its ARM resource id; ``base``: this server's URL), the job's own run and its
    experiment (so ``log_model`` before any run starts logs to the job's experiment)."""
    return {"MLFLOW_TRACKING_URI": f"{base}/mlflow/v1.0{workspace_id}", "MLFLOW_RUN_ID": run,
            "MLFLOW_EXPERIMENT_NAME": experiment or "Default", "MLFLOW_EXPERIMENT_ID": experiment_id(experiment)}


def experiment_id(name: str) -> str:
    """The id of the experiment ``name``, as run history gives it (``experimentId``)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name or "Default"))


class MlflowTracking:
    """The WSGI application of the tracking server over ``service``'s runs."""

    def __init__(self, service: "AzureMLService") -> None:
        from cloudtrain.emulators.azureml_mlflow_models import Artifacts, LoggedModels
        from cloudtrain.emulators.azureml_mlflow_registry import ModelRegistry

        self.service = service
        self.experiments: set[str] = set()  # names created through MLflow (jobs' experiments exist already)
        self.models = LoggedModels(service, self.experiment_known)
        self.artifacts = Artifacts(service)
        self.registry = ModelRegistry(service, lambda model_id: (self.models.models.get(model_id) or {}).get("info", {}).get("artifact_uri"),
                                      lambda workspace: service.workspace_models(*workspace))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from werkzeug.wrappers import Request

        request = Request(environ)
        try:
            status, body = self.answer(request)
        except Refused as refused:
            status, body = refused.answer
        except _Malformed as refused:
            status, body = error(400, "MALFORMED_REQUEST", str(refused))
        except (KeyError, TypeError, ValueError, AttributeError, OSError) as refused:
            # odd input (a field of the wrong type, a path that is a folder...): a 400 the client
            # reports at once, not a 500 that MLflow retries for minutes
            status, body = error(400, "INVALID_PARAMETER_VALUE", f"the emulator's tracking server could not take "
                                                                 f"{request.method} {request.path}: {refused!r}")
        if isinstance(body, bytes):
            payload, kind = body, "application/octet-stream"
        else:
            payload, kind = json.dumps(body).encode(), "application/json"
        start_response(f"{status} {'OK' if status == 200 else 'Error'}", [("Content-Type", kind), ("Content-Length", str(len(payload)))])
        return [payload]

    def answer(self, request: Any) -> Answer:
        match = _ROUTE.match(request.path)
        if not match:
            return error(404, "ENDPOINT_NOT_FOUND", f"no MLflow route for {request.method} {request.path}")
        api, rest = match.group("api"), match.group("rest")
        if api == "mlflow-artifacts":
            return self.artifacts.answer(request, rest)
        if rest == "logged-models" or rest.startswith("logged-models/"):
            return self.models.answer(request, rest[len("logged-models"):].lstrip("/"), _body(request))
        kind, _, verb = rest.partition("/")
        if kind == "runs":
            return self.runs(request.method, verb, _body(request))
        if kind == "experiments":
            return self.experiment(verb, _body(request))
        if kind in ("registered-models", "model-versions"):
            return self.registry.answer(request.method, kind, verb, _body(request), match.group("sub", "rg", "ws"))
        if rest == "metrics/get-history":
            return self.history(_body(request))
        return error(404, "ENDPOINT_NOT_FOUND", f"the emulator does not answer {request.method} {rest}")

    # -- runs --------------------------------------------------------------------------------------

    def runs(self, method: str, verb: str, data: dict[str, Any]) -> Answer:
        if verb == "create":
            return error(400, "INVALID_PARAMETER_VALUE", "the emulator's tracking server creates no runs (a nested run): a "
                                                         "job's processes log to the job's own run, MLFLOW_RUN_ID")
        if verb == "search":
            return self.search(data)
        name = data.get("run_id") or data.get("run_uuid") or ""
        with self.service.lock:
            run = self.service.runs.get(name)
            if run is None:
                return error(404, "RESOURCE_DOES_NOT_EXIST", f"Run '{name}' not found")
            metrics, tracked = run.setdefault("metrics", {}), run.setdefault("mlflow", {
                "params": {}, "tags": {}, "inputs": [], "model_inputs": [], "outputs": [], "seen": set()})
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
            elif verb not in ("get", "update"):
                return error(404, "ENDPOINT_NOT_FOUND", f"the emulator does not answer {method} runs/{verb}")
            if verb == "update":
                return 200, {"run_info": self.run_info(name, run)}
            if verb != "get":
                return 200, {}
            return 200, {"run": self.run_view(name, run)}

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

    def search(self, data: dict[str, Any]) -> Answer:
        """``runs/search``: the runs of the experiments that match MLflow's filter, in its order,
        a page at a time, as MLflow's own stores search them."""
        from mlflow.entities import Run
        from mlflow.protos.service_pb2 import Run as RunProto
        from mlflow.utils.search_utils import SearchUtils

        wanted = {str(e) for e in data.get("experiment_ids") or []}
        with self.service.lock:
            views = [self.run_view(name, run) for name, run in self.service.runs.items()
                     if name in self.service.jobs and self.service.jobs[name]["properties"].get("jobType") != "Sweep"]
        views = [view for view in views if not wanted or view["info"]["experiment_id"] in wanted]
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
            run = self.service.runs.get(name)
            if run is None:
                return error(404, "RESOURCE_DOES_NOT_EXIST", f"Run '{name}' not found")
            return 200, {"metrics": [{"key": key, **item} for item in (run.get("metrics") or {}).get(key) or []]}

    def run_info(self, name: str, run: dict[str, Any]) -> dict[str, Any]:
        """MLflow's ``RunInfo`` of run ``name`` (call with the service's lock held)."""
        props = self.service.jobs[name]["properties"]
        info = {"run_id": name, "run_uuid": name, "run_name": props.get("displayName") or name,
                "experiment_id": experiment_id(props.get("experimentName") or "Default"), "user_id": "",
                "status": _STATUSES.get(run["status"], "RUNNING"), "artifact_uri": f"mlflow-artifacts:/ExperimentRun/dcid.{name}",
                "lifecycle_stage": "active"}
        for field, key in (("start_time", "startTimeUtc"), ("end_time", "endTimeUtc")):
            if run.get(key):
                info[field] = int(datetime.fromisoformat(run[key].replace("Z", "+00:00")).timestamp() * 1000)
        return info

    # -- experiments -------------------------------------------------------------------------------

    def experiment_known(self, identifier: str) -> str | None:
        """The name of the experiment with id ``identifier``, if the workspace has it."""
        return next((name for name in self.experiment_names() if experiment_id(name) == identifier), None)

    def experiment_names(self) -> set[str]:
        with self.service.lock:
            return {"Default", *self.experiments,
                    *(job["properties"].get("experimentName") or "Default" for job in self.service.jobs.values())}

    def experiment(self, verb: str, data: dict[str, Any]) -> Answer:
        if verb == "create":
            name = str(data.get("name") or "")
            if not name:
                return error(400, "INVALID_PARAMETER_VALUE", "an experiment needs a name")
            if name in self.experiment_names():
                return error(400, "RESOURCE_ALREADY_EXISTS", f"Experiment '{name}' already exists.")
            with self.service.lock:
                self.experiments.add(name)
            return 200, {"experiment_id": experiment_id(name)}
        if verb == "search":
            from mlflow.entities import Experiment
            from mlflow.protos.service_pb2 import Experiment as ExperimentProto
            from mlflow.utils.search_utils import SearchExperimentsUtils

            views = [self.experiment_view(name) for name in sorted(self.experiment_names())]
            kept = [e.experiment_id for e in through_mlflow(views, Experiment, ExperimentProto, lambda found: SearchExperimentsUtils.sort(
                SearchExperimentsUtils.filter(found, str(data.get("filter") or "")), list(data.get("order_by") or [])))]
            by_id = {view["experiment_id"]: view for view in views}
            return 200, {"experiments": [by_id[e] for e in kept][:int(data.get("max_results") or 1000)]}
        if verb == "get-by-name":
            name = str(data.get("experiment_name") or "")
            found = name if name in self.experiment_names() else None
        elif verb == "get":
            found = self.experiment_known(str(data.get("experiment_id") or ""))
        else:
            return error(404, "ENDPOINT_NOT_FOUND", f"the emulator does not answer experiments/{verb}")
        if found is None:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Could not find experiment {data.get('experiment_name') or data.get('experiment_id')!r}")
        return 200, {"experiment": self.experiment_view(found)}

    def experiment_view(self, name: str) -> dict[str, Any]:
        now = now_ms()
        return {"experiment_id": experiment_id(name), "name": name, "lifecycle_stage": "active",
                "artifact_location": "mlflow-artifacts:/ExperimentRun", "creation_time": now, "last_update_time": now, "tags": []}


class _Malformed(ValueError):
    """A request body that is not a JSON object."""


def _body(request: Any) -> dict[str, Any]:
    """A request's fields: the query of a GET, else the JSON body (MLflow sends one with every other
    method, DELETE too) over the query."""
    if request.method == "GET":
        return dict(request.args)
    try:
        data = json.loads(request.get_data() or b"{}")
    except ValueError as bad:
        raise _Malformed(f"the request body is not JSON: {bad}") from None
    if not isinstance(data, dict):
        raise _Malformed("the request body is not a JSON object")
    return {**dict(request.args), **data}


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
