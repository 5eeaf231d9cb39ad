"""The Vertex AI request messages (``CustomJob``, ``HyperparameterTuningJob``) as google-cloud-aiplatform
declares them, without importing it (``google.cloud.aiplatform_v1`` loads every service client: seconds).

``data/vertex_descriptors.json`` holds the protobuf file descriptors of those messages and of every
file they depend on, exported from the installed SDK by ``scripts/export_sdk_schemas.py`` (with the SDK
version); ``tests/providers/test_sdk_schemas.py`` fails when the installed SDK's differ. A request is
parsed as ``aiplatform_v1.CustomJob.from_json(text, ignore_unknown_fields=False)`` parses it:
``google.protobuf.json_format.Parse`` into a message of the same descriptor, so unknown fields,
wrong types and enum names are refused with protobuf's own message naming the field.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from cloudtrain.errors import SpecError

DESCRIPTORS = Path(__file__).resolve().parent / "data" / "vertex_descriptors.json"
HINT = "fix the spec fields behind the request fields named above"


@functools.lru_cache(maxsize=None)
def schema() -> tuple[Any, dict[str, Any]]:
    """A descriptor pool of its own (the SDK's classes may be loaded too) and the file's header."""
    import base64

    from google.protobuf import descriptor_pool

    data = json.loads(DESCRIPTORS.read_text())
    pool = descriptor_pool.DescriptorPool()
    for file in data["files"]:  # dependencies first
        pool.AddSerializedFile(base64.b64decode(file["serialized"]))
    return pool, data


@functools.lru_cache(maxsize=None)
def message_class(name: str) -> Any:
    """The protobuf class of ``CustomJob`` or ``HyperparameterTuningJob``."""
    from google.protobuf import message_factory

    pool, data = schema()
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(data["messages"][name]))


def parse(name: str, request: dict[str, Any]) -> Any:
    """The request (REST JSON) as the protobuf message ``name``; a request the SDK's parser would
    refuse is refused with its message."""
    from google.protobuf import json_format

    message = message_class(name)()
    try:
        json_format.Parse(json.dumps(request), message, ignore_unknown_fields=False)
    except Exception as error:  # json_format.ParseError and friends, as CustomJob.from_json raises them
        raise SpecError(f"the Vertex AI {name} is not valid: {error}", HINT) from None
    return message


@functools.lru_cache(maxsize=None)
def accelerator_types() -> frozenset[str]:
    """The names of ``aiplatform_v1.AcceleratorType`` (without ``ACCELERATOR_TYPE_UNSPECIFIED``)."""
    pool, data = schema()
    enum = pool.FindEnumTypeByName(data["accelerator_type"])
    return frozenset(value.name for value in enum.values if value.name != "ACCELERATOR_TYPE_UNSPECIFIED")
