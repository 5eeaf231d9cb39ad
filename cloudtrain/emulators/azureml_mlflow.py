"""The Azure ML emulator's MLflow tracking server: the MLflow REST API (``/api/2.0/mlflow/runs/...``)
that a job's ``mlflow`` client talks to, as Azure ML's workspace tracking server
(``https://<region>.api.azureml.ms/mlflow/v1.0/<workspace>``) answers it.

On Azure ML a job's processes get ``MLFLOW_TRACKING_URI`` (the workspace's tracking server) and
``MLFLOW_RUN_ID`` (the job's own run), so ``mlflow.log_metric`` in the job records the metric on
its run, where a sweep reads its primary metric. Here the server is a plain-HTTP one on
127.0.0.1 (the jobs run on this machine); the emulator gives those variables to a sweep's trials
(:mod:`~cloudtrain.emulators.azureml_sweep`). What it answers: ``runs/get`` (the run's info, its
latest metrics), ``runs/update`` (status), ``runs/log-metric``, ``runs/log-batch``,
``runs/log-parameter`` and ``runs/set-tag``; a metric is kept on the run in run history as
``{key: [{"value", "step", "timestamp"}...]}`` in logging order. Other routes answer MLflow's
``ENDPOINT_NOT_FOUND``.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.emulators.azureml_service import AzureMLService

_ROUTE = re.compile(r"^/mlflow/v1\.0/.*/api/2\.0/mlflow/runs/(?P<verb>[a-z-]+)$")
#: run history status -> MLflow run status
_STATUSES = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}


def run_environment(base: str, workspace_id: str, run: str) -> dict[str, str]:
    """What Azure ML gives a job's processes for MLflow: the workspace's tracking server
    (``workspace_id``: its ARM resource id; ``base``: this server's URL) and the job's own run."""
    return {"MLFLOW_TRACKING_URI": f"{base}/mlflow/v1.0{workspace_id}", "MLFLOW_RUN_ID": run}


class MlflowTracking:
    """The WSGI application of the tracking server over ``service``'s runs."""

    def __init__(self, service: "AzureMLService") -> None:
        self.service = service

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from werkzeug.wrappers import Request

        request = Request(environ)
        status, body = self.answer(request)
        payload = json.dumps(body).encode()
        start_response(f"{status} {'OK' if status == 200 else 'Error'}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]

    def answer(self, request: Any) -> tuple[int, dict[str, Any]]:
        match = _ROUTE.match(request.path)
        if not match:
            return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"no MLflow route for {request.method} {request.path}"}
        verb = match.group("verb")
        data = request.args if request.method == "GET" else (json.loads(request.get_data() or b"{}") or {})
        name = data.get("run_id") or data.get("run_uuid") or ""
        with self.service.lock:
            run = self.service.runs.get(name)
            if run is None:
                return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Run '{name}' not found"}
            metrics = run.setdefault("metrics", {})
            if verb == "log-metric":
                _append(metrics, data)
            elif verb == "log-batch":
                for item in data.get("metrics") or []:
                    _append(metrics, item)
            elif verb not in ("get", "update", "log-parameter", "set-tag"):
                return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"the emulator does not answer runs/{verb}"}
            info = {"run_id": name, "run_uuid": name, "run_name": name, "experiment_id": "0", "lifecycle_stage": "active",
                    "status": _STATUSES.get(run["status"], "RUNNING"), "artifact_uri": ""}
            latest = [{"key": key, **values[-1]} for key, values in metrics.items() if values]
        if verb in ("log-metric", "log-batch", "log-parameter", "set-tag"):
            return 200, {}
        if verb == "update":
            return 200, {"run_info": info}
        return 200, {"run": {"info": info, "data": {"metrics": latest, "params": [], "tags": []}}}


def _append(metrics: dict[str, list[dict[str, Any]]], item: dict[str, Any]) -> None:
    try:
        value = float(item["value"])
    except (KeyError, TypeError, ValueError):
        return
    metrics.setdefault(str(item.get("key")), []).append(
        {"value": value, "step": int(item.get("step") or 0), "timestamp": int(item.get("timestamp") or 0)})
