"""SageMaker framework training images, resolved offline from the image-URI data the sagemaker SDK ships.

The data are the SDK's own JSON files (``sagemaker/core/image_uri_config/<framework>.json``), found
with ``importlib.util.find_spec`` without importing ``sagemaker`` (``sagemaker.core.image_uris`` costs
about 1.5 s to import). :func:`training_image_uri` gives what the SDK's
``image_uris.get_training_image_uri(region, framework, version, py_version, instance_type=...)`` gives
(for Hugging Face with ``pytorch_version=`` or ``tensorflow_version=``), which is
``image_uris.retrieve(..., image_scope="training")`` plus the CUDA suffix of old Hugging Face GPU
images; ``tests/providers/test_frameworks.py`` checks it against the SDK over every training version
of the five frameworks. What the SDK does, and is done here the same way:

- version: the version or one of its aliases (``"2.5"`` for ``2.5.1``); the image tag starts with the
  version as given (``pytorch-training:2.5-gpu-py311``), unless the version's data has a ``tag_prefix``;
- Python: ``py_versions`` of the version (the only one when it has one);
- processor from the instance type: ``gpu`` for ``ml.p*``/``ml.g*``, ``cpu`` otherwise, refused when
  the version has no image for it (scikit-learn is CPU only, Hugging Face GPU only); versions without
  processors (most XGBoost images) have none in the tag;
- ``container_version`` of the version for the processor appended to the tag; ``ml.p4d`` instances
  get the SDK's fixed CUDA suffixes for a few old TensorFlow/PyTorch images;
- Hugging Face: the tag is ``<pytorch version>-transformers<version>-gpu-<python>-<cuda suffix>``
  with the base framework version as given (``pytorch: "2.1"`` -> ``2.1-transformers4.36.0-...``);
- the registry account of the region (refused in a region the data lists no account for) and the
  ECR hostname of the region's partition from botocore's ``endpoints.json`` (``amazonaws.com``,
  ``amazonaws.com.cn`` for ``cn-`` regions, the ISO partitions' own suffixes), as exported to
  ``data/sagemaker_ecr_partitions.json`` (``tests/providers/test_sdk_schemas.py`` checks it is botocore's).

Where cloudtrain differs from the SDK, on purpose, and says so with a SpecError:
- no version given: the newest version the data lists (the SDK would take XGBoost's ``latest``, which
  is the built-in algorithm image); no Python given where a version has several: the newest;
  no base framework given for Hugging Face: PyTorch if the version has it, its newest version;
- XGBoost ``1`` / ``latest`` (the built-in XGBoost algorithm image, which runs no script) is refused;
- Trainium/Inferentia instances (``ml.trn*``, ``ml.inf*``, whose images are the Neuron repositories)
  and Graviton instances (for which the SDK returns inference images) are refused;
- ``ml.p2`` instances are refused for PyTorch 1.13+ and TensorFlow 2.12+, as the SDK refuses them.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudtrain.errors import SpecError

ECR_PARTITIONS = Path(__file__).resolve().parent / "data" / "sagemaker_ecr_partitions.json"
FRAMEWORKS = ("pytorch", "tensorflow", "sklearn", "xgboost", "huggingface")
#: The built-in XGBoost algorithm (a container that runs no script): not a framework image.
BUILT_IN_ALGORITHM_VERSIONS = {"xgboost": ("1", "latest")}
#: Graviton families, for which the SDK resolves inference images only (sagemaker.core.fw_utils).
GRAVITON_FAMILIES = ("m6g", "m6gd", "c6g", "c6gd", "c6gn", "c7g", "r6g", "r6gd")
#: The SDK's fixed CUDA suffixes on ml.p4d instances (image_uris._get_image_tag).
P4D_CONTAINER_VERSIONS = {
    "tensorflow-2.3-gpu-py37": "cu110-ubuntu18.04-v3", "tensorflow-2.3.1-gpu-py37": "cu110-ubuntu18.04",
    "tensorflow-2.3.2-gpu-py37": "cu110-ubuntu18.04", "tensorflow-1.15-gpu-py37": "cu110-ubuntu18.04-v8",
    "tensorflow-1.15.4-gpu-py37": "cu110-ubuntu18.04", "tensorflow-1.15.5-gpu-py37": "cu110-ubuntu18.04",
    "pytorch-1.6-gpu-py36": "cu110-ubuntu18.04-v3", "pytorch-1.6.0-gpu-py36": "cu110-ubuntu18.04",
    "pytorch-1.6-gpu-py3": "cu110-ubuntu18.04-v3", "pytorch-1.6.0-gpu-py3": "cu110-ubuntu18.04",
}
#: Hugging Face GPU images whose data has no container_version get this one (get_training_image_uri).
HUGGINGFACE_GPU_CONTAINER_VERSION = "cu110-ubuntu18.04"
_FAMILY = re.compile(r"^ml[._]([a-z\d\-]+)\.?\w*$")


@dataclass(frozen=True)
class TrainingImage:
    uri: str
    version: str            # the framework version resolved (as given, or the newest)
    python: str | None
    base_framework: str | None = None  # huggingface: "pytorch2.1"
    chosen: bool = False    # True when cloudtrain chose the version (none was given)


@functools.lru_cache(maxsize=None)
def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SpecError(f"framework: the {package} package is not installed; SageMaker's image data come with it",
                        "pip install 'cloudtrain[aws]', or give image:")
    return Path(list(spec.submodule_search_locations)[0])


@functools.lru_cache(maxsize=None)
def training_config(framework: str) -> dict[str, Any]:
    """The ``training`` section of the SDK's image data for ``framework``."""
    path = _package_dir("sagemaker") / "core" / "image_uri_config" / f"{framework}.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"framework.name: the installed sagemaker SDK has no image data for {framework} ({path})",
                        "upgrade the sagemaker package, or give image:") from None
    return config.get("training", config)


@functools.lru_cache(maxsize=None)
def _partitions() -> list[dict[str, Any]]:
    """The partitions of botocore's ``endpoints.json``, cut to what :func:`ecr_hostname` reads
    (``data/sagemaker_ecr_partitions.json``, from ``scripts/export_sdk_schemas.py``; the 1.2 MB file
    takes longer to parse than the rest of the image lookup)."""
    return json.loads(ECR_PARTITIONS.read_text())["partitions"]


def ecr_hostname(region: str) -> str:
    """``ecr.<region>.<dnsSuffix>`` of the region's partition, as botocore's endpoint resolver gives it."""
    partitions = _partitions()
    for partition in partitions:  # a listed region first, then the partitions' region patterns
        if region in partition["regions"]:
            break
    else:
        partition = next((p for p in partitions if re.match(p["regionRegex"], region)), partitions[0])
    template = partition["services"].get("ecr", {}).get("endpoints", {}).get(region, {}).get("hostname")
    return template or partition["defaults"]["hostname"].format(service="ecr", region=region, dnsSuffix=partition["dnsSuffix"])


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version))


def _python_key(python: str) -> tuple[int, int]:
    digits = python.removeprefix("py")
    return (int(digits[0]), int(digits[1:]) if len(digits) > 1 else -1) if digits.isdigit() else (0, -1)


def versions(framework: str) -> list[str]:
    """The training versions SageMaker has for the framework (concrete versions, oldest first)."""
    built_in = BUILT_IN_ALGORITHM_VERSIONS.get(framework, ())
    return sorted((v for v in training_config(framework)["versions"] if v not in built_in), key=_version_key)


def _listing(framework: str) -> str:
    config = training_config(framework)
    aliases = [a for a in config.get("version_aliases", {}) if a not in BUILT_IN_ALGORITHM_VERSIONS.get(framework, ())]
    return ", ".join(versions(framework)) + (f" (or {', '.join(sorted(aliases, key=_version_key))})" if aliases else "")


def processor_for(framework: str, instance_type: str, available: list[str] | None) -> str | None:
    if not available:
        return None
    if instance_type in ("local", "local_gpu"):
        processor = "cpu" if instance_type == "local" else "gpu"
    else:
        found = _FAMILY.match(instance_type or "")
        if not found:
            raise SpecError(f"resources: {instance_type!r} is not a SageMaker instance type", "e.g. ml.m5.xlarge")
        family = found.group(1)
        processor = family if family in available else "gpu" if family[0] in ("g", "p") else "cpu"
    if processor not in available:
        raise SpecError(f"framework: SageMaker has no {framework} training image for {processor.upper()} instances "
                        f"such as {instance_type} (its images are for {', '.join(p.upper() for p in available)})",
                        "choose resources that select such an instance, or give image:")
    return processor


def _refuse_instance(framework: str, instance_type: str) -> None:
    found = _FAMILY.match(instance_type or "")
    family = found.group(1) if found else ""
    if family.startswith(("trn", "inf")):
        raise SpecError(f"framework: {framework} on {instance_type}: SageMaker's Trainium/Inferentia (Neuron) training "
                        "images are not resolved by cloudtrain", "give image: with the Neuron image URI, or choose a CPU/GPU instance")
    if family in GRAVITON_FAMILIES:
        raise SpecError(f"framework: SageMaker has no {framework} training image for Graviton instances such as {instance_type}",
                        "choose an x86 instance, or give image:")


def training_image_uri(framework: str, region: str, instance_type: str, version: str | None = None,
                       python: str | None = None, base_framework: tuple[str, str] | None = None) -> TrainingImage:
    """The framework's SageMaker training image URI (see the module docstring); SpecError naming the
    spec field (``framework.version``, ``framework.python``...) when SageMaker has none."""
    if framework not in FRAMEWORKS:
        raise SpecError(f"framework.name: SageMaker images for {framework!r} are not resolved", f"one of {', '.join(FRAMEWORKS)}")
    _refuse_instance(framework, instance_type)
    config = training_config(framework)
    aliases = config.get("version_aliases", {})
    if version in BUILT_IN_ALGORITHM_VERSIONS.get(framework, ()):
        raise SpecError(f"framework.version: {framework} {version} is SageMaker's built-in algorithm image, which runs no script",
                        f"choose a framework version: {_listing(framework)}")
    chosen = version is None
    if chosen:
        version = versions(framework)[-1]
    assert version is not None
    concrete = aliases.get(version, version)
    if concrete not in config["versions"]:
        raise SpecError(f"framework.version: SageMaker has no {framework} {version} training image",
                        f"versions it has: {_listing(framework)}; or give image:")
    version_config = config["versions"][concrete]
    base = None
    if framework == "huggingface":
        version_config, base = _huggingface_base(version, concrete, version_config, base_framework)
    python, version_config = _python(framework, version, version_config, python)
    registries = version_config["registries"]
    if region not in registries:
        raise SpecError(f"sagemaker.region: SageMaker has no {framework} {version} training image in {region}",
                        f"regions it has: {', '.join(sorted(registries))}")
    processor = processor_for(framework, instance_type, config.get("processors") or version_config.get("processors"))
    container_version = None
    if version_config.get("container_version"):
        container_version = version_config["container_version"].get(processor)
    elif framework == "huggingface" and processor == "gpu":
        container_version = HUGGINGFACE_GPU_CONTAINER_VERSION
    if framework == "huggingface":
        assert base is not None
        base_version = re.match(r"^(pytorch|tensorflow)(.*)$", base).group(2)  # type: ignore[union-attr]
        tag_prefix = f"{base_version}-transformers{concrete}"
    else:
        tag_prefix = version_config.get("tag_prefix", version)
    if not version_config.get("processor_in_tag", True):
        processor = None
    family = (_FAMILY.match(instance_type) or [None, ""])[1]
    if family == "p2" and ((framework == "pytorch" and _version_key(version) >= (1, 13))
                           or (framework == "tensorflow" and _version_key(version) >= (2, 12))):
        raise SpecError(f"resources: SageMaker retired P2 instances ({instance_type}) for {framework} {version}",
                        "choose a newer GPU (e.g. accelerator: T4)")
    tag = "-".join(x for x in (tag_prefix, processor, python, container_version) if x)
    if framework not in ("xgboost", "sklearn") and family == "p4d":
        suffix = P4D_CONTAINER_VERSIONS.get(f"{framework}-{tag}")
        tag = f"{tag}-{suffix}" if suffix else tag
    uri = f"{registries[region]}.dkr.{ecr_hostname(region)}/{version_config['repository']}:{tag}"
    return TrainingImage(uri=uri, version=version, python=python, base_framework=base, chosen=chosen)


def _huggingface_base(version: str, concrete: str, version_config: dict[str, Any],
                      base_framework: tuple[str, str] | None) -> tuple[dict[str, Any], str]:
    bases = [key for key in version_config if key != "version_aliases"]
    base_aliases = version_config.get("version_aliases", {})
    if base_framework is None:
        pytorch = sorted((b for b in bases if b.startswith("pytorch")), key=_version_key)
        base = (pytorch or sorted(bases, key=_version_key))[-1]
    else:
        base = f"{base_framework[0]}{base_framework[1]}"
    full = base_aliases.get(base, base)
    if full not in bases:
        field = f"framework.{base_framework[0]}" if base_framework else "framework"
        raise SpecError(f"{field}: SageMaker has no huggingface {version} training image with {base}",
                        f"base frameworks it has for transformers {concrete}: {', '.join(sorted(base_aliases) or bases)}")
    return version_config[full], base


def _python(framework: str, version: str, version_config: dict[str, Any], python: str | None) -> tuple[str | None, dict[str, Any]]:
    available = version_config.get("py_versions") if "repository" in version_config else list(version_config)
    if not available:
        return None, version_config  # the image has no Python in its tag (XGBoost); a python: given is not needed
    if python is None:
        python = sorted(available, key=_python_key)[-1]
    elif python not in available:
        raise SpecError(f"framework.python: SageMaker has no {framework} {version} training image for {python}",
                        f"Python versions it has: {', '.join(available)}")
    return python, version_config.get(python) or version_config
