"""What the real SageMaker service refuses in a CreateTrainingJob request and moto accepts (the
SageMaker emulator's own checks, shared by its training and tuning jobs)."""

from __future__ import annotations

import re
from typing import Any

JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_instance_types: set[str] | None = None


def _valid_instance_types() -> set[str]:
    global _instance_types
    if _instance_types is None:
        import botocore.session

        model = botocore.session.get_session().get_service_model("sagemaker")
        shape = model.operation_model("CreateTrainingJob").input_shape.members["ResourceConfig"].members["InstanceType"]
        _instance_types = set(shape.enum)
    return _instance_types


def validate_create(request: dict[str, Any]) -> str | None:
    """What the real service refuses and moto accepts (None: fine)."""
    name = request.get("TrainingJobName", "")
    if not JOB_NAME.match(name):
        return (f"1 validation error detected: Value '{name}' at 'trainingJobName' failed to satisfy constraint: "
                "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
    instance_type = (request.get("ResourceConfig") or {}).get("InstanceType")
    if instance_type and instance_type not in _valid_instance_types():
        return (f"1 validation error detected: Value '{instance_type}' at 'resourceConfig.instanceType' failed to "
                "satisfy constraint: Member must satisfy enum value set")
    stopping = request.get("StoppingCondition") or {}
    if request.get("EnableManagedSpotTraining"):
        wait, runtime = stopping.get("MaxWaitTimeInSeconds"), stopping.get("MaxRuntimeInSeconds", 86400)
        if wait is None or wait < runtime:
            return "Invalid MaxWaitTimeInSeconds. It must be present and be greater than or equal to MaxRuntimeInSeconds"
    return None
