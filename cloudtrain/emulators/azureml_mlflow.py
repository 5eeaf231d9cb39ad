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

- ``mlflow/runs/`` and ``mlflow/metrics/get-history``: the runs of the workspace's jobs (a run's
  id is its job's name, as on Azure ML) and the runs MLflow creates (``mlflow.start_run()`` in a
  user's session, ``start_run(nested=True)`` in a job), with MLflow's own search filters, order and
  pages: :mod:`~cloudtrain.emulators.azureml_mlflow_runs`.
- ``mlflow/experiments/search``, with MLflow's own filters and order.
- ``mlflow/experiments/``: ``get``, ``get-by-name`` and ``create``; an experiment's id is derived
  from its name (the jobs' ``experiment_name``), the same as run history's ``experimentId``.
- ``mlflow/logged-models`` (MLflow 3's models, which ``log_model`` and ``autolog`` create) and
  ``mlflow-artifacts/artifacts`` (uploads, downloads, listings):
  :mod:`~cloudtrain.emulators.azureml_mlflow_models`. A run's ``artifact_uri`` is its artifact store
  on Azure ML, ``ExperimentRun/dcid.<run>/`` in the workspace's storage, so ``mlflow.log_artifact``
  lands beside the run's ``user_logs/`` and ``outputs/``, where ``ml_client.jobs.download`` finds it.
- ``mlflow/registered-models`` and ``mlflow/model-versions`` (the model registry, which
  ``log_model(registered_model_name=...)`` calls): :mod:`~cloudtrain.emulators.azureml_mlflow_registry`.

The workspace's ``mlflow_tracking_uri`` (``ml_client.workspaces.get(...)``) is this server, so a
user's ``mlflow.set_tracking_uri(...)`` to it works without azureml-mlflow. Other routes answer
MLflow's errors, naming the route.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Callable, Iterable

from cloudtrain.emulators.azureml_mlflow_answers import Answer, Refused, error, now_ms, through_mlflow
from cloudtrain.emulators.azureml_mlflow_runs import Runs, experiment_id

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.emulators.azureml_service import AzureMLService

_ROUTE = re.compile(r"^/mlflow/v1\.0/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
                    r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)/api/2\.0/(?P<api>mlflow|mlflow-artifacts)/(?P<rest>.*)$")


def run_environment(base: str, workspace_id: str, run: str, experiment: str = "Default") -> dict[str, str]:
    """What Azure ML gives a job's processes for MLflow: the workspace's tracking server
    (``workspace_id``: its ARM resource id; ``base``: this server's URL), the job's own run and its
    experiment (so ``log_model`` before any run starts logs to the job's experiment)."""
    return {"MLFLOW_TRACKING_URI": f"{base}/mlflow/v1.0{workspace_id}", "MLFLOW_RUN_ID": run,
            "MLFLOW_EXPERIMENT_NAME": experiment or "Default", "MLFLOW_EXPERIMENT_ID": experiment_id(experiment)}


class MlflowTracking:
    """The WSGI application of the tracking server over ``service``'s runs."""

    def __init__(self, service: "AzureMLService") -> None:
        from cloudtrain.emulators.azureml_mlflow_models import Artifacts, LoggedModels
        from cloudtrain.emulators.azureml_mlflow_registry import ModelRegistry

        self.service = service
        self.experiments: set[str] = set()  # names created through MLflow (jobs' experiments exist already)
        self.runs = Runs(service, self.experiment_known)
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
            return self.runs.answer(request.method, verb, _body(request))
        if kind == "experiments":
            return self.experiment(verb, _body(request))
        if kind in ("registered-models", "model-versions"):
            return self.registry.answer(request.method, kind, verb, _body(request), match.group("sub", "rg", "ws"))
        if rest == "metrics/get-history":
            return self.runs.history(_body(request))
        return error(404, "ENDPOINT_NOT_FOUND", f"the emulator does not answer {request.method} {rest}")

    # -- experiments -------------------------------------------------------------------------------

    def experiment_known(self, identifier: str) -> str | None:
        """The name of the experiment with id ``identifier``, if the workspace has it (``0``, which
        MLflow sends when no experiment is set, is the workspace's ``Default``)."""
        if identifier == "0":
            return "Default"
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
