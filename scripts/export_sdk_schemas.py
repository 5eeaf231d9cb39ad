#!/usr/bin/env python3
"""Rebuild ``cloudtrain/providers/data/{vertex_descriptors,sagemaker_shapes,sagemaker_ecr_partitions,azureml_command_job_schema,azureml_sweep_job_schema}.json``:
the parts of the installed SDKs' data that ``submit --dry-run`` renders and validates requests with.

Importing ``google.cloud.aiplatform_v1`` (every service client) takes seconds, and botocore's session
loads the whole SageMaker service model; a dry run needs only the request messages. So:

* Vertex AI: the serialized ``FileDescriptorProto`` of ``CustomJob``'s and ``HyperparameterTuningJob``'s
  files and of every file they depend on, as ``google-cloud-aiplatform`` declares them (each file's
  ``FileDescriptor.serialized_pb``, its dependency list in name order), dependencies first; read back
  with ``google.protobuf``'s descriptor pool and parsed with ``json_format`` as ``CustomJob.from_json`` does
  (:mod:`cloudtrain.providers.vertex_proto`);
* SageMaker: botocore's sagemaker service data (``Session.get_service_data``) cut to the input
  shapes of ``CreateTrainingJob`` and ``CreateHyperParameterTuningJob`` and every shape they
  reach, without the documentation; read back with botocore's ``ShapeResolver`` and validated by
  its ``ParamValidator`` (:mod:`cloudtrain.providers.sagemaker_request`);
* SageMaker images: the partitions of botocore's ``endpoints.json`` (regions, DNS suffix, hostname
  template, the ``ecr`` entry), which name the ECR registry's host
  (:func:`cloudtrain.providers.sagemaker_images.ecr_hostname`).

* Azure ML: the JSON Schemas of the command job and sweep job YAML, dumped from azure-ai-ml's own
  marshmallow schemas (``CommandJobSchema``, ``SweepJobSchema``) by marshmallow-jsonschema, the library whose
  ``_jsonschema_type_mapping`` hook the SDK's custom fields implement; its union fields become
  ``anyOf`` (``oneOf`` where the SDK marks them strict) and its experimental fields the field they
  wrap. Importing azure-ai-ml takes about a second; ``jsonschema`` validates a document against
  these in milliseconds (:func:`cloudtrain.providers.azureml_job.validate_document`).

Each file records the SDK version it came from. Run it with the project's virtual environment::

    .venv/bin/python scripts/export_sdk_schemas.py          # writes the files
    .venv/bin/python scripts/export_sdk_schemas.py --check  # exits 1 if one is out of date

``tests/providers/test_sdk_schemas.py`` fails when the installed SDKs' data differ from the files.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "cloudtrain" / "providers" / "data"
VERTEX_FILE = DATA / "vertex_descriptors.json"
SAGEMAKER_FILE = DATA / "sagemaker_shapes.json"
ECR_FILE = DATA / "sagemaker_ecr_partitions.json"
AZUREML_FILE = DATA / "azureml_command_job_schema.json"
AZUREML_SWEEP_FILE = DATA / "azureml_sweep_job_schema.json"
VERTEX_MESSAGES = ("CustomJob", "HyperparameterTuningJob")
SAGEMAKER_OPERATIONS = ("CreateTrainingJob", "CreateHyperParameterTuningJob")


def vertex_descriptors() -> dict[str, Any]:
    """The descriptors of the Vertex request messages' files, from the installed aiplatform_v1."""
    from importlib.metadata import version

    from google.cloud import aiplatform_v1
    from google.protobuf import descriptor_pb2

    files: dict[str, Any] = {}

    def add(file: Any) -> None:  # dependencies first, in name order (proto-plus lists them in set order)
        if file.name not in files:
            for dependency in sorted(file.dependencies, key=lambda d: d.name):
                add(dependency)
            proto = descriptor_pb2.FileDescriptorProto.FromString(file.serialized_pb)
            assert not proto.public_dependency and not proto.weak_dependency, file.name  # indices into the list
            proto.dependency[:] = sorted(proto.dependency)
            files[file.name] = proto

    messages = {}
    for name in VERTEX_MESSAGES:
        descriptor = getattr(aiplatform_v1, name).pb().DESCRIPTOR
        messages[name] = descriptor.full_name
        add(descriptor.file)
    return {
        "source": f"google-cloud-aiplatform {version('google-cloud-aiplatform')} (google.cloud.aiplatform_v1), "
                  f"exported by scripts/export_sdk_schemas.py",
        "sdk_version": version("google-cloud-aiplatform"),
        "messages": messages,
        "accelerator_type": "google.cloud.aiplatform.v1.AcceleratorType",
        "files": [{"name": name, "serialized": base64.b64encode(proto.SerializeToString(deterministic=True)).decode()}
                  for name, proto in files.items()],
    }


def _undocumented(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key != "documentation"}


def reachable_shapes(shapes: dict[str, Any], roots: list[str]) -> dict[str, Any]:
    """The shapes named by ``roots`` and every shape they reach, without documentation."""
    out: dict[str, Any] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in out:
            continue
        shape = _undocumented(shapes[name])
        if "members" in shape:
            shape["members"] = {member: _undocumented(ref) for member, ref in shape["members"].items()}
        for key in ("member", "key", "value"):
            if key in shape:
                shape[key] = _undocumented(shape[key])
        out[name] = shape
        pending += [ref["shape"] for ref in (*shape.get("members", {}).values(),
                                             *(shape[k] for k in ("member", "key", "value") if k in shape))]
    return dict(sorted(out.items()))


def sagemaker_shapes() -> dict[str, Any]:
    """The input shapes of the SageMaker operations cloudtrain renders, from the installed botocore."""
    import botocore
    import botocore.session

    data = botocore.session.get_session().get_service_data("sagemaker")
    inputs = {name: data["operations"][name]["input"]["shape"] for name in SAGEMAKER_OPERATIONS}
    return {
        "source": f"botocore {botocore.__version__} sagemaker {data['metadata']['apiVersion']} service model, "
                  "exported by scripts/export_sdk_schemas.py",
        "sdk_version": botocore.__version__,
        "inputs": inputs,
        "shapes": reachable_shapes(data["shapes"], list(inputs.values())),
    }


def ecr_partitions() -> dict[str, Any]:
    """What :func:`cloudtrain.providers.sagemaker_images.ecr_hostname` reads of botocore's endpoint data
    (``endpoints.json``, 1.2 MB): each partition's regions, region pattern, DNS suffix, default
    hostname and ``ecr`` service entry."""
    import botocore
    import botocore.session

    data = botocore.session.get_session().get_component("data_loader").load_data("endpoints")
    keep = ("partition", "regionRegex", "dnsSuffix")
    partitions = [{**{key: partition[key] for key in keep}, "regions": {name: {} for name in partition["regions"]},
                   "defaults": {"hostname": partition["defaults"]["hostname"]},
                   "services": {name: service for name, service in partition["services"].items() if name == "ecr"}}
                  for partition in data["partitions"]]
    return {"source": f"botocore {botocore.__version__} endpoints.json, exported by scripts/export_sdk_schemas.py",
            "sdk_version": botocore.__version__, "partitions": partitions}


def _azureml_job_schema(module: str, name: str) -> dict[str, Any]:
    """The JSON Schema of azure-ai-ml's marshmallow job schema ``module.name``, as installed."""
    import importlib
    import warnings
    from importlib.metadata import version

    from marshmallow_jsonschema import JSONSchema

    with warnings.catch_warnings():  # the SDK's schemas use deprecated marshmallow features
        warnings.simplefilter("ignore")
        from azure.ai.ml._schema.core.fields import ExperimentalField, UnionField
        from azure.ai.ml.constants._common import BASE_PATH_CONTEXT_KEY

        class SDKJSONSchema(JSONSchema):  # type: ignore[misc]
            def _get_schema_for_field(self, obj: Any, field: Any) -> Any:
                if isinstance(field, UnionField):
                    return {"oneOf" if field.is_strict else "anyOf": [self._get_schema_for_field(obj, f) for f in field.union_fields]}
                if isinstance(field, ExperimentalField):
                    return self._get_schema_for_field(obj, field.experimental_field)
                return super()._get_schema_for_field(obj, field)

        schema_class = getattr(importlib.import_module(module), name)
        schema = SDKJSONSchema().dump(schema_class(context={BASE_PATH_CONTEXT_KEY: "."}))
    return {"source": f"azure-ai-ml {version('azure-ai-ml')} {name}, as JSON Schema by marshmallow-jsonschema "
                      f"{version('marshmallow-jsonschema')}, exported by scripts/export_sdk_schemas.py",
            "sdk_version": version("azure-ai-ml"), "schema": schema}


def azureml_command_job_schema() -> dict[str, Any]:
    """The command job's JSON Schema from the installed azure-ai-ml's ``CommandJobSchema``."""
    return _azureml_job_schema("azure.ai.ml._schema.job.command_job", "CommandJobSchema")


def azureml_sweep_job_schema() -> dict[str, Any]:
    """The sweep job's JSON Schema from the installed azure-ai-ml's ``SweepJobSchema``."""
    return _azureml_job_schema("azure.ai.ml._schema._sweep.sweep_job", "SweepJobSchema")


def render(content: dict[str, Any]) -> str:
    """Keys in the SDK's order (botocore's messages list a structure's members in model order)."""
    return json.dumps(content, indent=1) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date instead of writing")
    options = parser.parse_args()
    stale = []
    for path, build in ((VERTEX_FILE, vertex_descriptors), (SAGEMAKER_FILE, sagemaker_shapes), (ECR_FILE, ecr_partitions),
                        (AZUREML_FILE, azureml_command_job_schema), (AZUREML_SWEEP_FILE, azureml_sweep_job_schema)):
        text = render(build())
        if options.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path} ({len(text) // 1024} KiB)")
    for path in stale:
        print(f"{path} is out of date: run scripts/export_sdk_schemas.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
