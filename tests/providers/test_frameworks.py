"""Frameworks on every cloud: SageMaker's offline image resolver against the sagemaker SDK itself,
Azure ML's curated environments and Vertex AI's prebuilt containers (refused versions list what the
cloud has), framework examples rendered and validated by each SDK, ``framework: {name: pytorch}``
without a version."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cloudtrain.errors import SpecError
from cloudtrain.providers import sagemaker_images
from cloudtrain.providers.sagemaker_images import training_config, training_image_uri
from cloudtrain.runner import Runner
from cloudtrain.specfile import load_spec

REPO = Path(__file__).resolve().parents[2]
CLOUDS = ("sagemaker", "azureml", "vertex")
SETTINGS = ["sagemaker.role_arn=arn:aws:iam::123456789012:role/Training", "sagemaker.bucket=stage",
            "azureml.subscription_id=00000000-0000-0000-0000-000000000000", "azureml.resource_group=rg",
            "azureml.workspace=ws", "vertex.project=proj", "vertex.staging_bucket=gs://stage"]
REGIONS = ("us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1", "af-south-1")
INSTANCES = ("ml.m5.xlarge", "ml.c5.2xlarge", "ml.g5.xlarge", "ml.p3.2xlarge", "ml.p4d.24xlarge", "ml.p2.xlarge")


def sdk_image(framework: str, region: str, instance: str, version: str, python: str | None,
              base: tuple[str, str] | None) -> str | None:
    """The sagemaker SDK's URI (None where it refuses), as its estimators ask for training images."""
    from sagemaker.core import image_uris

    logging.getLogger("sagemaker").setLevel(logging.ERROR)
    try:
        return image_uris.get_training_image_uri(region, framework, framework_version=version, py_version=python,
                                                 instance_type=instance,
                                                 pytorch_version=base[1] if base and base[0] == "pytorch" else None,
                                                 tensorflow_version=base[1] if base and base[0] == "tensorflow" else None)
    except (ValueError, KeyError):
        return None


def ours(framework: str, region: str, instance: str, version: str | None, python: str | None,
         base: tuple[str, str] | None) -> str | None:
    try:
        return training_image_uri(framework, region, instance, version=version, python=python, base_framework=base).uri
    except SpecError:
        return None


def grid() -> list[tuple[str, str, str | None, tuple[str, str] | None]]:
    """(framework, version, python, base) for every training version the SDK's JSON lists."""
    cases: list[tuple[str, str, str | None, tuple[str, str] | None]] = []
    for framework in sagemaker_images.FRAMEWORKS:
        config = training_config(framework)
        names = [*config["versions"], *config.get("version_aliases", {})]
        for version in names:
            concrete = config["versions"][config.get("version_aliases", {}).get(version, version)]
            if framework == "huggingface":
                for base_key in [k for k in concrete if k != "version_aliases"] + list(concrete.get("version_aliases", {})):
                    name = "pytorch" if base_key.startswith("pytorch") else "tensorflow"
                    base_config = concrete[concrete.get("version_aliases", {}).get(base_key, base_key)]
                    for python in base_config.get("py_versions", [None]):
                        cases.append((framework, version, python, (name, base_key[len(name):])))
                continue
            pythons = concrete.get("py_versions") if "repository" in concrete else list(concrete)
            for python in pythons or [None]:
                cases.append((framework, version, python, None))
    return cases


GRID = grid()


@pytest.mark.parametrize("framework", sagemaker_images.FRAMEWORKS)
def test_sagemaker_images_match_the_sdk_over_every_training_version(framework: str) -> None:
    cases = [case for case in GRID if case[0] == framework]
    assert len(cases) >= 5
    compared = 0
    for index, (_, version, python, base) in enumerate(cases):  # the SDK takes ~50 ms a call: regions rotate
        for region, instance in [(REGIONS[index % len(REGIONS)], "ml.m5.xlarge"), (REGIONS[(index + 1) % len(REGIONS)], "ml.g5.xlarge"),
                                 *((("us-east-1", other) for other in INSTANCES[1:]) if index % 3 == 0 else ())]:
                expected = sdk_image(framework, region, instance, version, python, base)
                got = ours(framework, region, instance, version, python, base)
                if version in sagemaker_images.BUILT_IN_ALGORITHM_VERSIONS.get(framework, ()):
                    assert got is None  # the built-in XGBoost algorithm runs no script: refused on purpose
                    continue
                assert got == expected, (framework, version, python, base, region, instance)
                compared += expected is not None
    assert compared > 0


def test_sagemaker_newest_version_is_the_sdks_default() -> None:
    from sagemaker.core import image_uris

    for framework in ("pytorch", "tensorflow", "sklearn", "huggingface"):
        instance = "ml.m5.xlarge" if framework == "sklearn" else "ml.g5.xlarge"
        image = training_image_uri(framework, "us-east-1", instance)
        assert image.chosen and image.version == sagemaker_images.versions(framework)[-1]
        if framework != "huggingface":  # the SDK needs a base framework for huggingface
            assert image.uri == image_uris.retrieve(framework, "us-east-1", instance_type=instance, image_scope="training",
                                                    py_version=image.python)
    xgboost = training_image_uri("xgboost", "us-east-1", "ml.m5.xlarge")
    assert xgboost.version == "3.2-0" and xgboost.uri.endswith("/sagemaker-xgboost:3.2-0")  # not the built-in "latest"


def test_sagemaker_refusals_name_the_field_and_list_what_it_has() -> None:
    with pytest.raises(SpecError, match=r"framework.version: SageMaker has no pytorch 0.3 .*") as error:
        training_image_uri("pytorch", "us-east-1", "ml.m5.xlarge", version="0.3")
    assert "2.5.1" in error.value.hint and "2.5" in error.value.hint
    with pytest.raises(SpecError, match="framework.python: .* py27"):
        training_image_uri("pytorch", "us-east-1", "ml.m5.xlarge", version="2.5", python="py27")
    with pytest.raises(SpecError, match="no sklearn training image for GPU"):
        training_image_uri("sklearn", "us-east-1", "ml.g5.xlarge", version="1.2-1")
    with pytest.raises(SpecError, match="Trainium/Inferentia") as neuron:
        training_image_uri("pytorch", "us-east-1", "ml.trn1.2xlarge", version="2.5")
    assert "pytorch" in str(neuron.value)
    with pytest.raises(SpecError, match="framework.pytorch: .* pytorch1.0"):
        training_image_uri("huggingface", "us-east-1", "ml.g5.xlarge", version="4.36", base_framework=("pytorch", "1.0"))
    with pytest.raises(SpecError, match="built-in algorithm"):
        training_image_uri("xgboost", "us-east-1", "ml.m5.xlarge", version="1")
    with pytest.raises(SpecError, match="sagemaker.region"):
        training_image_uri("pytorch", "xx-nowhere-1", "ml.m5.xlarge", version="2.5")


def test_ecr_hostnames_per_partition() -> None:
    assert sagemaker_images.ecr_hostname("us-east-1") == "ecr.us-east-1.amazonaws.com"
    assert sagemaker_images.ecr_hostname("cn-northwest-1") == "ecr.cn-northwest-1.amazonaws.com.cn"
    assert sagemaker_images.ecr_hostname("us-iso-east-1") == "ecr.us-iso-east-1.c2s.ic.gov"


def render(path: Path, cloud: str, *overrides: str) -> dict:
    runner = Runner()
    plan = runner.plan(load_spec(path, [*SETTINGS, *overrides]), cloud)
    return runner.render(plan).payload  # rendering validates with the cloud SDK's own rules


def image_of(cloud: str, payload: dict) -> str:
    if cloud == "sagemaker":
        return payload["AlgorithmSpecification"]["TrainingImage"]
    if cloud == "azureml":
        environment = payload["environment"]
        return environment if isinstance(environment, str) else environment["image"]
    return payload["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["imageUri"]


EXAMPLES = {
    "tensorflow-mnist.yaml": {
        "sagemaker": "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-training:2.21.0-gpu-py312",
        "azureml": "azureml://registries/azureml/environments/tensorflow-2.16-cuda12/labels/latest",
        "vertex": "us-docker.pkg.dev/vertex-ai/training/tf-gpu.2-14.py310:latest",
    },
    "xgboost-digits.yaml": {
        "sagemaker": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        "vertex": "us-docker.pkg.dev/vertex-ai/training/xgboost-cpu.1-7:latest",
    },
    "huggingface-text.yaml": {
        "sagemaker": "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-training:"
                     "2.3-transformers4.48.0-gpu-py311-cu121-ubuntu20.04",
        "vertex": "us-docker.pkg.dev/deeplearning-platform-release/gcr.io/"
                  "huggingface-pytorch-training-cu121.2-3.transformers.4-48.ubuntu2204.py311:latest",
    },
}


@pytest.mark.parametrize("cloud", CLOUDS)
@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_framework_examples_render_and_validate_on_every_cloud(example: str, cloud: str) -> None:
    payload = render(REPO / "examples" / example, cloud, "sagemaker.region=us-east-1")
    expected = EXAMPLES[example].get(cloud)
    if expected:
        assert image_of(cloud, payload) == expected
    else:  # Azure ML has no curated environment for it: the example names one per backend
        assert image_of(cloud, payload).startswith("azureml://registries/azureml/environments/")


def write_job(tmp_path: Path, framework: str, resources: str = "{cpus: 4}") -> Path:
    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "job.yaml").write_text(f"name: fw\ncode: .\nentrypoint: train.py\nframework: {framework}\n"
                                       f"resources: {resources}\nmax_runtime: 1h\n")
    return tmp_path / "job.yaml"


NEWEST_PYTORCH = {
    "sagemaker": f"763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:{sagemaker_images.versions('pytorch')[-1]}-gpu-",
    "azureml": "azureml://registries/azureml/environments/acpt-pytorch-2.8-cuda12.6/labels/latest",
    "vertex": "us-docker.pkg.dev/vertex-ai/training/pytorch-gpu.2-4.py310:latest",
}


@pytest.mark.parametrize("cloud", CLOUDS)
def test_pytorch_without_a_version_gets_the_newest_image_of_each_cloud(tmp_path: Path, cloud: str) -> None:
    payload = render(write_job(tmp_path, "{name: pytorch}", "{accelerator: T4}"), cloud, "sagemaker.region=us-east-1")
    assert image_of(cloud, payload).startswith(NEWEST_PYTORCH[cloud])


@pytest.mark.parametrize(("cloud", "framework", "listed"), [
    ("sagemaker", "{name: pytorch, version: '0.3'}", "2.5.1"),
    ("azureml", "{name: pytorch, version: '1.11'}", "2.2, 2.8"),
    ("azureml", "{name: sklearn, version: 1.2-1}", "1.5"),
    ("vertex", "{name: pytorch, version: '1.11'}", "2.4"),
    ("vertex", "{name: tensorflow, version: '2.16'}", "2.14"),
])
def test_a_version_a_cloud_lacks_is_refused_with_the_versions_it_has(tmp_path: Path, cloud: str, framework: str,
                                                                     listed: str) -> None:
    with pytest.raises(SpecError, match=r"framework.version") as error:
        render(write_job(tmp_path, framework), cloud)
    assert listed in error.value.hint  # never silently replaced by another version


def test_a_framework_a_cloud_lacks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="Azure ML has no curated xgboost environment"):
        render(write_job(tmp_path, "{name: xgboost}"), "azureml")
    with pytest.raises(SpecError, match="framework.version: .* Transformers 4.36") as error:
        render(write_job(tmp_path, "{name: huggingface, version: '4.36'}", "{accelerator: T4}"), "vertex")
    assert "4.48" in error.value.hint
    with pytest.raises(SpecError, match="framework.tensorflow: Vertex AI has no Hugging Face TensorFlow"):
        render(write_job(tmp_path, "{name: huggingface, version: '4.17', tensorflow: '2.6'}", "{accelerator: T4}"), "vertex")


def test_base_framework_fields_belong_to_huggingface(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="base framework version of a huggingface image"):
        load_spec(write_job(tmp_path, "{name: pytorch, pytorch: '2.1'}"), SETTINGS)
