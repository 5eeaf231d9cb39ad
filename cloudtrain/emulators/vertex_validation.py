"""What the Vertex AI emulator refuses in a request beyond the proto parser, as the service does:
:class:`ApiError` (an HTTP status and Google's message; the gRPC layer maps the status to its code),
checked against the SDK's own ``AcceleratorType`` enum and the emulator's own list of machine series
(:data:`TRAINING_MACHINE_SERIES`), never the provider's; and the list filters it takes (:func:`filter_terms`)."""

from __future__ import annotations

import re
from typing import Any


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


#: Machine series that Vertex AI custom training accepts in ``machineSpec.machineType``, from Google's
#: page "Configure compute resources for custom training"
#: (https://cloud.google.com/vertex-ai/docs/training/configure-compute#machine-types), kept here on
#: purpose apart from the provider's list so that a wrong provider list is caught by the emulator.
TRAINING_MACHINE_SERIES = (
    "e2-standard", "e2-highmem", "e2-highcpu", "n1-standard", "n1-highmem", "n1-highcpu",
    "n2-standard", "n2-highmem", "n2-highcpu", "n2d-standard", "n2d-highmem", "n2d-highcpu",
    "c2-standard", "c2d-standard", "c2d-highmem", "c2d-highcpu", "c3-standard", "c3-highcpu", "c3-highmem",
    "m1-ultramem", "m1-megamem", "a2-highgpu", "a2-megagpu", "a2-ultragpu", "a3-highgpu", "a3-megagpu",
    "a3-ultragpu", "a4-highgpu", "a4x-highgpu", "g2-standard", "g4-standard",
    "ct5lp-hightpu", "ct5p-hightpu", "ct6e-standard", "cloud-tpu",
)

def validate_job(job: Any) -> None:
    """What Vertex refuses that the proto parser does not."""
    from google.cloud import aiplatform_v1

    accelerators = {member for name, member in aiplatform_v1.AcceleratorType.__members__.items()
                    if name != "ACCELERATOR_TYPE_UNSPECIFIED"}
    if not job.display_name:
        raise ApiError(400, "CustomJob.display_name is required.")
    pools = job.job_spec.worker_pool_specs
    if not pools:
        raise ApiError(400, "CustomJob.job_spec.worker_pool_specs is required.")
    if int(pools[0].replica_count or 0) != 1:
        raise ApiError(400, "The first worker pool (the primary replica) must have replica_count 1.")
    for index, pool in enumerate(pools):
        machine = pool.machine_spec.machine_type
        if not machine and int(pool.replica_count or 0):
            raise ApiError(400, f"worker_pool_specs[{index}].machine_spec.machine_type is required.")
        if machine and not any(machine == series or machine.startswith(series + "-") for series in TRAINING_MACHINE_SERIES):
            raise ApiError(400, f"Machine type \"{machine}\" is not supported.")
        accelerator, count = pool.machine_spec.accelerator_type, int(pool.machine_spec.accelerator_count or 0)
        if count and accelerator not in accelerators:
            raise ApiError(400, f"worker_pool_specs[{index}]: accelerator_count {count} needs a valid accelerator_type "
                                f"(got {getattr(accelerator, 'name', accelerator)}).")
        if count < 0:
            raise ApiError(400, f"worker_pool_specs[{index}]: accelerator_count cannot be negative.")
        package = pool.python_package_spec
        if package.executor_image_uri or package.package_uris or package.python_module:
            if pool.container_spec.image_uri:
                raise ApiError(400, f"worker_pool_specs[{index}]: give either container_spec or python_package_spec, not both.")
            for field in ("executor_image_uri", "python_module"):
                if not getattr(package, field):
                    raise ApiError(400, f"worker_pool_specs[{index}].python_package_spec.{field} is required.")
            if not package.package_uris or not all(uri.startswith("gs://") for uri in package.package_uris):
                raise ApiError(400, f"worker_pool_specs[{index}].python_package_spec.package_uris must be gs:// URIs.")
        elif int(pool.replica_count or 0) and not pool.container_spec.image_uri:
            raise ApiError(400, f"worker_pool_specs[{index}].container_spec.image_uri is required.")
    for key, value in job.labels.items():
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key) or not re.fullmatch(r"[a-z0-9_-]{0,63}", value):
            raise ApiError(400, f"Invalid label {key}={value}: keys and values are lowercase letters, digits, '_' and '-'.")


_FILTER_TERM = re.compile(r'^\s*(labels\.[a-z][a-z0-9_-]*|display_name|displayName|state)\s*=\s*"?([^"]*)"?\s*$')


def filter_terms(filter_text: str) -> list[tuple[str, str]]:
    """The (key, value) terms of a list filter; INVALID_ARGUMENT for a term the emulator does not take."""
    terms = []
    for part in re.split(r"\s+AND\s+", filter_text.strip()) if filter_text.strip() else []:
        match = _FILTER_TERM.match(part)
        if not match:
            raise ApiError(400, f"Unsupported filter term: {part!r} (the emulator supports labels.KEY=\"VALUE\", "
                                "display_name=\"...\" and state=JOB_STATE_..., joined by AND)")
        terms.append(match.groups())
    return terms


def matches(job: Any, key: str, value: str) -> bool:
    if key.startswith("labels."):
        return job.labels.get(key[len("labels."):]) == value
    if key in ("display_name", "displayName"):
        return job.display_name == value
    return job.state.name == value


def list_page(items: list[Any], page_size: int, page_token: str) -> tuple[list[Any], str]:
    """One page of a List call (newest first, as the caller sorted them) and the next page's token
    ("" after the last): the token is the offset, as the emulator hands it out."""
    try:
        start = int(page_token or 0)
    except ValueError:
        raise ApiError(400, f"Invalid page token: {page_token!r}") from None
    size = int(page_size or 100)
    return items[start:start + size], (str(start + size) if start + size < len(items) else "")
