"""What the modules of the Azure ML emulator's MLflow tracking server (:mod:`~cloudtrain.emulators.azureml_mlflow`,
:mod:`~cloudtrain.emulators.azureml_mlflow_models`, :mod:`~cloudtrain.emulators.azureml_mlflow_registry`)
answer with: a status and a JSON body (or a file's bytes), and MLflow's error body
(``{"error_code", "message"}``, which the MLflow client raises as ``RestException``)."""

from __future__ import annotations

from typing import Any

Answer = tuple[int, dict[str, Any] | bytes]


def error(status: int, code: str, message: str) -> Answer:
    return status, {"error_code": code, "message": message}
