"""What the modules of the Azure ML emulator's MLflow tracking server (:mod:`~cloudtrain.emulators.azureml_mlflow`,
:mod:`~cloudtrain.emulators.azureml_mlflow_models`, :mod:`~cloudtrain.emulators.azureml_mlflow_registry`)
answer with: a status and a JSON body (or a file's bytes), and MLflow's error body
(``{"error_code", "message"}``, which the MLflow client raises as ``RestException``), and MLflow's
own search helpers applied to what they answer."""

from __future__ import annotations

import time
from typing import Any, Callable

Answer = tuple[int, dict[str, Any] | bytes]


def error(status: int, code: str, message: str) -> Answer:
    return status, {"error_code": code, "message": message}


class Refused(Exception):
    """An answer given from deep inside a route (a filter that MLflow's parser refuses); the server
    answers it as it is."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer[1])
        self.answer = answer


def through_mlflow(views: list[dict[str, Any]], entity: Any, proto: Any, apply: Callable[[list[Any]], Any]) -> Any:
    """What one of MLflow's own search helpers (``apply``: filter, sort, paginate) makes of ``views``
    (the JSON of ``proto`` messages, as entities of class ``entity``), as MLflow's stores search;
    MLflow's refusal of a filter or an order is a 400 (:class:`Refused`)."""
    from google.protobuf.json_format import ParseDict
    from mlflow.exceptions import MlflowException

    found = [entity.from_proto(ParseDict(view, proto(), ignore_unknown_fields=True)) for view in views]
    try:
        return apply(found)
    except MlflowException as refused:
        raise Refused(error(400, "INVALID_PARAMETER_VALUE", refused.message)) from None


def now_ms() -> int:
    """Now, as MLflow writes times: milliseconds since the epoch."""
    return int(time.time() * 1000)
